"""TLS settings reach the Kafka clients for real, and TLS options in DATABASE_URL reach asyncpg.

No broker here speaks TLS or SASL, so a TLS listener stands in for one: it verifies the
client's certificate (mutual TLS) and reads the first Kafka request the client sends through
the encrypted connection. That proves the service's clients verify the broker against the
configured CA, present the configured certificate, and speak Kafka over TLS; SASL on top is
the same client options (see the unit tests and the README for checking it on a real cluster).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ssl
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from service.adapters.database import migrate
from service.settings import Settings

API_VERSIONS = 18  # the first request every Kafka client sends


@dataclass
class Authority:
    """A throwaway certificate authority issuing certificates into `directory`."""

    directory: Path
    name: str = "test-ca"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        self.certificate = self._sign(subject, self.key.public_key(), ca=True)
        self.file = self._write(f"{self.name}.pem", self.certificate)

    def issue(self, common_name: str, *, server: bool) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        certificate = self._sign(subject, key.public_key(), ca=False, server=server)
        key_file = self.directory / f"{common_name}.key"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return self._write(f"{common_name}.pem", certificate), key_file

    def _sign(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        *,
        ca: bool,
        server: bool = False,
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
            )
        return builder.sign(self.key, hashes.SHA256())

    def _write(self, name: str, certificate: x509.Certificate) -> Path:
        path = self.directory / name
        path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        return path


@dataclass
class TlsListener:
    port: int
    client_subjects: list[str] = field(default_factory=list)
    first_api_keys: list[int] = field(default_factory=list)


@contextlib.asynccontextmanager
async def tls_listener(authority: Authority) -> AsyncIterator[TlsListener]:
    """Accepts TLS connections from clients holding a certificate of `authority`; records who
    connected and which Kafka request they sent first, and answers nothing."""
    cert, key = authority.issue("localhost", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=authority.file)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    seen = TlsListener(0)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        seen.client_subjects += [value for rdn in peer.get("subject", ()) for _, value in rdn]
        with contextlib.suppress(Exception):
            header = await reader.readexactly(6)  # int32 size, int16 api_key
            seen.first_api_keys.append(struct.unpack(">ih", header)[1])
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=context)
    seen.port = server.sockets[0].getsockname()[1]
    async with server:
        yield seen


async def try_to_connect(settings: Settings) -> None:
    producer = AIOKafkaProducer(
        **settings.kafka_connection().client_options("cli"), request_timeout_ms=2000
    )
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.start(), 3)
    with contextlib.suppress(Exception):
        await producer.stop()


def tls_settings(port: int, ca: Path, cert: Path, key: Path) -> Settings:
    return Settings(
        kafka_bootstrap_servers=f"localhost:{port}",
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=ca,
        kafka_ssl_cert_file=cert,
        kafka_ssl_key_file=key,
    )


async def test_kafka_clients_verify_the_broker_present_their_certificate_and_speak_kafka(
    tmp_path: Path,
) -> None:
    authority = Authority(tmp_path)
    cert, key = authority.issue("order-service", server=False)
    async with tls_listener(authority) as listener:
        await try_to_connect(tls_settings(listener.port, authority.file, cert, key))
    assert "order-service" in listener.client_subjects
    assert API_VERSIONS in listener.first_api_keys


async def test_a_broker_signed_by_another_authority_is_refused(tmp_path: Path) -> None:
    broker_authority = Authority(tmp_path, "broker-ca")
    trusted = Authority(tmp_path, "our-ca")
    cert, key = broker_authority.issue("order-service", server=False)
    async with tls_listener(broker_authority) as listener:
        await try_to_connect(tls_settings(listener.port, trusted.file, cert, key))
    assert listener.first_api_keys == []  # no request ever crossed an unverified connection


async def test_tls_options_in_database_url_reach_the_driver(database_url: str) -> None:
    # The embedded server has no TLS: a URL that requires it must be refused, not downgraded.
    separator = "&" if "?" in database_url else "?"
    with pytest.raises((ConnectionError, OSError, asyncpg.PostgresError)) as refused:
        await migrate(f"{database_url}{separator}sslmode=require")
    assert "ssl" in f"{type(refused.value).__name__} {refused.value}".lower()
