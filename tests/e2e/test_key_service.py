"""Keys fail safe on the real service process (hole 7 of the review): `serve` never takes the
development key files nor a command's word by accident, a key file that stops loading keeps
the last good keys and turns readiness red, a deleted one drops its keys, and the gate's
refusals are counted by reason."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from service.app.auth import AuthMode
from service.settings import Settings
from tests.e2e.test_operability import readiness, scrape, value
from tests.support import (
    Record,
    ServiceProcess,
    WireProbe,
    create_order,
    eventually,
    http_get,
    order_status,
    service_env,
)
from tests.tokens import bearer, secured, service_token, write_keys

SCOPES = "orders:write orders:delete"


def serve(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`order-service serve` as an operator would start it; it must refuse before it serves."""
    return subprocess.run(
        [sys.executable, "-m", "service", "serve"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_serve_refuses_claimed_actors_unless_they_are_allowed(
    settings: Settings, tmp_path: Path
) -> None:
    for mode in (AuthMode.OFF, AuthMode.VERIFY):
        env = {
            **service_env(settings),
            "AUTH_MODE": mode.value,
            "AUTH_ALLOW_CLAIMED_ACTORS": "false",
        }
        ran = serve(env, tmp_path)
        assert ran.returncode != 0
        assert "AUTH_ALLOW_CLAIMED_ACTORS=true" in ran.stderr


def test_serve_never_reads_the_development_key_files(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / ".dev-master.key").write_text("QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=\n")
    write_keys(tmp_path / ".dev-auth-keys.json")
    env = {
        name: text
        for name, text in service_env(settings).items()
        if not name.startswith(("MASTER_KEY", "AUTH_"))
    }
    ran = serve(env, tmp_path)
    assert ran.returncode != 0
    assert "no master key" in ran.stderr
    ran = serve({**env, "MASTER_KEY": settings.master_key.get_secret_value()}, tmp_path)  # type: ignore[union-attr]
    assert ran.returncode != 0
    assert "needs AUTH_KEYS_FILE" in ran.stderr


async def _answer(probe: WireProbe, body: dict[str, object], token: str | None) -> Record:
    headers = bearer(token) if token is not None else []
    await probe.send_raw(str(body["order_id"]).encode(), json.dumps(body).encode(), headers)
    return await probe.outcome(str(body["command_id"]))


async def test_a_broken_key_file_keeps_the_good_keys_and_turns_readiness_red(
    settings: Settings, order_probe: WireProbe, tmp_path: Path
) -> None:
    keys_file = write_keys(tmp_path / "keys.json")
    good = keys_file.read_text()
    required = secured(settings, keys_file)
    service = ServiceProcess(required, tmp_path / "service.log")
    service.start()
    port = required.health_port
    try:
        await eventually(lambda: _ready(port), timeout=90, what="the service is ready")
        health = json.loads(await asyncio.to_thread(_body, port, "/health"))
        assert health["checks"]["auth"] == {
            "mode": "required",
            "claimed_actors": False,
            "keys": "ok",
        }
        first = create_order("O-1")
        created = await _answer(order_probe, first, service_token(first, "checkout", SCOPES))
        assert created.body["type"] == "order.created", created.body

        keys_file.write_text('{"keys": [')  # a half-written file: keep the keys, say so
        _touch_later(keys_file)
        await eventually(lambda: _not_ready_because(port, "AUTH_KEYS_FILE"), timeout=30)
        second = order_status("O-1", "ready")
        moved = await _answer(order_probe, second, service_token(second, "checkout", SCOPES))
        assert moved.body["type"] == "order.status_changed", moved.body

        keys_file.unlink()  # a deleted file trusts nothing any more
        await eventually(lambda: _not_ready_because(port, "is gone"), timeout=30)
        third = order_status("O-1", "fulfilled")
        refused = await _answer(order_probe, third, service_token(third, "checkout", SCOPES))
        assert refused.body["errors"][0]["error_code"] == "unauthenticated"
        unsigned = await _answer(order_probe, order_status("O-1", "fulfilled"), None)
        assert unsigned.body["errors"][0]["error_code"] == "unauthenticated"

        keys_file.write_text(good)
        _touch_later(keys_file)
        await eventually(lambda: _ready(port), timeout=30, what="ready again")
        series = await scrape(port)
        refusals = "order_service_gate_refusals_total"
        assert value(series, refusals, family="orders", reason="invalid_token") == 1
        assert value(series, refusals, family="orders", reason="no_token") == 1
    finally:
        service.stop()
    log = (tmp_path / "service.log").read_text()
    assert "does not load" in log
    # Each refusal is logged, one line per reason, never the token.
    assert log.count("the token is not valid") == 1
    assert log.count("a token is required") == 1


def _body(port: int, path: str) -> bytes:
    return http_get(port, path)[1]


async def _ready(port: int) -> bool:
    status, _ = await readiness(port)
    return status == 200


async def _not_ready_because(port: int, words: str) -> bool:
    status, body = await readiness(port)
    return status == 503 and any(words in reason for reason in body.get("reasons", []))


def _touch_later(path: Path) -> None:
    """Some file systems keep whole-second mtimes: make a rewrite look like a change."""
    stat = path.stat()
    os.utime(path, (stat.st_atime + 2, stat.st_mtime + 2))
