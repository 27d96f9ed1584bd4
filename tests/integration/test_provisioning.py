"""The shared provisioning module: explicit settings win, and servers die with their starter."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from service.devstack.provision import provisioned

STARTER = """
import json, sys, time
from pathlib import Path
from service.devstack.provision import provisioned
with provisioned(Path(sys.argv[1]), durable=False, allow_docker=False) as endpoints:
    print(json.dumps([endpoints.database_url, endpoints.kafka_bootstrap_servers]), flush=True)
    time.sleep(120)
"""


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_explicit_settings_are_used_as_given_and_nothing_is_started(tmp_path: Path) -> None:
    with provisioned(
        tmp_path, database_url="postgresql://db.example/orders", kafka_bootstrap_servers="k:9092"
    ) as endpoints:
        assert (endpoints.database_url, endpoints.kafka_bootstrap_servers) == (
            "postgresql://db.example/orders",
            "k:9092",
        )
        assert (endpoints.database_origin, endpoints.kafka_origin) == ("explicit", "explicit")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_starter_leaves_no_server_behind(tmp_path: Path) -> None:
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert starter.stdout is not None
    database_url, bootstrap = json.loads(starter.stdout.readline())
    ports = [int(database_url.split(":")[-1].split("/")[0]), int(bootstrap.split(":")[-1])]
    assert all(accepts_connections(port) for port in ports)

    starter.send_signal(signal.SIGKILL)
    starter.wait(10)

    deadline = time.monotonic() + 20
    while any(accepts_connections(port) for port in ports) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(accepts_connections(port) for port in ports), "a server outlived its starter"
