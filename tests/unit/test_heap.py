"""The collector settings `serve` takes once started, in a process of their own: they are
process-wide, and this suite's process keeps its defaults."""

from __future__ import annotations

import json
import subprocess
import sys

from service.entrypoints.heap import YOUNG_COLLECTION_THRESHOLD

PROBE = """
import gc, json
import service.entrypoints.app  # what `serve` has imported by then
from service.entrypoints.heap import settle_after_start
before = gc.get_threshold()
garbage = [[]]
garbage[0].append(garbage)  # a cycle only the collector can free
del garbage
settle_after_start()
print(json.dumps({"before": before, "after": gc.get_threshold(),
                  "frozen": gc.get_freeze_count(), "young": gc.get_count()[0]}))
"""


def test_starting_freezes_what_exists_and_collects_the_young_less_often() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    seen = json.loads(probe.stdout)
    assert seen["after"] == [YOUNG_COLLECTION_THRESHOLD, *seen["before"][1:]]
    assert seen["frozen"] > 50_000, "the imported modules' objects are out of the collector's way"
    assert seen["young"] < 100, "what starting left behind was collected before freezing"
