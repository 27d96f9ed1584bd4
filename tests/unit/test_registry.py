"""The registry refuses families it could not run safely, and the gate refuses what a family
guards with no scope, before anything is decided."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Annotated, Any, Literal

import pytest
from pydantic import Field, TypeAdapter

from contracts.common import CommandMetadata
from contracts.topics import DocumentTopics
from service.app import registry
from service.app.auth import AuthMode, Gate, Unauthorized
from service.app.family import Family
from service.app.incoming import IncomingMessage
from service.app.parse import ValidCommand, parse_command
from service.app.ports import Claims
from service.domain.permissions import Allowed, Authority, Role
from service.errors import ConfigurationError
from tests.transfers.family import AUTHORITY, transfer_family

TRANSFERS = "tests.transfers.family:transfer_family"


def with_authority(family: Family[Any], authority: Authority) -> Family[Any]:
    return replace(family, commands=replace(family.commands, authority=authority))


def test_the_built_in_families_and_an_extra_one_load() -> None:
    names = [f.name for f in registry.families("p.", [TRANSFERS])]
    assert names == ["purchase-orders", "orders", "transfers"]
    [transfers] = [f for f in registry.families("p.", [TRANSFERS]) if f.name == "transfers"]
    assert transfers.topics.commands == "p.transfers.commands"


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("tests.transfers.family", "is not 'package.module:factory'"),
        ("tests.transfers.nowhere:transfer_family", "could not be loaded: ModuleNotFoundError"),
        ("tests.transfers.family:missing", "could not be loaded: AttributeError"),
        ("tests.transfers.family:TRANSFERS", "could not be loaded: TypeError"),
        ("tests.transfers.domain:ShipTransfer", "returned ShipTransfer, not a Family"),
    ],
)
def test_an_extra_family_that_cannot_be_built_is_refused(path: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        registry.families("", [path])


def refused_as(family: Family[Any], says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        registry, "BUILT_IN_FAMILIES", (*registry.BUILT_IN_FAMILIES, lambda _prefix: family)
    )
    with pytest.raises(ConfigurationError, match=says):
        registry.families("")


def test_a_command_type_without_a_scope_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    unguarded = Authority({"transfer.request": "transfers:write"}, AUTHORITY.permissions)
    family = with_authority(transfer_family(), unguarded)
    refused_as(family, "names no scope for transfer.ship", monkeypatch)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"name": "Transfers"}, "must match"),
        ({"name": "orders"}, "both claim the name 'orders'"),
        ({"command_prefixes": ("transfer.", "order.c")}, "overlap"),
        ({"command_prefixes": ("trans",)}, None),
        ({"topics": DocumentTopics.for_family("orders")}, "both claim the topic"),
    ],
)
def test_families_must_be_told_apart(
    change: dict[str, Any], says: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    family = replace(transfer_family(), **change)
    if says is None:
        monkeypatch.setattr(
            registry, "BUILT_IN_FAMILIES", (*registry.BUILT_IN_FAMILIES, lambda _p: family)
        )
        assert registry.families("")[-1].command_prefixes == ("trans",)
    else:
        refused_as(family, says, monkeypatch)


@pytest.mark.parametrize(
    ("authority", "says"),
    [
        # Granted to no role: taken only from whoever names no actor, so refused outright.
        (
            Authority(AUTHORITY.scopes, {Role.USER: {"transfer.request": Allowed()}}),
            "no role may send transfer.ship",
        ),
        (
            Authority(AUTHORITY.scopes, AUTHORITY.permissions, frozenset({"transfer.shp"})),
            "names transfer.shp, which its command union does not take",
        ),
        (
            Authority(
                {"transfer.request": "transfers write", "transfer.ship": "transfers:write"},
                AUTHORITY.permissions,
            ),
            "must match",
        ),
    ],
)
def test_an_authority_must_fit_the_family(
    authority: Authority, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused_as(with_authority(transfer_family(), authority), says, monkeypatch)


class Shipment(CommandMetadata):
    """A command told apart by `kind`, with a free `type` beside it."""

    kind: Literal["transfer.ship"]
    type: str
    transfer_id: str


class Request(CommandMetadata):
    kind: Literal["transfer.request"]
    type: str
    transfer_id: str


def test_a_union_told_apart_by_another_field_than_type_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The gate judges a command by its `type`; a union picking its model by another field could
    # be decided as one type while judged as another.
    adapter: TypeAdapter[Any] = TypeAdapter(
        Annotated[Shipment | Request, Field(discriminator="kind")]
    )
    family = transfer_family()
    family = replace(family, commands=replace(family.commands, adapter=adapter))
    refused_as(family, "must be discriminated by 'type'", monkeypatch)


def test_a_family_may_not_claim_the_movements_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    topics = replace(transfer_family().topics, events="inventory.movements")
    refused_as(replace(transfer_family(), topics=topics), "claims the topic", monkeypatch)


def test_two_families_may_not_share_a_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    # A token names scopes, not families: one minted for orders must not send transfers.
    shared = Authority(
        {"transfer.request": "orders:write", "transfer.ship": "transfers:write"},
        AUTHORITY.permissions,
    )
    refused_as(with_authority(transfer_family(), shared), "both claim the scope", monkeypatch)


def test_a_command_type_with_no_scope_is_refused_even_when_nobody_is_named() -> None:
    family = with_authority(transfer_family(), Authority({}, {}))
    body = {
        "command_id": "5b1f4a4e-0000-4000-8000-000000000001",
        "type": "transfer.ship",
        "tenant_id": "tenant-a",
        "transfer_id": "T-1",
        "payload": {},
    }
    message = IncomingMessage("t", 0, 0, 0, b"T-1", json.dumps(body).encode())
    parsed = parse_command(message, 65536, family.commands)
    assert isinstance(parsed, ValidCommand)
    for mode in (AuthMode.OFF, AuthMode.VERIFY):
        gate = Gate(mode, _NoVerifier() if mode is AuthMode.VERIFY else None, family.commands)
        refused = gate.admit((), parsed)
        assert isinstance(refused, Unauthorized)
        assert [(p.code.value, p.field) for p in refused.problems] == [("forbidden", "type")]


class _NoVerifier:
    """A verifier for a gate that is never shown a token."""

    def verify(self, token: str) -> Claims:
        raise AssertionError("no token was sent")

    def problem(self) -> str | None:
        return None

    def still_trusts(self, claims: Claims) -> bool:
        return False
