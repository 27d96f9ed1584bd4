"""The outbox relay as a process of its own, so that publishing runs on the other core while
the service decides. `order-service serve` starts it as a child and restarts it should it die;
`order-service relay` runs it alone, with health and metrics of its own. The child reports its
status through a small JSON file that the parent's health endpoint reads.

The child is started in a session of its own (so a Ctrl-C in a terminal reaches the parent,
which stops it in order) and holds the read end of a pipe whose only write end the parent
keeps: when the parent dies, however it dies, the child reads end-of-file and stops. That works
on every POSIX system, unlike Linux's parent-death signal, and needs no `preexec_fn` (unsafe in a
process that runs threads)."""

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
from service.adapters.tracing_config import tracing_from
from service.devstack.processes import stop_server
from service.entrypoints.metrics import relay_metrics
from service.entrypoints.relay_health import RelayHealth
from service.entrypoints.restarts import RestartBackoff
from service.settings import Settings

log = logging.getLogger(__name__)

STATUS_INTERVAL_SECONDS = 0.5
# A relay that has not finished a cycle, or not reported, for this long is reported unhealthy.
RELAY_STALL_SECONDS = 60.0
# How often the parent looks whether its child has exited.
SUPERVISE_INTERVAL_SECONDS = 0.5


async def run_relay(
    settings: Settings,
    status_file: Path | None,
    *,
    parent_pipe: int | None = None,
    serve_health: bool = False,
) -> None:
    """Publish the outbox until SIGTERM or SIGINT, or until the parent holding the other end
    of `parent_pipe` is gone; with `serve_health`, answer health and metrics on
    HEALTH_HOST:HEALTH_PORT meanwhile."""
    # Before the producer starts: a tracing configuration it cannot honour stops the relay
    # with nothing to clean up.
    tracing = tracing_from()
    producer = make_producer(
        settings.kafka_connection(), idempotent=settings.kafka_idempotent_producer
    )
    await producer.start()
    relay = OutboxRelay(
        settings.database_url,
        producer,
        batch_size=settings.relay_batch_size,
        poll_interval_seconds=settings.relay_poll_interval_seconds,
        inbox_retention_hours=settings.inbox_retention_hours,
        max_backoff_seconds=settings.retry_max_backoff_seconds,
        tracing=tracing,
        reply_prefixes=tuple(f"{settings.topic_prefix}{p}" for p in settings.reply_topic_prefixes),
        sweep_after_seconds=settings.outbox_sweep_after_seconds,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if parent_pipe is not None:
        _stop_when_parent_dies(loop, parent_pipe, stop)
    health: asyncio.Server | None = None
    try:
        if serve_health:  # inside the try: a port in use still stops the producer

            def report() -> dict[str, Any]:
                return relay_report(relay.status)

            metrics = relay_metrics(report) if settings.metrics_enabled else None
            health = await RelayHealth(report, metrics).serve(
                settings.health_host, settings.health_port
            )
        running = asyncio.create_task(relay.run(stop), name="outbox-relay")
        while not running.done():
            if status_file is not None:
                _write_status(status_file, relay.status)
            await asyncio.wait([running], timeout=STATUS_INTERVAL_SECONDS)
    finally:
        if health is not None:
            health.close()
        await producer.stop()
        if tracing is not None:
            tracing.shutdown()


def _stop_when_parent_dies(loop: asyncio.AbstractEventLoop, pipe: int, stop: asyncio.Event) -> None:
    """The parent never writes to the pipe; end-of-file means its write end is closed, which
    the kernel does when the parent exits, even by SIGKILL."""
    os.set_blocking(pipe, False)

    def readable() -> None:
        try:
            data = os.read(pipe, 64)
        except BlockingIOError:
            return
        if not data:
            log.warning("the parent process is gone; stopping the relay")
            loop.remove_reader(pipe)
            stop.set()

    loop.add_reader(pipe, readable)


def relay_report(status: RelayStatus) -> dict[str, Any]:
    """What the relay tells about itself: in its status file, and on its own /health."""
    since = round(time.monotonic() - status.last_cycle_at, 3)
    return {
        "alive": since < RELAY_STALL_SECONDS,
        "leader": status.leader,
        "last_cycle_seconds_ago": since,
        "published_total": status.published_total,
        "errors_total": status.errors_total,
        "last_error": status.last_error,
        "replies_dropped": status.replies_dropped,
        "pid": os.getpid(),
    }


def _write_status(path: Path, status: RelayStatus) -> None:
    report = {**relay_report(status), "written_at": time.time()}
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
    """The parent's side: starts the child, restarts it (after a back-off) when it dies, reads
    its status."""

    def __init__(
        self, settings: Settings, status_file: Path, backoff: RestartBackoff | None = None
    ) -> None:
        self._env = relay_environment(settings)
        self._status_file = status_file
        self._backoff = backoff or RestartBackoff()
        self._process: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None
        """The write end of the child's parent pipe; closed only when the child is done."""
        self._started_at = 0.0
        self.restarts = 0

    def start(self) -> None:
        self._status_file.unlink(missing_ok=True)
        self._close_lifeline()
        read_end, write_end = os.pipe()  # both ends are not inherited unless passed
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "service",
                    "relay",
                    "--status-file",
                    str(self._status_file),
                    "--parent-pipe",
                    str(read_end),
                    "--no-health",
                ],
                env=self._env,
                stdin=subprocess.DEVNULL,
                pass_fds=(read_end,),
                start_new_session=True,
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)  # the child's copy is the only one left
        self._lifeline = write_end
        self._started_at = time.monotonic()

    async def supervise(self, stop: asyncio.Event) -> None:
        """Restart the child whenever it exits, after a back-off, until `stop`."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SUPERVISE_INTERVAL_SECONDS)
            if stop.is_set() or self._process is None or self._process.poll() is None:
                continue
            ran_for = time.monotonic() - self._started_at
            delay = self._backoff.next_delay(ran_for)
            log.error(
                "the relay exited with %s after %.0f s; restarting it in %.1f s",
                self._process.returncode,
                ran_for,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            if not stop.is_set():
                self.restarts += 1
                self.start()

    def stop(self) -> None:
        if self._process is not None:
            stop_server(self._process, signal.SIGTERM, timeout=15)
        self._close_lifeline()

    def _close_lifeline(self) -> None:
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

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
            "pid": self._process.pid if running and self._process is not None else None,
            "leader": report.get("leader", False),
            "published_total": report.get("published_total", 0),
            "errors_total": report.get("errors_total", 0),
            "last_error": report.get("last_error"),
            "replies_dropped": report.get("replies_dropped", 0),
            "restarts": self.restarts,
        }
