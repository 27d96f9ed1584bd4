"""A verified token authorizes one request.

Its `jti` binds it to a command_id, but a command_id alone is not a request: a token read off
the commands topic could otherwise ride on another payload with the same command_id, in the
other family, as a real command after a dry run, or after its own command was refused. So the
first message a token is seen on binds it, in the batch's transaction, to that message's
request (its family and the fingerprint of what it asks); seen again on the same request (a
redelivery, a re-send) it still counts, and on any other it is refused. A token seen on a
message that is then refused is used up all the same, so its owner cannot be front-run with it
later. Tokens bound to no command (from keys that accept those) are limited by age instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TypeVar

from service.app.auth import Refusal, Unauthorized
from service.app.parse import ValidCommand
from service.app.ports import Claims, UnitOfWork
from service.app.received import Received
from service.domain.problems import ErrorCode, Problem

C = TypeVar("C")

REUSED = (
    "the token was already used for another request: a token authorizes one request; sign a new one"
)


async def bind_tokens(
    uow: UnitOfWork, family: str, batch: Sequence[Received[C]]
) -> list[Received[C]]:
    """The batch with every admitted command whose token is bound to another request turned
    into a refusal."""
    uses = {
        i: (claims.issuer, _token_key(claims), f"{family}/{received.request_hash.hex()}")
        for i, received in enumerate(batch)
        if (claims := received.token) is not None and claims.token_id is not None
    }
    if not uses:
        return list(batch)
    bound = await uow.bind_tokens(list(uses.values()))
    refused = list(batch)
    for i, (issuer, token_id, request) in uses.items():
        if bound[(issuer, token_id)] != request and isinstance(batch[i].parsed, ValidCommand):
            refused[i] = _reused(batch[i])
    return refused


def _token_key(claims: Claims) -> str:
    """Which token this is. Its jti is a command_id its sender chose, unique only among that
    sender's commands: keyed by tenant and actor too, nobody else's token can use it up."""
    return f"{claims.tenant}/{claims.role}:{claims.subject}/{claims.token_id}"


def _reused(received: Received[C]) -> Received[C]:
    problem = Problem(ErrorCode.UNAUTHENTICATED, REUSED, None)
    refusal = Unauthorized(
        received.identity, (problem,), Refusal.TOKEN_REUSED, received.request_hash
    )
    return replace(received, parsed=refusal)
