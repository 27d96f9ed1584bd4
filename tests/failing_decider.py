"""A real decider that fails on one document, as a bug in the service would."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from service.app.family import Decided, Family
from service.app.kernel import DocumentDecider
from service.app.parse import ValidCommand
from service.app.ports import UnitOfWork


class FailsOn:
    """`inner`, except that a batch holding `document_id` raises `error`, `times` times (for
    ever when None). Records the size of every batch it is given."""

    def __init__(
        self,
        inner: DocumentDecider[Any],
        document_id: str,
        error: Exception,
        times: int | None = None,
    ) -> None:
        self._inner = inner
        self._document_id = document_id
        self._error = error
        self._left = times
        self.batch_sizes: list[int] = []

    @property
    def family(self) -> Family[Any]:
        return self._inner.family

    async def decide(
        self, uow: UnitOfWork, commands: Sequence[ValidCommand[Any]], now: datetime
    ) -> list[Decided]:
        self.batch_sizes.append(len(commands))
        if any(c.document_id == self._document_id for c in commands) and self._left != 0:
            if self._left is not None:
                self._left -= 1
            raise self._error
        decided: list[Decided] = await self._inner.decide(uow, commands, now)
        return decided
