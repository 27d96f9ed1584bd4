"""E-mail addresses read without email-validator only where it would return them unchanged:
whatever the input, the value kept and the error given are EmailStr's."""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import EmailStr, TypeAdapter, ValidationError

from contracts.emails import EmailAddress, plainly_valid

EMAIL_STR = TypeAdapter(EmailStr)
EMAIL_ADDRESS = TypeAdapter(EmailAddress)

ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"
LABEL_CHARS = string.ascii_lowercase + string.digits + "-"

atoms = st.text(ATEXT, min_size=1, max_size=30)
local_parts = st.lists(atoms, min_size=1, max_size=4).map(".".join)
labels = st.text(LABEL_CHARS, min_size=1, max_size=70)
top_level = st.sampled_from(
    ["com", "de", "org", "test", "local", "localhost", "arpa", "onion", "invalid", "io", "c"]
) | st.text(string.ascii_lowercase, min_size=1, max_size=70)
domains = st.builds(
    lambda names, tld: ".".join([*names, tld]), st.lists(labels, min_size=1, max_size=4), top_level
)
plain_looking = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)
anything = st.text(min_size=0, max_size=80) | st.text(ATEXT + '@."<> \\', max_size=80)


def read(adapter: TypeAdapter[str], value: str) -> tuple[str, str | None]:
    try:
        return "ok", adapter.validate_python(value)
    except ValidationError as error:
        [detail] = error.errors(include_url=False)
        return "error", f"{detail['type']}: {detail['msg']}"


@settings(max_examples=600)
@given(plain_looking | anything)
@example("ada@example.com")
@example("INFO@0.com")
@example("PostMaster@example.com")
@example("Ada@Example.COM")
@example("ada@example.test")
@example("ada@sub.localhost")
@example("ada@xn--bcher-kva.ch")
@example("ada@ex--ample.com")
@example("a" * 65 + "@example.com")
@example("Ada Lovelace <ada@example.com>")
@example(" ada@example.com ")
@example("ada@exämple.com")
def test_every_address_reads_as_emailstr_reads_it(value: str) -> None:
    assert read(EMAIL_ADDRESS, value) == read(EMAIL_STR, value)


EDGES = [
    *(
        f"{name.upper()}@example.com"
        for name in ("info", "marketing", "sales", "support", "abuse", "noc", "security")
    ),
    *(
        f"{name.capitalize()}@example.com"
        for name in ("postmaster", "hostmaster", "usenet", "news", "webmaster", "www", "uucp")
    ),
    "Ftp@example.com",
    "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com",  # 254 in all
    "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 58 + ".com",  # 255
    "ada@" + "b" * 63 + ".com",
    "ada@" + "b" * 64 + ".com",
    "ada@example." + "c" * 63,
    "a@b.c",
    "a@x.com.",
    "a@ab--c.com",
    "a@xn--bcher-kva.ch",
    "a@1.com",
    "a@123.45",
    ".a@example.com",
    "a.@example.com",
    "a..b@example.com",
    '"a b"@example.com',
]


@pytest.mark.parametrize("value", EDGES)
def test_edges_of_email_validators_rules_read_as_emailstr_reads_them(value: str) -> None:
    assert read(EMAIL_ADDRESS, value) == read(EMAIL_STR, value)


@given(plain_looking)
def test_what_is_decided_without_email_validator_is_what_it_returns_unchanged(value: str) -> None:
    if plainly_valid(value):
        assert EMAIL_STR.validate_python(value) == value


def test_the_common_case_is_decided_without_email_validator() -> None:
    assert plainly_valid("ada.lovelace+orders@mail.example.com")
    assert not plainly_valid("Ada@Example.com")  # email-validator lowercases the domain
    assert not plainly_valid("ada@example.test")  # a special-use name it refuses
    assert not plainly_valid("Info@example.com")  # an RFC 2142 mailbox it lowercases


def test_the_json_schema_is_emailstrs() -> None:
    assert EMAIL_ADDRESS.json_schema() == EMAIL_STR.json_schema()


def test_a_wrong_type_is_refused_alike() -> None:
    with pytest.raises(ValidationError) as ours:
        EMAIL_ADDRESS.validate_python(42)
    with pytest.raises(ValidationError) as theirs:
        EMAIL_STR.validate_python(42)
    assert ours.value.errors(include_url=False) == theirs.value.errors(include_url=False)


def test_a_huge_value_costs_no_more_than_a_length_check() -> None:
    # Decided by length alone; a pattern run over it would take tens of milliseconds.
    assert not plainly_valid("a@" + "a." * 120_000 + "1")
    assert read(EMAIL_ADDRESS, "a@" + "a." * 120_000 + "1")[0] == "error"
