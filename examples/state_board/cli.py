"""`python -m examples.state_board run`: bootstrap the board from the state topics, print it,
then print each change as it follows the events and state topics."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer
from aiokafka import AIOKafkaConsumer

from contracts.topics import ORDERS, PURCHASE_ORDERS, DocumentTopics
from examples.kafka_settings import KafkaClientSettings
from examples.state_board.board import Board, Change, Entry
from examples.state_board.reading import bootstrap, follow

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


@app.callback()
def commands() -> None:
    """A group, so that `run` stays a subcommand beside any added later."""


@app.command()
def run(
    tenant: Annotated[str | None, typer.Option(help="show only this tenant's documents")] = None,
) -> None:
    """Print every live document, then every change, until stopped (SIGTERM, Ctrl-C)."""
    settings = KafkaClientSettings()
    families = {
        name: DocumentTopics.for_family(name, settings.topic_prefix)
        for name in (PURCHASE_ORDERS, ORDERS)
    }

    def shown(entry: Entry | None) -> bool:
        return tenant is None or entry is None or entry.tenant_id == tenant

    def print_change(change: Change) -> None:
        if shown(change.entry):
            typer.echo(f"{change.family} {change.key}: {_line(change.entry)}")

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        board = Board()
        consumer = AIOKafkaConsumer(
            **settings.kafka_options(), group_id=None, enable_auto_commit=False
        )
        await consumer.start()
        try:
            start = await bootstrap(consumer, board, families)
            for (family, key), entry in sorted(board.entries.items()):
                if shown(entry):
                    typer.echo(f"{family} {key}: {_line(entry)}")
            typer.echo(f"-- {len(board.entries)} live documents; following changes", err=True)
            await follow(consumer, board, families, start, stop, print_change)
        finally:
            await consumer.stop()

    asyncio.run(go())


def _line(entry: Entry | None) -> str:
    if entry is None:
        return "gone (deleted or erased)"
    return f"v{entry.version} {entry.snapshot.status} ({entry.event_type})"


def main() -> None:
    app(prog_name="python -m examples.state_board")
