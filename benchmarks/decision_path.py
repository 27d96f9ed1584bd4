"""CPU per command of the decision path alone: `CommandProcessor.process_batch` on the in-memory
store, in this process, with no broker, database or event-loop waits. What `make bench` measures
minus consuming, Postgres round trips and publishing; use it to see what a change to parsing,
deciding or building outputs is worth, and `--profile` for where the time goes.

Usage: .venv/bin/python -m benchmarks.decision_path [--batches 20] [--profile orders]
       [--workload purchase-orders]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import statistics
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from itertools import count
from typing import Any

from service.adapters.crypto import new_key
from service.adapters.memory_store import MemoryStore, MemoryUnitOfWork
from service.app.family import Family
from service.app.incoming import IncomingMessage
from service.app.kernel import DocumentDecider
from service.app.orders.family import order_family
from service.app.processor import CommandProcessor
from service.app.provenance import Signer
from service.app.purchase_orders.family import purchase_order_family
from service.entrypoints.heap import settle_after_start
from tests.support import change_status, create, create_order, order_status

BATCH = 1000
Phase = Callable[[str], dict[str, Any]]
WORKLOADS: dict[str, tuple[Callable[[str], Family[Any]], Phase, Phase]] = {
    "purchase-orders": (
        purchase_order_family,
        create,
        lambda document_id: change_status(document_id, "open"),
    ),
    "orders": (
        order_family,
        create_order,
        lambda document_id: order_status(document_id, "cancelled", "customer"),
    ),
}


class InPlaceStore(MemoryStore):
    """Writes straight into its data: none of these batches fails, so the copy the in-memory
    store takes to roll back (most of its cost) would only be measured, never used."""

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[MemoryUnitOfWork]:
        yield MemoryUnitOfWork(self.data)


async def run(workload: str, batches: int, profile: bool) -> None:
    make_family, first, second = WORKLOADS[workload]
    family = make_family("bench.")
    store = InPlaceStore()
    processor = CommandProcessor(
        store,
        DocumentDecider(family, "bench.movements"),
        max_command_bytes=65536,
        signer=Signer(new_key(), "bench"),
    )
    offsets = count()

    def batch(phase: Phase, number: int) -> list[IncomingMessage]:
        ids = [f"D-{number}-{i}" for i in range(BATCH)]
        return [
            IncomingMessage(
                "bench.commands", 0, next(offsets), 1, i.encode(), json.dumps(phase(i)).encode()
            )
            for i in ids
        ]

    prepared = [(batch(first, n), batch(second, n)) for n in range(batches)]
    await processor.process_batch(batch(first, -1))  # warm caches and lazy imports
    settle_after_start()  # the collector as `serve` runs it
    profiler = cProfile.Profile() if profile else None
    if profiler:
        profiler.enable()
    rounds = []
    for creates, changes in prepared:
        started = time.process_time()
        await processor.process_batch(creates)
        await processor.process_batch(changes)
        rounds.append((time.process_time() - started) / (2 * BATCH) * 1e6)
        store.data.outbox.clear()
    if profiler:
        profiler.disable()
    # The machine's other work only ever adds: the fastest round is the least disturbed.
    print(
        f"{workload}: CPU per command {min(rounds):,.1f} us at best,"
        f" {statistics.median(rounds):,.1f} us median ({len(rounds)} rounds of {BATCH} + {BATCH})"
    )
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--profile", choices=sorted(WORKLOADS), default=None)
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default=None, help="only this one")
    args = parser.parse_args()
    for workload in WORKLOADS:
        if args.profile in (None, workload) and args.workload in (None, workload):
            asyncio.run(run(workload, args.batches, args.profile == workload))


if __name__ == "__main__":
    main()
