"""The cyclic garbage collector, set for a process that decides batches of a thousand commands.

Measured with `gc.callbacks` under `make bench` (20,000 purchase-order commands): with
CPython's defaults the collector took about 7.5% of the service's CPU, most of it in eleven full
collections of about 57 ms each, every one of them a pause of the whole event loop. Nearly all
the objects those full collections walked were created while starting (modules, pydantic
schemas, settings) and live until exit. Almost everything a batch allocates is freed by
reference counting once the batch is committed; the collector only has to find the rare cycle.
"""

from __future__ import annotations

import gc

YOUNG_COLLECTION_THRESHOLD = 50_000
"""Allocations between young-generation collections (CPython's default is 700). A batch
allocates a few hundred thousand objects; at 700 the collector ran hundreds of times per batch,
each time walking every young object still alive, which within a batch is most of them."""


def settle_after_start() -> None:
    """Once everything long-lived exists: collect what starting left behind, move the survivors
    out of the collector's sight for good (`gc.freeze`), and collect the young less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
