"""Envelope encryption of personal data: AES-256-GCM data keys, wrapped by a master key.

Every value gets a fresh random nonce; associated data binds a ciphertext to where it belongs
(tenant, order, field group, record), so a ciphertext copied elsewhere does not decrypt. Data keys
live in Postgres only wrapped, each with the id of the master key that wrapped it; master keys
live in configuration (a file or a secret), never in the database. A keyring holds several master
keys: the current one wraps, any of them unwraps what it wrapped, so a rotation re-wraps while the
service runs. Destroying a data key makes every ciphertext under it unreadable for good.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.domain.values import frozen
from service.errors import ConfigurationError, ServiceError

KEY_BYTES = 32
NONCE_BYTES = 12


class DecryptionError(ServiceError):
    """A ciphertext does not open with its key and associated data: wrong key or tampering."""


class UnknownMasterKey(DecryptionError):
    """A key was wrapped by a master key the keyring no longer (or not yet) holds."""

    def __init__(self, key_id: str) -> None:
        super().__init__(
            f"master key {key_id} is not in the keyring: keep it there until every key it"
            " wrapped is re-wrapped (order-service rotate-master-key)"
        )
        self.key_id = key_id


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    return _sealed(AESGCM(key), plaintext, associated_data)


def open_sealed(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    return _opened(AESGCM(key), sealed, associated_data)


def _sealed(cipher: AESGCM, plaintext: bytes, associated_data: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + cipher.encrypt(nonce, plaintext, associated_data)


def _opened(cipher: AESGCM, sealed: bytes, associated_data: bytes) -> bytes:
    try:
        return cipher.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], associated_data)
    except InvalidTag as error:
        raise DecryptionError("ciphertext does not match its key and context") from error


# Frozen at run time too, unlike `frozen` values: the cipher is made from the key once, and a
# key changed after would wrap data keys under one key and label them with another's id.
@dataclass(frozen=True)
class MasterKey:
    """Wraps data keys. Its id (a digest, not the key) records which master wrapped a data key."""

    key: bytes = field(repr=False)
    _cipher: AESGCM = field(init=False, repr=False, compare=False)
    """Made once: setting a key up takes longer than sealing a data key with it."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "_cipher", AESGCM(self.key))

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"master-key-id" + self.key).hexdigest()[:16]

    @property
    def current(self) -> MasterKey:
        """A single master key is a keyring of one."""
        return self

    def get(self, key_id: str) -> MasterKey:
        if key_id != self.key_id:
            raise UnknownMasterKey(key_id)
        return self

    def problem(self) -> str | None:
        return None

    def wrap(self, data_key: bytes, data_key_id: UUID) -> bytes:
        return _sealed(self._cipher, data_key, b"data-key:" + data_key_id.bytes)

    def unwrap(self, wrapped: bytes, data_key_id: UUID) -> bytes:
        return _opened(self._cipher, wrapped, b"data-key:" + data_key_id.bytes)

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


class Keyring(Protocol):
    """Master keys by id: the current one wraps new keys; any one unwraps what it wrapped."""

    @property
    def current(self) -> MasterKey: ...

    def get(self, key_id: str) -> MasterKey:
        """The master key with this id; UnknownMasterKey when the keyring does not hold it."""
        ...

    def problem(self) -> str | None:
        """Why the keys in use are not what their source says now; None when they are."""
        ...


@frozen
class MasterKeyring:
    """Several master keys; the first is current."""

    keys: Sequence[MasterKey]
    _by_id: Mapping[str, MasterKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigurationError("a keyring needs at least one master key")
        object.__setattr__(self, "_by_id", {key.key_id: key for key in self.keys})

    @property
    def current(self) -> MasterKey:
        return self.keys[0]

    def get(self, key_id: str) -> MasterKey:
        try:
            return self._by_id[key_id]
        except KeyError:
            raise UnknownMasterKey(key_id) from None

    @property
    def ids(self) -> list[str]:
        return [key.key_id for key in self.keys]

    def problem(self) -> str | None:
        return None

    @classmethod
    def from_text(cls, text: str, source: str) -> MasterKeyring:
        """One base64 key per line (or separated by commas), the current one first; blank
        lines and lines starting with # are ignored."""
        entries = [
            entry.strip()
            for line in text.splitlines()
            if not line.strip().startswith("#")
            for entry in line.split(",")
            if entry.strip()
        ]
        if not entries:
            raise ConfigurationError(f"{source}: no master key")
        keys = [
            MasterKey.from_text(entry, f"{source}, key {n}") for n, entry in enumerate(entries, 1)
        ]
        if len({key.key_id for key in keys}) != len(keys):
            raise ConfigurationError(f"{source}: a master key is listed twice")
        return cls(keys)

    @classmethod
    def from_file(cls, path: Path) -> MasterKeyring:
        try:
            return cls.from_text(path.read_text(), str(path))
        except OSError as error:
            raise ConfigurationError(f"cannot read the master key file {path}: {error}") from error
