"""The cyclic garbage collector, set for a process that decides batches of a thousand commands.

Measured with `gc.callbacks` under `make bench` (20,000 purchase-order commands): with
CPython's defaults the collector took about 7.5% of the service's CPU, most of it in eleven full
collections of about 57 ms each, every one of them a pause of the whole event loop. Nearly all
the objects those full collections walked were created while starting (modules, pydantic
schemas, settings) and live until exit. Almost everything a batch allocates is freed by
reference counting once the batch is committed; the collector only has to find the rare cycle.

Settled before the consumers start, so that no batch is decided under the defaults. Measured
the same way while it ran after them: the first batches took two full collections of 70 to 90
ms, one under the defaults and one for settling, which ran in a worker thread beside them. Of
the service's CPU during 20,000 commands the collector took 0.39 s then, and 0.13 to 0.16 s
settled first (four young-generation collections, none of the older ones).
"""

from __future__ import annotations

import gc

YOUNG_COLLECTION_THRESHOLD = 50_000
"""Allocations between young-generation collections (CPython's default is 700). A batch
allocates a few hundred thousand objects; at 700 the collector ran hundreds of times per batch,
each time walking every young object still alive, which within a batch is most of them."""


def settle_after_start() -> None:
    """Once the long-lived resources exist (pools, keys, the publisher) and before any command
    is read: collect what starting left behind, move the survivors out of the collector's sight
    for good (`gc.freeze`), and collect the young less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
