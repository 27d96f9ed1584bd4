"""One way to get a Postgres and a Kafka-protocol broker, for `make run` and for the tests.

Order of preference, per server: an explicit URL from the environment; a Docker engine that
answers (testcontainers: `postgres`, `apache/kafka` in KRaft mode); the embedded pip-installed
servers. Whatever this module starts, it stops when the context exits.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from service.devstack.embedded import EmbeddedKafka, EmbeddedPostgres
from service.devstack.processes import free_port, port_is_free
from service.domain.values import frozen
from service.errors import ProvisioningError

log = logging.getLogger(__name__)

POSTGRES_IMAGE = "postgres:17"
KAFKA_IMAGE = "apache/kafka:3.9.1"


@frozen
class Endpoints:
    database_url: str
    kafka_bootstrap_servers: str
    kafka_idempotent_producer: bool
    database_origin: str
    kafka_origin: str


def docker_answers() -> bool:
    """True when a Docker engine responds; a client without an engine does not count."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


@contextlib.contextmanager
def provisioned(
    work_dir: Path,
    *,
    database_url: str | None = None,
    kafka_bootstrap_servers: str | None = None,
    postgres_port: int | None = None,
    kafka_port: int | None = None,
    durable: bool = True,
    allow_docker: bool = True,
) -> Iterator[Endpoints]:
    """Yield reachable endpoints, starting only what was not given explicitly.

    Ports default to free ones, so tests can run beside a running `make run`.
    """
    database_url = database_url or os.environ.get("DATABASE_URL") or None
    kafka_bootstrap_servers = (
        kafka_bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
    )
    use_docker = (
        allow_docker
        and (database_url is None or kafka_bootstrap_servers is None)
        and docker_answers()
    )
    with contextlib.ExitStack() as stack:
        if database_url is not None:
            db_origin = "explicit"
        elif use_docker:
            database_url, db_origin = stack.enter_context(_docker_postgres()), "docker"
        else:
            port = _port(postgres_port, "Postgres")
            server = EmbeddedPostgres(work_dir / "pgdata", port, durable=durable)
            server.start()
            stack.callback(server.stop)
            database_url, db_origin = server.url, "embedded"

        if kafka_bootstrap_servers is not None:
            kafka_origin = "explicit"
            idempotent = os.environ.get("KAFKA_IDEMPOTENT_PRODUCER", "true").lower() != "false"
        elif use_docker:
            kafka_bootstrap_servers = stack.enter_context(_docker_kafka())
            kafka_origin, idempotent = "docker", True
        else:
            broker = EmbeddedKafka(_port(kafka_port, "Kafka"), work_dir / "tansu.log")
            broker.start()
            stack.callback(broker.stop)
            kafka_bootstrap_servers, kafka_origin = broker.bootstrap_servers, "embedded"
            idempotent = broker.supports_idempotence

        log.info(
            "Postgres (%s): %s; Kafka (%s): %s",
            db_origin,
            database_url,
            kafka_origin,
            kafka_bootstrap_servers,
        )
        yield Endpoints(database_url, kafka_bootstrap_servers, idempotent, db_origin, kafka_origin)


def _port(wanted: int | None, what: str) -> int:
    if wanted is None:
        return free_port()
    if not port_is_free(wanted):
        raise ProvisioningError(f"port {wanted} for {what} is taken; stop what uses it")
    return wanted


@contextlib.contextmanager
def _docker_postgres() -> Iterator[str]:
    from testcontainers.postgres import PostgresContainer

    container: Any = PostgresContainer(POSTGRES_IMAGE, driver=None, dbname="orders")
    with container:
        yield str(container.get_connection_url())


@contextlib.contextmanager
def _docker_kafka() -> Iterator[str]:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    port = free_port()
    container: Any = DockerContainer(KAFKA_IMAGE).with_bind_ports(9092, port)
    for name, value in kraft_single_node_env(f"127.0.0.1:{port}").items():
        container = container.with_env(name, value)
    with container:
        wait_for_logs(container, "Kafka Server started", timeout=90)
        yield f"127.0.0.1:{port}"


def kraft_single_node_env(advertised: str) -> dict[str, str]:
    """Settings for a one-node Apache Kafka in KRaft mode (compose.yaml has the same, plus a
    listener for the host)."""
    return {
        "KAFKA_NODE_ID": "1",
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{advertised}",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    }
