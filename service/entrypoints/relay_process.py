"""The outbox relay as a process of its own, so that publishing runs on the other core while
the service decides. `order-service serve` starts it as a child and restarts it should it die;
`order-service relay` runs it alone. The child reports its status through a small JSON file
that the parent's health endpoint reads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from service.adapters.kafka import make_producer
from service.adapters.relay import OutboxRelay, RelayStatus
from service.devstack.processes import die_with_parent, stop_server
from service.settings import Settings, tracing_from

log = logging.getLogger(__name__)

STATUS_INTERVAL_SECONDS = 0.5
# A relay that has not finished a cycle, or not reported, for this long is reported unhealthy.
RELAY_STALL_SECONDS = 60.0


async def run_relay(settings: Settings, status_file: Path | None) -> None:
    """Publish the outbox until SIGTERM or SIGINT."""
    producer = make_producer(
        settings.kafka_connection(), idempotent=settings.kafka_idempotent_producer
    )
    await producer.start()
    tracing = tracing_from(settings)
    relay = OutboxRelay(
        settings.database_url,
        producer,
        batch_size=settings.relay_batch_size,
        poll_interval_seconds=settings.relay_poll_interval_seconds,
        inbox_retention_hours=settings.inbox_retention_hours,
        max_backoff_seconds=settings.retry_max_backoff_seconds,
        tracing=tracing,
        reply_prefixes=tuple(f"{settings.topic_prefix}{p}" for p in settings.reply_topic_prefixes),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = asyncio.create_task(relay.run(stop), name="outbox-relay")
    try:
        while not running.done():
            if status_file is not None:
                _write_status(status_file, relay.status)
            await asyncio.wait([running], timeout=STATUS_INTERVAL_SECONDS)
    finally:
        await producer.stop()
        if tracing is not None:
            tracing.shutdown()


def _write_status(path: Path, status: RelayStatus) -> None:
    report = {
        "leader": status.leader,
        "last_cycle_seconds_ago": round(time.monotonic() - status.last_cycle_at, 3),
        "published_total": status.published_total,
        "errors_total": status.errors_total,
        "last_error": status.last_error,
        "replies_dropped": status.replies_dropped,
        "written_at": time.time(),
    }
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(report))
    os.replace(partial, path)


def relay_environment(settings: Settings) -> dict[str, str]:
    """The environment that gives the child the parent's settings (the master key excluded:
    the relay publishes bytes and never opens personal data)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_KEY", "MASTER_KEY_FILE")}
    for name, value in settings.model_dump(exclude={"master_key", "master_key_file"}).items():
        if isinstance(value, SecretStr):
            env[name.upper()] = value.get_secret_value()
        elif isinstance(value, list | dict):
            # pydantic-settings reads complex values from the environment as JSON.
            env[name.upper()] = json.dumps(value)
        elif value is not None:
            env[name.upper()] = str(value)
    return env


class RelayProcess:
    """The parent's side: starts the child, restarts it when it dies, reads its status."""

    def __init__(self, settings: Settings, status_file: Path) -> None:
        self._env = relay_environment(settings)
        self._status_file = status_file
        self._process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        self._status_file.unlink(missing_ok=True)
        self._process = subprocess.Popen(
            [sys.executable, "-m", "service", "relay", "--status-file", str(self._status_file)],
            env=self._env,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent(signal.SIGTERM),
        )

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart the child whenever it exits, until `stop`."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if not stop.is_set() and self._process is not None and self._process.poll() is not None:
                log.error("the relay exited with %s; restarting it", self._process.returncode)
                self.restarts += 1
                self.start()

    def stop(self) -> None:
        if self._process is not None:
            stop_server(self._process, signal.SIGTERM, timeout=15)

    def status(self) -> dict[str, Any]:
        try:
            report: dict[str, Any] = json.loads(self._status_file.read_text())
        except (OSError, ValueError):
            report = {}
        running = self._process is not None and self._process.poll() is None
        fresh = time.time() - report.get("written_at", 0) < RELAY_STALL_SECONDS
        cycling = report.get("last_cycle_seconds_ago", RELAY_STALL_SECONDS) < RELAY_STALL_SECONDS
        return {
            "alive": running and fresh and cycling,
            "leader": report.get("leader", False),
            "published_total": report.get("published_total", 0),
            "errors_total": report.get("errors_total", 0),
            "last_error": report.get("last_error"),
            "replies_dropped": report.get("replies_dropped", 0),
            "restarts": self.restarts,
        }
