"""Envelope encryption: fresh nonces, bound context, wrapped data keys, master-key config."""

from __future__ import annotations

import base64
import os
import uuid
from pathlib import Path

import pytest

from service.adapters import master_keys
from service.adapters.crypto import (
    DecryptionError,
    MasterKey,
    MasterKeyring,
    UnknownMasterKey,
    new_key,
    open_sealed,
    seal,
)
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
    assert from_file.current == MasterKey.from_text(text, "test")
    with pytest.raises(ConfigurationError, match="MASTER_KEY_FILE"):
        Settings(master_key=None, master_key_file=None).load_master_key()
    with pytest.raises(ConfigurationError, match="32 bytes"):
        MasterKey.from_text(base64.b64encode(b"short").decode(), "MASTER_KEY")
    with pytest.raises(ConfigurationError, match="not base64"):
        MasterKey.from_text("not base64!", "MASTER_KEY")
    with pytest.raises(ConfigurationError, match="cannot read"):
        MasterKey.from_file(tmp_path / "missing.key")


def test_a_keyring_wraps_with_its_first_key_and_unwraps_with_the_one_that_wrapped(
    tmp_path: Path,
) -> None:
    old, new = MasterKey(new_key()), MasterKey(new_key())
    key_id, data_key = uuid.uuid4(), new_key()
    wrapped_by_old = old.wrap(data_key, key_id)
    ring = MasterKeyring.from_text(
        f"# rotating\n{base64.b64encode(new.key).decode()}\n\n"
        f"{base64.b64encode(old.key).decode()}\n",
        "test",
    )
    assert ring.current == new
    assert ring.get(old.key_id).unwrap(wrapped_by_old, key_id) == data_key
    stranger = MasterKey(new_key()).key_id
    with pytest.raises(UnknownMasterKey, match=stranger):
        ring.get(stranger)
    both = f"{base64.b64encode(new.key).decode()},{base64.b64encode(old.key).decode()}"
    assert MasterKeyring.from_text(both, "MASTER_KEY").ids == [new.key_id, old.key_id]
    with pytest.raises(ConfigurationError, match="twice"):
        MasterKeyring.from_text(f"{both},{base64.b64encode(new.key).decode()}", "MASTER_KEY")
    with pytest.raises(ConfigurationError, match="no master key"):
        MasterKeyring.from_text("# nothing\n", "MASTER_KEY_FILE")


def test_the_keyring_file_is_read_again_and_a_bad_change_keeps_the_last_good_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(master_keys, "RELOAD_CHECK_SECONDS", 0.0)
    old, new = MasterKey(new_key()), MasterKey(new_key())
    path = tmp_path / "master.keys"
    path.write_text(base64.b64encode(old.key).decode() + "\n")
    ring = master_keys.ReloadingKeyring(path)
    assert ring.current == old
    path.write_text(f"{base64.b64encode(new.key).decode()}\n{base64.b64encode(old.key).decode()}\n")
    _later(path)
    assert (ring.current, ring.get(old.key_id), ring.problem()) == (new, old, None)
    path.write_text("half a key")
    _later(path)
    assert ring.current == new  # the last good keys stay in use
    assert "does not load" in (ring.problem() or "")
    path.unlink()
    assert ring.current == new
    assert "cannot be read" in (ring.problem() or "")
    path.write_text(base64.b64encode(new.key).decode() + "\n")
    assert ring.problem() is None
    with pytest.raises(UnknownMasterKey):
        ring.get(old.key_id)


def _later(path: Path) -> None:
    status = path.stat()
    os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 2_000_000_000))
