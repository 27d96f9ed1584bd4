"""Connecting to Postgres, applying versioned migrations, telling transient failures apart."""

from __future__ import annotations

import asyncio
import logging
import re
from importlib import resources

import asyncpg

from service.errors import MigrationError

log = logging.getLogger(__name__)

# Postgres advisory lock ids; any fixed numbers unique within this service will do.
MIGRATION_LOCK_ID = 0x0D15_0001
RELAY_LEADER_LOCK_ID = 0x0D15_0002

OUTBOX_CHANNEL = "outbox_pending"
"""NOTIFY channel that wakes the relay when rows are left to it."""

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.QueryCanceledError,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("service.adapters").joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    return sorted(found)


async def migrate(database_url: str) -> list[str]:
    """Apply pending migrations under an advisory lock, so concurrent starts do it once."""
    conn = await asyncpg.connect(database_url)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, sql in _pending(await _applied_versions(conn)):
            try:
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        version,
                        name,
                    )
            except asyncpg.PostgresError as error:
                # Each migration is its own transaction: the ones before stay applied, this one
                # left nothing behind, and running `migrate` again resumes here.
                raise MigrationError(
                    f"migration {name} failed ({type(error).__name__}: {error});"
                    f" applied before it: {', '.join(applied) or 'none'}"
                ) from error
            applied.append(name)
            log.info("applied migration %s", name)
    finally:
        await conn.close()
    return applied


async def pending_migrations(database_url: str) -> list[str]:
    """The migrations this build ships that the database has not applied, without changing
    anything: it needs no DDL rights, so a service whose role has none can check its schema."""
    conn = await asyncpg.connect(database_url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        done = await _applied_versions(conn) if exists else set()
    finally:
        await conn.close()
    return [name for _, name, _ in _pending(done)]


async def _applied_versions(conn: asyncpg.Connection) -> set[int]:
    return {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}


def _pending(done: set[int]) -> list[tuple[int, str, str]]:
    """The shipped migrations not in `done`, in order; refuses a database ahead of this build."""
    known = migrations()
    unknown = done - {version for version, _, _ in known}
    if unknown:
        raise MigrationError(
            f"database has migrations {sorted(unknown)} that this build does not know; "
            "run a newer build"
        )
    return [migration for migration in known if migration[0] not in done]


async def create_pool(database_url: str, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=size, reset=_keep_session)
    assert pool is not None
    return pool


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Pooled connections hold no session state (transaction-scoped locks only, no LISTEN), so
    the default reset query on every release would be a wasted round trip per command."""
