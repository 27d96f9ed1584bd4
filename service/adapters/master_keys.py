"""The master keyring of MASTER_KEY_FILE, read again while the service runs.

A rotation adds the new key at the top of the file (it becomes current: new data keys are
wrapped by it) and keeps the old one below it (keys it wrapped still open); `order-service
rotate-master-key` then re-wraps every wrapped key, after which the old line can go. The service
notices each change within RELOAD_CHECK_SECONDS, without a restart. A change that does not load
(half written, a bad line) keeps the last good keyring and is reported by `problem()`, which
turns readiness red; so is a file that disappears: the keys in memory stay in use, since
without them nothing could be read.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from service.adapters.crypto import MasterKey, MasterKeyring, UnknownMasterKey
from service.errors import ConfigurationError

log = logging.getLogger(__name__)

RELOAD_CHECK_SECONDS = 1.0


class ReloadingKeyring:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._keyring = MasterKeyring.from_file(path)  # at startup a bad file is fatal
        self._stamp = _stamp(path)
        self._checked_at = time.monotonic()
        self._problem: str | None = None

    @property
    def current(self) -> MasterKey:
        self._check_if_due()
        return self._keyring.current

    def get(self, key_id: str) -> MasterKey:
        self._check_if_due()
        try:
            return self._keyring.get(key_id)
        except UnknownMasterKey:
            # A rotation may have added the key a moment ago (another process wrapped with it).
            self._check()
            return self._keyring.get(key_id)

    def problem(self) -> str | None:
        self._check_if_due()
        return self._problem

    def _check_if_due(self) -> None:
        if time.monotonic() - self._checked_at >= RELOAD_CHECK_SECONDS:
            self._check()

    def _check(self) -> None:
        self._checked_at = time.monotonic()
        try:
            stamp = _stamp(self._path)
        except OSError as error:
            self._failed(f"cannot be read ({error.strerror})")
            return
        if stamp == self._stamp and self._problem is None:
            return
        try:
            keyring = MasterKeyring.from_file(self._path)
        except ConfigurationError as error:
            self._failed(f"does not load: {error}")
            return
        if keyring.ids != self._keyring.ids:
            log.warning(
                "MASTER_KEY_FILE changed: current master key %s, keys %s",
                keyring.current.key_id,
                ", ".join(keyring.ids),
            )
        self._keyring, self._stamp, self._problem = keyring, stamp, None

    def _failed(self, why: str) -> None:
        self._problem = (
            f"MASTER_KEY_FILE {self._path} {why}; still using master keys"
            f" {', '.join(self._keyring.ids)}"
        )
        log.error("%s", self._problem)


def _stamp(path: Path) -> tuple[int, int, int, int]:
    status = os.stat(path)
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
