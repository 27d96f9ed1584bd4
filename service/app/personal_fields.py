"""Which messages may hold personal data, whatever topic they arrive on.

A dead letter keeps a message as it arrived. On the orders' topic every letter is sealed; on
another family's topic a letter is kept readable only when its body can be told apart as a
command of that family holding none of the fields personal data lives in. Anything else (an
order command sent to the wrong topic, a body that is not JSON, one of no known type) is sealed
too: what cannot be told apart is treated as personal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts.orders import Address
from service.app.strict_json import UnreadableBody, read_json

PERSONAL_FIELD_NAMES = frozenset(
    {"shipping_address", "billing_address", "contact", *Address.model_fields}
)
"""The member names under which orders carry personal data: its groups and an address's
fields (name, lines, city, postal_code, country, phone, email)."""


def always(_: bytes | None) -> bool:
    """For families whose commands carry personal data: every letter is sealed."""
    return True


def unless_told_apart(type_prefix: str) -> Callable[[bytes | None], bool]:
    """For a family without personal data: seal a letter unless its body is a JSON object of a
    type starting with `type_prefix` and none of its member names, at any depth, is one of
    PERSONAL_FIELD_NAMES."""

    def seals(raw: bytes | None) -> bool:
        try:
            # Dead letters are off the hot path: read once, by the standard library.
            body, _ = read_json(raw or b"", with_jiter=False)
        except UnreadableBody:
            return True
        if not isinstance(body, dict):
            return True
        kind = body.get("type")
        return not (isinstance(kind, str) and kind.startswith(type_prefix)) or _names_personal(body)

    return seals


def _names_personal(value: Any) -> bool:
    if isinstance(value, dict):
        return any(
            name in PERSONAL_FIELD_NAMES or _names_personal(item) for name, item in value.items()
        )
    if isinstance(value, list):
        return any(_names_personal(item) for item in value)
    return False
