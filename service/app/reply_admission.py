"""Admitting the reply a message asks for: its route read from the headers, checked against the
reply policy and against the topics that exist; a command that asks for a reply it may not have
is refused before anything is decided (its command_id stays unclaimed, so it can be sent again
with an allowed reply topic)."""

from __future__ import annotations

from dataclasses import replace
from typing import Generic, TypeVar

from service.app.auth import Refusal, Unauthorized
from service.app.parse import ValidCommand
from service.app.ports import TopicDirectory
from service.app.received import Received
from service.app.replies import REPLY_FIELD, ReplyPolicy, ReplyRoute
from service.domain.problems import ErrorCode, Problem

C = TypeVar("C")

MISSING_TOPIC = Problem(
    ErrorCode.FORBIDDEN,
    "the reply topic does not exist; create it before sending commands that name it",
    REPLY_FIELD,
)


class ReplyAdmission(Generic[C]):
    def __init__(self, policy: ReplyPolicy, topics: TopicDirectory | None) -> None:
        """`topics`: where to check that reply topics exist; None takes them all to exist."""
        self._policy = policy
        self._topics = topics

    def route(self, received: Received[C]) -> Received[C]:
        """The message with the reply it asked for, if the policy allows it. A replay of a dead
        letter gets none: its signature does not cover the reply headers."""
        if received.is_replay:
            return received
        route = self._policy.route(received.message.headers, received.identity.tenant_id)
        if route is None:
            return received
        if isinstance(route, ReplyRoute):
            return replace(received, reply=route)
        return _refused(received, route)

    async def topics_exist(self, batch: list[Received[C]]) -> list[Received[C]]:
        """The batch, with the commands whose reply topic does not exist refused: a reply there
        would hold up the outbox behind it (or, where brokers create topics on first use,
        create whatever a sender names)."""
        wanted = {r.reply.topic for r in batch if r.reply is not None}
        if not wanted or self._topics is None:
            return batch
        missing = wanted - await self._topics.existing(wanted)
        if not missing:
            return batch
        return [
            _refused(r, MISSING_TOPIC) if r.reply is not None and r.reply.topic in missing else r
            for r in batch
        ]


def _refused(received: Received[C], problem: Problem) -> Received[C]:
    """An admitted command refused for the reply it asked for; anything else is answered as it
    is (refused or invalid already, on the rejections topic), without a reply."""
    parsed = received.parsed
    if not isinstance(parsed, ValidCommand):
        return replace(received, reply=None)
    refused = Unauthorized(
        parsed.identity, (problem,), Refusal.REPLY_REFUSED, parsed.request_hash, parsed.claims
    )
    return replace(received, parsed=refused, reply=None)
