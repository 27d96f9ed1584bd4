"""Envelope encryption: fresh nonces, bound context, wrapped data keys, master-key config."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest

from service.adapters.crypto import DecryptionError, MasterKey, new_key, open_sealed, seal
from service.errors import ConfigurationError
from service.settings import Settings


def test_sealing_twice_gives_different_ciphertexts_that_both_open() -> None:
    key = new_key()
    first, second = seal(key, b"Ada", b"ctx"), seal(key, b"Ada", b"ctx")
    assert first != second, "a fresh nonce per value"
    assert open_sealed(key, first, b"ctx") == open_sealed(key, second, b"ctx") == b"Ada"
    assert b"Ada" not in first


def test_a_ciphertext_does_not_open_elsewhere_or_altered() -> None:
    key = new_key()
    sealed = seal(key, b"Ada", b"tenant/order/shipping_address/r1")
    with pytest.raises(DecryptionError):
        open_sealed(key, sealed, b"tenant/order/billing_address/r1")
    with pytest.raises(DecryptionError):
        open_sealed(new_key(), sealed, b"tenant/order/shipping_address/r1")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(DecryptionError):
        open_sealed(key, tampered, b"tenant/order/shipping_address/r1")


def test_a_data_key_unwraps_only_with_its_master_and_its_id() -> None:
    master, data_key, key_id = MasterKey(new_key()), new_key(), uuid.uuid4()
    wrapped = master.wrap(data_key, key_id)
    assert master.unwrap(wrapped, key_id) == data_key
    with pytest.raises(DecryptionError):
        master.unwrap(wrapped, uuid.uuid4())
    with pytest.raises(DecryptionError):
        MasterKey(new_key()).unwrap(wrapped, key_id)
    assert master.key_id == MasterKey(master.key).key_id != MasterKey(new_key()).key_id
    assert base64.b64encode(master.key).decode() not in repr(master)


def test_the_master_key_comes_from_a_file_or_the_environment_and_is_checked(
    tmp_path: Path,
) -> None:
    text = MasterKey.generate_text()
    (tmp_path / "master.key").write_text(text + "\n")
    from_file = Settings(master_key_file=tmp_path / "master.key").load_master_key()
    assert from_file == MasterKey.from_text(text, "test")
    with pytest.raises(ConfigurationError, match="MASTER_KEY_FILE"):
        Settings(master_key=None, master_key_file=None).load_master_key()
    with pytest.raises(ConfigurationError, match="32 bytes"):
        MasterKey.from_text(base64.b64encode(b"short").decode(), "MASTER_KEY")
    with pytest.raises(ConfigurationError, match="not base64"):
        MasterKey.from_text("not base64!", "MASTER_KEY")
    with pytest.raises(ConfigurationError, match="cannot read"):
        MasterKey.from_file(tmp_path / "missing.key")
