"""The kernel's random bytes (os.urandom), read a block at a time.

Every id this service makes, and every data key and nonce it seals with, is random bytes: a
customer-order create takes up to sixteen reads. Under `make bench` a system call per read was
dear (the 16 bytes of an event id were 2.7% of the service's samples, where a tight loop
measures 0.4 us a read), so one read fills a block that later calls take from. The bytes are
os.urandom's own, each handed out once; a forked child starts on a block of its own, so it
never repeats its parent's bytes (a nonce used twice with one key would break AES-GCM).
"""

from __future__ import annotations

import os
import threading

BLOCK_BYTES = 4096


class RandomBytes:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0

    def take(self, size: int) -> bytes:
        """`size` bytes (at most BLOCK_BYTES) no caller has had before."""
        with self._lock:
            at = self._at
            if at + size > len(self._block):
                self._block, at = os.urandom(BLOCK_BYTES), 0
            self._at = at + size
            return self._block[at : at + size]

    def forget(self) -> None:
        """Drop the block: for a forked child."""
        self._lock = threading.Lock()  # another thread may have held it when the process forked
        self._block, self._at = b"", 0


_SHARED = RandomBytes()
os.register_at_fork(after_in_child=_SHARED.forget)


def random_bytes(size: int) -> bytes:
    """`size` random bytes from the kernel's generator, never handed out before."""
    return _SHARED.take(size)
