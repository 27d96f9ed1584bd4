"""Database spans against a real Postgres, recorded in memory: a query inside a trace of the
service's gets a span with its text and never its parameters; one that fails ends ERROR with
its error's class and nothing of its text, which for Postgres repeats the refused row (DETAIL)
and for asyncpg the refused argument."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from service.adapters.tracing import Tracing

CANARY = "canary-ada-lovelace@example.com"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing = Tracing([SimpleSpanProcessor(exporter)])
    try:
        with tracing.step("decide"):  # database calls are traced only within a trace
            yield exporter
    finally:
        tracing.shutdown()


def everything_of(span: ReadableSpan) -> str:
    """All a span exports: name, status, attributes, events."""
    exported: str = span.to_json()
    return exported


async def test_failed_queries_leave_no_value_in_their_spans(
    database_url: str, exporter: InMemorySpanExporter
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TEMP TABLE people (email text CHECK (email LIKE '%@x.org'))")
        await conn.execute("INSERT INTO people VALUES ($1)", "ok@x.org")
        with pytest.raises(asyncpg.CheckViolationError) as refused_row:
            await conn.execute("INSERT INTO people VALUES ($1)", CANARY)
        with pytest.raises(asyncpg.DataError) as refused_argument:
            await conn.fetchval("SELECT $1::int", CANARY)
    finally:
        await conn.close()
    # The errors themselves do carry the value: that is what must not reach a trace.
    assert CANARY in (refused_row.value.detail or "")
    assert CANARY in str(refused_argument.value)

    spans = [s for s in exporter.get_finished_spans() if s.name != "decide"]
    inserts = [s for s in spans if "INSERT" in str((s.attributes or {}).get("db.statement", ""))]
    assert len(inserts) == 2
    assert inserts[1].status.status_code is StatusCode.ERROR
    assert all(CANARY not in everything_of(span) for span in spans)
    assert "ok@x.org" not in "".join(everything_of(span) for span in spans)
