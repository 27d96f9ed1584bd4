"""Who may act: a command's signed actor token, checked at the edge before anything is decided.

The token travels in the Kafka header `authorization` (`Bearer <JWT>`). Verifying it (keys,
signature, issuer, audience, lifetime, subject) is the TokenVerifier's job; this module decides
what a verified token allows: this one command only (its `jti` is the command_id, so a token
copied off the topic carries nothing else), the tenant it names, the scopes the command type
needs, what its role may do (service.domain.permissions), and the actor it proves, which
replaces whatever the envelope claimed. The token itself is never stored, logged or echoed.

A command replayed by an operator from a dead letter is admitted on the authority it was first
admitted with (recorded, signed, in the letter), never on the operator's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from enum import StrEnum
from typing import Generic, Protocol, TypeVar
from uuid import UUID

from contracts.headers import AUTHORIZATION, BEARER_SCHEME
from service.app.parse import CommandSpec, Identity, ValidCommand
from service.app.ports import Claims as Claims  # re-exported: verifiers build them
from service.app.ports import RecordedActor
from service.domain.permissions import Role
from service.domain.problems import ErrorCode, Problem
from service.domain.values import frozen

C = TypeVar("C")

ACTOR_TYPES = frozenset(Role)


class AuthMode(StrEnum):
    OFF = "off"
    """Tokens are ignored; the envelope's actor is taken at its word."""
    VERIFY = "verify"
    """A token, when present, must be valid and is who acted; without one, the envelope's actor
    is taken at its word, except for commands that destroy data, which need a token."""
    REQUIRED = "required"
    """No valid token, no decision."""

    @property
    def believes_claims(self) -> bool:
        """Whether a command's own word on who sent it can be enough."""
        return self is not AuthMode.REQUIRED


class InvalidToken(Exception):
    """The token cannot be trusted; the message says why without quoting it."""


class TokenVerifier(Protocol):
    def verify(self, token: str) -> Claims:
        """The token's claims once its signature, issuer, audience and lifetime check out;
        raises InvalidToken otherwise."""

    def problem(self) -> str | None:
        """Why the keys in use are not what the key file says now (it does not parse, or it
        is gone); None when they are. Readiness reports it."""

    def still_trusts(self, claims: Claims) -> bool:
        """Whether the keys as they are now could still sign these claims (for replays)."""


class Refusal(StrEnum):
    """Why the gate refused a message: the label refusals are counted and logged by."""

    NO_TOKEN = "no_token"
    SEVERAL_TOKENS = "several_tokens"
    NOT_BEARER = "not_bearer"
    INVALID_TOKEN = "invalid_token"
    UNBOUND_TOKEN = "unbound_token"
    TOKEN_REUSED = "token_reused"
    NO_ROLE = "no_role"
    TOKEN_REQUIRED = "token_required"
    WRONG_TENANT = "wrong_tenant"
    MISSING_SCOPE = "missing_scope"
    ACTOR_MISMATCH = "actor_mismatch"
    ROLE_FORBIDDEN = "role_forbidden"
    REPLY_REFUSED = "reply_refused"
    """The command names a reply topic (or correlation_id) it may not."""


@frozen
class Unauthorized:
    """A well-formed command that its sender may not send: answered with a rejection and
    otherwise ignored (its command_id is not claimed, so it can be sent again with a valid
    token)."""

    identity: Identity
    problems: tuple[Problem, ...]
    cause: Refusal
    request_hash: bytes
    claims: Claims | None = None
    """The token's claims when it verified but did not allow the command."""

    @property
    def reason(self) -> str:
        return "; ".join(p.message for p in self.problems)


