"""Who may do what: for each role, the command types it may send, the statuses it may move a
document to, the parts of an order it may change, and whose documents it may touch; and the
scope a token needs for each command type. Pure.

A family's `Authority` holds its rows: the built-in families share the table below, and a
family a deployment adds brings its own (a command type it names no scope for is refused to
everyone). Read in one place (the token gate, for a verified or a claimed actor alike), and
walked pair by pair in a test. Reach is enforced by the deciders, which alone know whose a
document is: a role whose reach is OWN sees only its own orders, and anything else is answered
exactly as a missing order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import StrEnum

from service.domain.problems import ErrorCode, Problem
from service.domain.values import frozen


class Role(StrEnum):
    CUSTOMER = "customer"
    """A person buying: acts on their own orders through a shop front or an app."""
    USER = "user"
    """Staff: back office, warehouse, customer service."""
    SERVICE = "service"
    """Another system: checkout, fulfilment, ERP integration."""
    SYSTEM = "system"
    """The platform itself: scheduled jobs, migrations, data protection tooling."""


class Reach(StrEnum):
    ANY = "any"
    OWN = "own"
    """Only the actor's own documents (an order whose customer_id is the actor's id)."""


@frozen
class Allowed:
    """What a role may do with one command type."""

    reach: Reach = Reach.ANY
    statuses: frozenset[str] | None = None
    """The statuses `change_status` may move a document to; None: whatever the rules allow."""
    parts: frozenset[str] | None = None
    """The parts of an order `update` may change; None: every part."""


COMMAND_TYPES = (
    "purchase_order.create",
    "purchase_order.update",
    "purchase_order.update_shipping_details",
    "purchase_order.change_status",
    "purchase_order.record_receipt",
    "purchase_order.link_invoice",
    "purchase_order.delete",
    "order.create",
    "order.update",
    "order.change_status",
    "order.delete",
    "order.redact",
    "customer.redact",
)

_EVERYTHING: Mapping[str, Allowed] = {command_type: Allowed() for command_type in COMMAND_TYPES}

PERMISSIONS: Mapping[Role, Mapping[str, Allowed]] = {
    # A customer cancels, corrects an address, deletes or erases what is theirs; fulfilment
    # statuses move stock and belong to the warehouse, and purchase orders to the back office.
    Role.CUSTOMER: {
        "order.create": Allowed(Reach.OWN),
        "order.update": Allowed(
            Reach.OWN, parts=frozenset({"shipping_address", "billing_address"})
        ),
        "order.change_status": Allowed(Reach.OWN, statuses=frozenset({"cancelled"})),
        "order.delete": Allowed(Reach.OWN),
        "order.redact": Allowed(Reach.OWN),
        "customer.redact": Allowed(Reach.OWN),
    },
    Role.USER: _EVERYTHING,
    Role.SERVICE: _EVERYTHING,
    Role.SYSTEM: _EVERYTHING,
}

DESTRUCTIVE = frozenset(
    {"purchase_order.delete", "order.delete", "order.redact", "customer.redact"}
)
"""Commands that destroy data for good: never taken on a claimed actor's word when tokens are
verified (AUTH_MODE=verify)."""


@frozen
class Access:
    """What a command asks to do, as far as the table cares."""

    command_type: str
    status: str | None = None
    """The status a change_status asks for."""
    parts: Collection[str] = ()
    """The parts an update changes."""


# The scope each command type of the built-in families needs; a type with no scope is refused
# to everyone (tests check that every type of the contracts is listed, and the registry that
# every family's types are).
REQUIRED_SCOPE: Mapping[str, str] = {
    "purchase_order.create": "purchase_orders:write",
    "purchase_order.update": "purchase_orders:write",
    "purchase_order.update_shipping_details": "purchase_orders:write",
    "purchase_order.change_status": "purchase_orders:write",
    "purchase_order.record_receipt": "purchase_orders:write",
    "purchase_order.link_invoice": "purchase_orders:write",
    "purchase_order.delete": "purchase_orders:delete",
    "order.create": "orders:write",
    "order.update": "orders:write",
    "order.change_status": "orders:write",
    "order.delete": "orders:delete",
    "order.redact": "orders:redact",
    "customer.redact": "customers:redact",
}


@frozen
class Authority:
    """Who may send a family's commands."""

    scopes: Mapping[str, str]
    """The scope a token needs for each command type; a type missing here needs a scope no
    token has."""
    permissions: Mapping[Role, Mapping[str, Allowed]]
    """Per role, the command types it may send and how far."""
    destructive: frozenset[str] = frozenset()
    """Types that destroy data for good: never taken on a claimed actor's word when tokens
    are verified."""

    def covering(self, *prefixes: str) -> Authority:
        """The rows of the command types that start with one of `prefixes`."""

        def kept(command_type: str) -> bool:
            return command_type.startswith(prefixes)

        return Authority(
            {t: scope for t, scope in self.scopes.items() if kept(t)},
            {
                role: {t: rule for t, rule in rows.items() if kept(t)}
                for role, rows in self.permissions.items()
            },
            frozenset(filter(kept, self.destructive)),
        )

    def problems(self, role: str, access: Access) -> list[Problem]:
        """Why `role` may not do `access` (forbidden problems); empty when it may."""
        return _problems(self._rule(role, access.command_type), role, access)

    def reach(self, role: str, command_type: str) -> Reach | None:
        """How far `role` reaches with `command_type`; None when it may not send it at all."""
        rule = self._rule(role, command_type)
        return rule.reach if rule is not None else None

    def _rule(self, role: str, command_type: str) -> Allowed | None:
        try:
            return self.permissions.get(Role(role), {}).get(command_type)
        except ValueError:
            return None


BUILT_IN = Authority(REQUIRED_SCOPE, PERMISSIONS, DESTRUCTIVE)
"""The purchase-order and customer-order families' table."""
PURCHASE_ORDERS_AUTHORITY = BUILT_IN.covering("purchase_order.")
ORDERS_AUTHORITY = BUILT_IN.covering("order.", "customer.")


def _problems(rule: Allowed | None, role: str, access: Access) -> list[Problem]:
    if rule is None:
        return [
            Problem(ErrorCode.FORBIDDEN, f"a {role} may not send {access.command_type}", "type")
        ]
    problems = []
    if rule.statuses is not None and access.status not in (None, *rule.statuses):
        problems.append(
            Problem(
                ErrorCode.FORBIDDEN,
                f"a {role} may move a document only to {_listed(rule.statuses)}",
                "payload.status",
            )
        )
    if rule.parts is not None:
        problems += [
            Problem(
                ErrorCode.FORBIDDEN,
                f"a {role} may change only {_listed(rule.parts)}",
                f"payload.{part}",
            )
            for part in access.parts
            if part not in rule.parts
        ]
    return problems


def _listed(values: Collection[str]) -> str:
    return ", ".join(f"'{value}'" for value in sorted(values))
