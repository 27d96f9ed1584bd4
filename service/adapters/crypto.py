"""Envelope encryption of personal data: AES-256-GCM data keys, wrapped by a master key.

Every value gets a fresh random nonce; associated data binds a ciphertext to where it belongs
(tenant, order, field group, record), so a ciphertext copied elsewhere does not decrypt. Data keys
live in Postgres only wrapped; the master key lives in configuration (a file or a secret), never
in the database. Destroying a data key makes every ciphertext under it unreadable for good.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.errors import ConfigurationError, ServiceError

KEY_BYTES = 32
NONCE_BYTES = 12


class DecryptionError(ServiceError):
    """A ciphertext does not open with its key and associated data: wrong key or tampering."""


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_sealed(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
    except InvalidTag as error:
        raise DecryptionError("ciphertext does not match its key and context") from error


@dataclass(frozen=True)
class MasterKey:
    """Wraps data keys. Its id (a digest, not the key) records which master wrapped a data key."""

    key: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"master-key-id" + self.key).hexdigest()[:16]

    def derive(self, purpose: str) -> bytes:
        """A key for one purpose (e.g. signing dead letters), derived with HKDF-SHA256: one
        secret to configure, yet no other use ever holds the master key itself, and a key
        derived for one purpose says nothing about the master or any other purpose's key."""
        return HKDF(
            algorithm=hashes.SHA256(),
            length=KEY_BYTES,
            salt=None,
            info=b"order-service/" + purpose.encode(),
        ).derive(self.key)

    def wrap(self, data_key: bytes, data_key_id: UUID) -> bytes:
        return seal(self.key, data_key, b"data-key:" + data_key_id.bytes)

    def unwrap(self, wrapped: bytes, data_key_id: UUID) -> bytes:
        return open_sealed(self.key, wrapped, b"data-key:" + data_key_id.bytes)

    @classmethod
    def from_text(cls, text: str, source: str) -> MasterKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError) as error:
            raise ConfigurationError(f"{source}: the master key is not base64") from error
        if len(raw) != KEY_BYTES:
            raise ConfigurationError(
                f"{source}: the master key must be {KEY_BYTES} bytes (base64 of"
                f" `head -c {KEY_BYTES} /dev/urandom`), not {len(raw)}"
            )
        return cls(raw)

    @classmethod
    def from_file(cls, path: Path) -> MasterKey:
        try:
            return cls.from_text(path.read_text(), str(path))
        except OSError as error:
            raise ConfigurationError(f"cannot read the master key file {path}: {error}") from error

    @staticmethod
    def generate_text() -> str:
        return base64.b64encode(new_key()).decode()
