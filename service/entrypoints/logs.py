"""Logging for the service: one LOG_LEVEL for the service, FastStream and aiokafka alike, and
repeats held back, so a broker outage logs a few lines a minute instead of hundreds a second.
LOG_FORMAT=json writes one JSON object per line, with the fields a log line was given
(command_id, topic, partition, offset, tenant_id) as keys of their own."""

from __future__ import annotations

import logging
import sys
import time
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]

# Loggers of the libraries the service runs on; LOG_LEVEL governs them too.
LIBRARY_LOGGERS = ("faststream", "aiokafka", "asyncpg", "uvicorn")
REPEAT_INTERVAL_SECONDS = 30.0


class RepeatLimiter(logging.Filter):
    """Lets the same message (logger, level and format string) through once per interval, and
    says how many were held back when it next lets one through."""

    def __init__(self, interval_seconds: float = REPEAT_INTERVAL_SECONDS) -> None:
        super().__init__()
        self._interval = interval_seconds
        self._last: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = time.monotonic()
        last, held = self._last.get(key, (float("-inf"), 0))
        if now - last < self._interval:
            self._last[key] = (last, held + 1)
            return False
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {now - last:.0f}s)"
        return True


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
        force=True,
    )
    limiter = RepeatLimiter()
    for handler in logging.getLogger().handlers:
        handler.addFilter(limiter)
        if log_format == "json":
            handler.setFormatter(
                JsonFormatter(
                    "%(levelname)s %(name)s %(message)s",
                    rename_fields={"levelname": "level", "name": "logger"},
                    timestamp=True,
                )
            )
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(level.upper())
