"""Child server processes that never outlive the process that started them."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from service.errors import ProvisioningError

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    def set_parent_death_signal() -> None:
        # Runs in the child after it changed user; the kernel then signals it when we die, so a
        # crashed test run or a killed `make run` leaves no server behind.
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(sig))

    return set_parent_death_signal


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(
    port: int,
    process: subprocess.Popen[bytes],
    log_file: Path,
    timeout: float,
    host: str = "127.0.0.1",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ProvisioningError(
                f"{process.args!r} exited with {process.returncode}; log:\n{_tail(log_file)}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise ProvisioningError(
        f"nothing listened on {host}:{port} after {timeout}s:\n{_tail(log_file)}"
    )


def start_server(
    argv: Sequence[str],
    *,
    log_file: Path,
    parent_death_signal: signal.Signals,
    user: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    log = log_file.open("ab")
    try:
        return subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            user=user,
            env={**os.environ, **(env or {})},
            preexec_fn=die_with_parent(parent_death_signal),
        )
    finally:
        log.close()


def stop_server(process: subprocess.Popen[bytes], sig: signal.Signals, timeout: float = 10) -> None:
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
