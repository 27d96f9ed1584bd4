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
    """Lets the same message through once per interval, and says how many were held back when
    it next lets one through. The same message is the same logger, level and format string, or,
    for a record logged with `extra={"limit_key": ...}`, the same logger, level and limit_key:
    so a burst of refusals can log one line per reason however their wording differs."""

    MAX_KEYS = 1024
    """Past this many keys, those that hold nothing back and whose interval is over are
    forgotten (letting their next line through would not change), so keys do not pile up."""

    def __init__(self, interval_seconds: float = REPEAT_INTERVAL_SECONDS) -> None:
        super().__init__()
        self._interval = interval_seconds
        self._last: dict[tuple[str, int, str, bool], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        limit_key = getattr(record, "limit_key", None)
        if limit_key is None:
            key = (record.name, record.levelno, str(record.msg), False)
        else:
            key = (record.name, record.levelno, str(limit_key), True)
        now = time.monotonic()
        last, held = self._last.get(key, (float("-inf"), 0))
        if now - last < self._interval:
            self._last[key] = (last, held + 1)
            return False
        if key not in self._last and len(self._last) >= self.MAX_KEYS:
            self._forget_idle(now)
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} more like this in the last {now - last:.0f}s)"
        return True

    def _forget_idle(self, now: float) -> None:
        idle = [
            key
            for key, (last, held) in self._last.items()
            if not held and now - last >= self._interval
        ]
        for key in idle:
            del self._last[key]


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
