"""Who may act: a command's signed actor token, checked at the edge before anything is decided.

The token travels in the Kafka header `authorization` (`Bearer <JWT>`). Verifying it (keys,
signature, issuer, audience, lifetime) is the TokenVerifier's job; this module decides what a
verified token allows: the tenant it names, the scopes the command type needs, and the actor
it proves, which replaces whatever the envelope claimed. The token itself is never stored,
logged or echoed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from service.app.parse import Identity, ValidCommand
from service.app.ports import RecordedActor
from service.domain.problems import ErrorCode, Problem

C = TypeVar("C")

AUTHORIZATION = "authorization"
ACTOR_TYPES = frozenset({"customer", "user", "service", "system"})

# The scope each command type needs; one table, so a new command type cannot go unguarded
# (a test checks that every type of the contracts is listed).
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


class AuthMode(StrEnum):
    OFF = "off"
    """Tokens are ignored; the envelope's actor is taken at its word."""
    VERIFY = "verify"
    """A token, when present, must be valid and is who acted; without one, as OFF."""
    REQUIRED = "required"
    """No valid token, no decision."""


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    subject: str
    issuer: str
    role: str | None
    tenant: str | None
    scopes: frozenset[str]


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why without quoting it."""


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Claims:
        """The token's claims once its signature, issuer, audience and lifetime check out;
        raises InvalidToken otherwise."""


@dataclass(frozen=True)
class Unauthorized:
    """A well-formed command that its sender may not send: answered with a rejection and
    otherwise ignored (not even its command_id is recorded, so it can be sent again with a
    valid token)."""

    identity: Identity
    problems: tuple[Problem, ...]

    @property
    def reason(self) -> str:
        return "; ".join(p.message for p in self.problems)


ActorSetter = Callable[[C, str, str], C]
"""Puts a proven actor (type, id) into a family's domain command."""


class Gate(Generic[C]):
    """Admits a parsed command, with the actor its token proves, or refuses it."""

    def __init__(
        self, mode: AuthMode, verifier: TokenVerifier | None, set_actor: ActorSetter[C] | None
    ) -> None:
        if mode is not AuthMode.OFF and verifier is None:
            raise ValueError(f"AUTH_MODE={mode.value} needs a token verifier")
        self._mode = mode
        self._verifier = verifier
        self._set_actor = set_actor

    def admit(
        self, headers: Sequence[tuple[str, bytes]], command: ValidCommand[C]
    ) -> ValidCommand[C] | Unauthorized:
        if self._mode is AuthMode.OFF:
            return command
        raw = [value for name, value in headers if name.lower() == AUTHORIZATION]
        if not raw:
            if self._mode is AuthMode.REQUIRED:
                return _refuse(command, ErrorCode.UNAUTHENTICATED, _NO_TOKEN)
            return command
        token = _bearer(raw[-1])
        if token is None:
            return _refuse(command, ErrorCode.UNAUTHENTICATED, _NOT_BEARER)
        assert self._verifier is not None
        try:
            claims = self._verifier.verify(token)
        except InvalidToken as error:
            return _refuse(command, ErrorCode.UNAUTHENTICATED, f"the token is not valid: {error}")
        return self._authorize(command, claims)

    def _authorize(
        self, command: ValidCommand[C], claims: Claims
    ) -> ValidCommand[C] | Unauthorized:
        if claims.role not in ACTOR_TYPES:
            return _refuse(
                command,
                ErrorCode.UNAUTHENTICATED,
                f"the token names no actor type (one of {', '.join(sorted(ACTOR_TYPES))})",
            )
        problems = []
        if claims.tenant != command.tenant_id:
            problems.append(
                Problem(ErrorCode.FORBIDDEN, "the token is not valid for this tenant", "tenant_id")
            )
        command_type = command.identity.type or ""
        needed = REQUIRED_SCOPE.get(command_type)
        if needed is None or needed not in claims.scopes:
            problems.append(
                Problem(
                    ErrorCode.FORBIDDEN,
                    f"the token lacks scope '{needed}', which {command_type} needs",
                    "type",
                )
            )
        claimed = command.actor
        if claimed is not None and (claimed.type, claimed.id) != (claims.role, claims.subject):
            problems.append(
                Problem(
                    ErrorCode.FORBIDDEN,
                    "the actor contradicts the token; leave it out or send the token's",
                    "actor",
                )
            )
        if problems:
            return Unauthorized(command.identity, tuple(problems))
        actor = RecordedActor(claims.role, claims.subject, claims.issuer)
        domain = command.command
        if self._set_actor is not None:
            domain = self._set_actor(domain, claims.role, claims.subject)
        return replace(command, command=domain, actor=actor)


_NO_TOKEN = "a token is required: send `authorization: Bearer <JWT>` as a Kafka header"
_NOT_BEARER = "the authorization header must be `Bearer <JWT>`"


def _bearer(value: bytes) -> str | None:
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    scheme, _, token = text.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _refuse(command: ValidCommand[C], code: ErrorCode, message: str) -> Unauthorized:
    return Unauthorized(command.identity, (Problem(code, message, None),))
