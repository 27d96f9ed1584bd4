"""The committed documents a process holds: by kind and key, each with the event that made its
version, within a budget of bytes of JSON, the least recently used going first."""

from __future__ import annotations

from uuid import UUID, uuid4

from service.adapters.document_cache import HEAVIEST_SHARE, CommittedDocuments, Held

A, B, C = ("t", "A"), ("t", "B"), ("t", "C")


def held(version: int, state: str, weight: int = 10, event_id: UUID | None = None) -> Held:
    return Held(event_id or uuid4(), version, state, weight)


def test_a_document_is_found_with_the_event_it_was_remembered_with() -> None:
    cache = CommittedDocuments(10_000)
    a1, b3 = held(1, "a1"), held(3, "b3")
    cache.remember("po", [(A, a1), (B, b3)])
    assert cache.lookup("po", [A, B, C]) == {A: a1, B: b3}
    assert cache.lookup("other kind", [A, B]) == {}


def test_a_later_version_replaces_an_earlier_one_and_never_the_reverse() -> None:
    cache = CommittedDocuments(10_000)
    a1, a2 = held(1, "a1"), held(2, "a2")
    cache.remember("po", [(A, a1), (A, a2)])
    # A transaction that read version 1 may commit after the one that wrote version 2.
    cache.remember("po", [(A, a1)])
    assert cache.lookup("po", [A]) == {A: a2}
    # Version 2 again, from another event: Postgres lost the commit of the first.
    again = held(2, "a2 again")
    cache.remember("po", [(A, again)])
    assert cache.lookup("po", [A]) == {A: again}
    assert cache.weight == again.weight


def test_the_budget_is_in_bytes_and_the_least_recently_used_goes_first() -> None:
    cache = CommittedDocuments(100 * HEAVIEST_SHARE)
    keys = [("t", f"D{n}") for n in range(2 * HEAVIEST_SHARE)]
    cache.remember("po", [(key, held(1, key[1], 50)) for key in keys])
    assert (len(cache), cache.weight) == (2 * HEAVIEST_SHARE, 100 * HEAVIEST_SHARE)
    assert cache.lookup("po", keys[:1]).keys() == {keys[0]}  # D0 used last: D1 goes first
    cache.remember("po", [(A, held(1, "a", 100))])  # the weight of two
    assert cache.lookup("po", keys[:4]).keys() == {keys[0], keys[3]}
    assert (len(cache), cache.weight) == (2 * HEAVIEST_SHARE - 1, 100 * HEAVIEST_SHARE)


def test_a_document_heavier_than_its_share_is_not_held() -> None:
    cache = CommittedDocuments(100 * HEAVIEST_SHARE)
    light = held(1, "light", 100)
    cache.remember("po", [(A, light), (B, held(1, "heavy", 101))])
    assert cache.lookup("po", [A, B]) == {A: light}
    assert cache.status() == {
        "documents": 1,
        "bytes": 100,
        "capacity_bytes": 100 * HEAVIEST_SHARE,
        "heaviest_held_bytes": 100,
    }
    # A heavy later version lets go of the light earlier one.
    cache.remember("po", [(A, held(2, "heavy", 101))])
    assert (cache.lookup("po", [A]), cache.weight) == ({}, 0)


def test_forgotten_documents_and_a_budget_of_nothing_hold_nothing() -> None:
    cache = CommittedDocuments(10_000)
    b = held(1, "b")
    cache.remember("po", [(A, held(1, "a")), (B, b)])
    cache.forget("po", [A, C])
    assert (cache.lookup("po", [A, B]), cache.weight) == ({B: b}, b.weight)
    off = CommittedDocuments(0)
    off.remember("po", [(A, held(1, "a", 1))])
    assert (off.lookup("po", [A]), len(off)) == ({}, 0)


def test_what_a_transaction_saw_is_taken_in_order() -> None:
    cache = CommittedDocuments(10_000)
    a2 = held(2, "a2")
    # Read without an event (not to hold), then saved; deleted after being held.
    cache.remember("po", [(A, None), (A, a2), (B, held(1, "b")), (B, None)])
    assert cache.lookup("po", [A, B]) == {A: a2}
    assert cache.weight == a2.weight
