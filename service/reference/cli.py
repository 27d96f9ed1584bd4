"""`order-service inventory`: run the reference inventory consumer, or ask it for stock."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import asyncpg
import typer

from contracts.topics import INVENTORY_MOVEMENTS
from service.reference import consumer, stock
from service.settings import Settings

app = typer.Typer(no_args_is_help=True, help=__doc__)


def _database(settings: Settings) -> str:
    return settings.inventory_database_url or settings.database_url


@app.command()
def run() -> None:
    """Consume inventory.movements into stock levels until stopped (SIGTERM, Ctrl-C)."""
    from service.entrypoints.cli import _settings

    settings = _settings()
    options = settings.kafka_connection().client_options()

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await consumer.run(
            _database(settings),
            options,
            f"{settings.topic_prefix}{INVENTORY_MOVEMENTS}",
            settings.inventory_consumer_group,
            settings.inventory_dedup_hours,
            stop,
        )

    asyncio.run(go())


@app.command("stock")
def show_stock(
    sku: Annotated[str, typer.Argument(help="e.g. MUG-RED")],
    warehouse: Annotated[str, typer.Option(help="warehouse id")] = "WH-1",
    tenant: Annotated[str, typer.Option(help="tenant id")] = "demo",
) -> None:
    """Print the stock of a sku in a warehouse: incoming, on hand, reserved, available."""
    from service.entrypoints.cli import _settings

    settings = _settings()

    async def read() -> stock.StockLevel:
        conn = await asyncpg.connect(_database(settings))
        try:
            await stock.create_tables(conn)
            return await stock.stock_of(conn, tenant, warehouse, sku)
        finally:
            await conn.close()

    level = asyncio.run(read())
    typer.echo(
        f"{sku} in {warehouse} ({tenant}): incoming {level.incoming}, on hand {level.on_hand},"
        f" reserved {level.reserved}, available {level.available}"
    )
