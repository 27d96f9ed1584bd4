"""Health and metrics of `order-service relay` when it runs as a deployment of its own.

The relay has no web framework and needs none: four GET paths answered with one small HTTP/1.1
response each, on asyncio streams. The paths and bodies match the service's, so the same
probes work for both (`/health/live`, `/health/ready`, `/health`, `/metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

# A client that has not sent its request line and headers by then is dropped.
REQUEST_TIMEOUT_SECONDS = 5.0
MAX_HEADER_LINES = 100
JSON = "application/json"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
_REASONS = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}

Response = tuple[int, str, bytes]


class RelayHealth:
    """Answers health and metrics requests from the relay's status report."""

    def __init__(
        self, report: Callable[[], dict[str, Any]], metrics: Callable[[], bytes] | None
    ) -> None:
        self._report = report
        self._metrics = metrics

    def answer(self, path: str) -> Response:
        if path == "/health/live":
            # Answering shows the event loop runs; a database outage is readiness's concern.
            return _json({"status": "alive"}, 200)
        report = self._report()
        if path == "/health/ready":
            reasons = [] if report["alive"] else ["relay: not completing cycles"]
            return _json(
                {"status": "not_ready" if reasons else "ready", "reasons": reasons},
                503 if reasons else 200,
            )
        if path == "/health":
            ok = bool(report["alive"])
            body = {"status": "ok" if ok else "unhealthy", "checks": {"relay": report}}
            return _json(body, 200 if ok else 503)
        if path == "/metrics" and self._metrics is not None:
            return 200, PROMETHEUS_TEXT, self._metrics()
        return 404, "text/plain", b"not found\n"

    async def serve(self, host: str, port: int) -> asyncio.Server:
        return await asyncio.start_server(self._handle, host, port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                request = await reader.readline()
                for _ in range(MAX_HEADER_LINES):  # headers are read and ignored
                    if await reader.readline() in (b"\r\n", b"\n", b""):
                        break
            parts = request.split()
            path = parts[1].decode("ascii", "replace").split("?")[0] if len(parts) > 1 else ""
            status, content_type, body = self.answer(path)
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass  # a client that went away or spoke nonsense gets nothing
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


def _json(body: dict[str, Any], status: int) -> Response:
    return status, JSON, json.dumps(body).encode()