class Gate(Generic[C]):
    """Admits a parsed command, with the actor its token proves, or refuses it."""

    def __init__(
        self, mode: AuthMode, verifier: TokenVerifier | None, commands: CommandSpec[C]
    ) -> None:
        if mode is not AuthMode.OFF and verifier is None:
            raise ValueError(f"AUTH_MODE={mode.value} needs a token verifier")
        self._mode = mode
        self._verifier = verifier
        self._commands = commands

    def admit(
        self, headers: Sequence[tuple[str, bytes]], command: ValidCommand[C]
    ) -> ValidCommand[C] | Unauthorized:
        if self._mode is AuthMode.OFF:
            return self._on_its_word(command)
        presented = self._presented(headers)
        if presented is None:
            return self._on_its_word(command)
        if isinstance(presented, tuple):
            return _refuse(command, *presented)
        return self._authorize(command, presented)

    def _presented(
        self, headers: Sequence[tuple[str, bytes]]
    ) -> Claims | tuple[Refusal, str] | None:
        """The verified claims of the message's one token; why it cannot count; or None when
        the message carries none."""
        raw = [value for name, value in headers if name.lower() == AUTHORIZATION]
        if not raw:
            return None
        if len(raw) > 1:
            # A gateway that checked the first and a service that reads the last would disagree.
            return Refusal.SEVERAL_TOKENS, _SEVERAL_TOKENS
        token = _bearer(raw[0])
        if token is None:
            return Refusal.NOT_BEARER, _NOT_BEARER
        assert self._verifier is not None
        try:
            return self._verifier.verify(token)
        except InvalidToken as error:
            return Refusal.INVALID_TOKEN, f"the token is not valid: {error}"

    def token_of(
        self, headers: Sequence[tuple[str, bytes]], command_id: UUID | None
    ) -> Claims | None:
        """The claims of the one valid token among `headers` if it is bound to `command_id`,
        whatever becomes of the message: a token seen on a message that is then refused is
        used up all the same (one bound to another command is not this message's to use)."""
        if self._mode is AuthMode.OFF:
            return None
        claims = self._presented(headers)
        if not isinstance(claims, Claims) or claims.token_id is None or command_id is None:
            return None
        return claims if _uuid(claims.token_id) == command_id else None

    def admit_replay(
        self, command: ValidCommand[C], first_admitted_on: Claims | None
    ) -> ValidCommand[C] | Unauthorized:
        """A command an operator replayed from a dead letter: admitted on the authority it was
        first admitted with (the token's claims, or None for its own word), checked again as
        then; whatever headers the replay carries grant nothing."""
        if first_admitted_on is None:
            return self._on_its_word(command)
        if self._verifier is None or not self._verifier.still_trusts(first_admitted_on):
            return _refuse(
                command,
                Refusal.INVALID_TOKEN,
                "the token it was first admitted on is no longer trusted (its issuer or key"
                " was withdrawn)",
            )
        return self._authorize(command, first_admitted_on)

    def _on_its_word(self, command: ValidCommand[C]) -> ValidCommand[C] | Unauthorized:
        """No token: the envelope's actor, if the mode believes it and the role table allows."""
        command_type = command.identity.type or ""
        if not self._mode.believes_claims:
            return _refuse(command, Refusal.NO_TOKEN, _NO_TOKEN)
        authority = self._commands.authority
        if command_type not in authority.scopes:
            # A type its family grants to nobody is refused whoever claims to send it, and
            # when nobody is named at all.
            return Unauthorized(
                command.identity,
                (Problem(ErrorCode.FORBIDDEN, f"nobody may send {command_type}", "type"),),
                Refusal.ROLE_FORBIDDEN,
                command.request_hash,
            )
        if self._mode is AuthMode.VERIFY and command_type in authority.destructive:
            return _refuse(
                command,
                Refusal.TOKEN_REQUIRED,
                f"{command_type} destroys data for good: it needs a token naming who sends it",
            )
        claimed = command.actor
        if claimed is None:
            return command
        problems = authority.problems(
            claimed.type, self._commands.access(command_type, command.command)
        )
        if problems:
            return Unauthorized(
                command.identity, tuple(problems), Refusal.ROLE_FORBIDDEN, command.request_hash
            )
        return command

    def _authorize(
        self, command: ValidCommand[C], claims: Claims
    ) -> ValidCommand[C] | Unauthorized:
        if claims.role not in ACTOR_TYPES:
            return _refuse(
                command,
                Refusal.NO_ROLE,
                f"the token names no actor type (one of {', '.join(sorted(ACTOR_TYPES))})",
            )
        if claims.token_id is not None and _uuid(claims.token_id) != command.command_id:
            return _refuse(
                command,
                Refusal.UNBOUND_TOKEN,
                "the token is bound to another command: its jti must be this command_id",
            )
        command_type = command.identity.type or ""
        refused: list[tuple[Refusal, Problem]] = []
        if claims.tenant != command.tenant_id:
            refused.append(
                (
                    Refusal.WRONG_TENANT,
                    Problem(
                        ErrorCode.FORBIDDEN, "the token is not valid for this tenant", "tenant_id"
                    ),
                )
            )
        authority = self._commands.authority
        needed = authority.scopes.get(command_type)
        if needed is None or needed not in claims.scopes:
            refused.append(
                (
                    Refusal.MISSING_SCOPE,
                    Problem(
                        ErrorCode.FORBIDDEN,
                        f"the token lacks scope '{needed}', which {command_type} needs"
                        if needed is not None
                        else f"no scope grants {command_type}",
                        "type",
                    ),
                )
            )
        claimed = command.actor
        if claimed is not None and (claimed.type, claimed.id) != (claims.role, claims.subject):
            refused.append(
                (
                    Refusal.ACTOR_MISMATCH,
                    Problem(
                        ErrorCode.FORBIDDEN,
                        "the actor contradicts the token; leave it out or send the token's",
                        "actor",
                    ),
                )
            )
        access = self._commands.access(command_type, command.command)
        refused += [(Refusal.ROLE_FORBIDDEN, p) for p in authority.problems(claims.role, access)]
        if refused:
            return Unauthorized(
                command.identity,
                tuple(problem for _, problem in refused),
                refused[0][0],
                command.request_hash,
                claims,
            )
        domain = command.command
        if self._commands.with_actor is not None:
            domain = self._commands.with_actor(domain, claims.role, claims.subject)
        actor = RecordedActor(claims.role, claims.subject, claims.issuer)
        return replace(command, command=domain, actor=actor, claims=claims)


_NO_TOKEN = "a token is required: send `authorization: Bearer <JWT>` as a Kafka header"
_NOT_BEARER = "the authorization header must be `Bearer <JWT>`"
_SEVERAL_TOKENS = "send one authorization header, not several"


def _uuid(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


def _bearer(value: bytes) -> str | None:
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    scheme, _, token = text.partition(" ")
    token = token.strip()
    return token if scheme.lower() == BEARER_SCHEME.lower() and token else None


def _refuse(command: ValidCommand[C], cause: Refusal, message: str) -> Unauthorized:
    problem = Problem(ErrorCode.UNAUTHENTICATED, message, None)
    return Unauthorized(command.identity, (problem,), cause, command.request_hash)
