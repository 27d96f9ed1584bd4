"""`python -m examples.inventory_consumer`: run the reference inventory consumer, or ask it for
stock."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Annotated

import asyncpg
import typer

from examples.inventory_consumer import consumer, stock
from examples.inventory_consumer.settings import ConsumerSettings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.command()
def run() -> None:
    """Consume inventory.movements into stock levels until stopped (SIGTERM, Ctrl-C)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = ConsumerSettings()

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await consumer.run(
            settings.database_url,
            settings.kafka_options(),
            settings.movements_topic,
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
    settings = ConsumerSettings()

    async def read() -> stock.StockLevel:
        conn = await asyncpg.connect(settings.database_url)
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


def main() -> None:
    app(prog_name="python -m examples.inventory_consumer")
