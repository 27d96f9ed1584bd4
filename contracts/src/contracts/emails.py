"""E-mail addresses, read exactly as pydantic's EmailStr reads them (email-validator's rules;
the normalized address is what is kept), with the common case decided without email-validator.

email-validator checks every character of the domain against Unicode tables (IDNA), about
25 µs per address. An address made only of a plain ASCII local part and a lowercase ASCII host
name, none of whose rules it could break, is returned as it is: that is what email-validator
returns for it. Anything else (capitals in the domain, Unicode, quoting, "Name <address>",
Punycode, special-use names, RFC 2142 mailboxes it lowercases, lengths near the limits) goes to
email-validator, which decides and words the error."""

from __future__ import annotations

import re
from typing import Annotated

import email_validator
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from pydantic import AfterValidator, WithJsonSchema
from pydantic.networks import validate_email

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_PLAIN = re.compile(
    rf"(?P<local>{_ATEXT}+(?:\.{_ATEXT}+)*)@(?P<domain>(?:{_LABEL}\.)+[a-z]{{2,63}})", re.ASCII
)
_LOCAL_MAX = 64
_ADDRESS_MAX = 254
_CASE_INSENSITIVE = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)
"""RFC 2142 mailboxes (info, postmaster, ...), which email-validator lowercases."""


def plainly_valid(value: str) -> bool:
    """Whether `value` is an address email-validator accepts unchanged, decided without it."""
    # Length first: a field of a quarter megabyte must cost no more than email-validator's own
    # length check, which refuses it at once.
    if len(value) > _ADDRESS_MAX:
        return False
    plain = _PLAIN.fullmatch(value)
    if plain is None or len(plain["local"]) > _LOCAL_MAX:
        return False
    if plain["local"].lower() in _CASE_INSENSITIVE:
        return False
    domain = plain["domain"]
    # "--" in a label is Punycode (xn--) or a reserved form: email-validator decides those.
    if "--" in domain:
        return False
    # Read each time: email-validator lets its users add names to the list.
    special_use = email_validator.SPECIAL_USE_DOMAIN_NAMES
    return not any(domain == name or domain.endswith("." + name) for name in special_use)


def email_address(value: str) -> str:
    """The address as EmailStr would give it, or EmailStr's own error."""
    if plainly_valid(value):
        return value
    return validate_email(value)[1]


EmailAddress = Annotated[
    str, AfterValidator(email_address), WithJsonSchema({"type": "string", "format": "email"})
]
"""A drop-in for pydantic's EmailStr: the same values, errors and JSON Schema."""
