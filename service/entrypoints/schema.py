"""The schema `serve` needs, either applied at start or checked for (MIGRATE_ON_START)."""

from __future__ import annotations

from service.adapters.database import migrate, pending_migrations
from service.errors import ConfigurationError
from service.settings import Settings


async def prepare_schema(settings: Settings) -> None:
    """Apply pending migrations, or, with MIGRATE_ON_START=false (a role without DDL rights),
    refuse to start on a schema behind this build: every statement would fail later, one
    command at a time, instead of once here with the fix in the message."""
    if settings.migrate_on_start:
        await migrate(settings.database_url)
        return
    pending = await pending_migrations(settings.database_url)
    if pending:
        which = ", ".join(pending) if len(pending) <= 3 else f"{pending[0]} to {pending[-1]}"
        raise ConfigurationError(
            f"the database schema is behind this build: {len(pending)} migration(s) pending"
            f" ({which}); run `order-service migrate` with a role that may change the schema"
            " (MIGRATE_ON_START=false: serve applies none itself)"
        )
