"""`python -m tests.crash_points serve`: the service, killing itself with SIGKILL at the point
of publishing from memory named by CRASH_POINT. Kept out of the service: no setting of a
deployment can make it kill itself.

- `after_commit`: a batch's transaction has committed; none of its messages is sent.
- `after_publish`: the broker has a round's messages; their outbox rows are not deleted yet.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

from service.adapters.direct_publisher import Committed, DirectPublisher
from service.entrypoints.cli import main

POINTS = ("after_commit", "after_publish")


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(point: str) -> None:
    if point == "after_commit":

        def committed(self: DirectPublisher, rows: Sequence[Committed], epoch: int) -> None:
            if rows:
                _die()

        DirectPublisher.committed = committed  # type: ignore[method-assign]
    elif point == "after_publish":

        async def delete_published(self: DirectPublisher, sent: Sequence[Committed]) -> None:
            _die()

        DirectPublisher._delete_published = delete_published  # type: ignore[method-assign]
    else:
        raise SystemExit(f"CRASH_POINT must be one of {', '.join(POINTS)}, not {point!r}")


if __name__ == "__main__":
    install(os.environ.get("CRASH_POINT", ""))
    main()
