"""Password verification with argon2id (RFC 9106), uniform in outcome and time for unknown users."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from idp.config import PasswordSettings


@dataclass(frozen=True)
class PasswordCheck:
    valid: bool
    new_hash: str | None = None  # set when the stored hash used older parameters


def concurrent_hashes(parallelism: int) -> int:
    """As many hashes at once as this process has cores for: more only interleave on the same cores,
    evicting each other's memory from the caches (a quarter slower each with 8 on one core) and
    holding memory_cost KiB apiece."""
    return max(1, len(os.sched_getaffinity(0)) // parallelism)


class Passwords:
    def __init__(self, settings: PasswordSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_cost,
            parallelism=settings.parallelism,
        )
        self._running = threading.BoundedSemaphore(concurrent_hashes(settings.parallelism))
        self.min_length = settings.min_length
        # Verified when the user is unknown or disabled, so every refusal costs the same.
        self._decoy = self._hasher.hash("decoy password that matches nothing")

    def hash(self, password: str) -> str:
        with self._running:
            return self._hasher.hash(password)

    def verify(self, *, stored_hash: str | None, password: str) -> PasswordCheck:
        try:
            with self._running:
                self._hasher.verify(stored_hash or self._decoy, password)
        except (VerificationError, InvalidHashError):
            return PasswordCheck(valid=False)
        if stored_hash is None:
            return PasswordCheck(valid=False)
        rehash = self.hash(password) if self._hasher.check_needs_rehash(stored_hash) else None
        return PasswordCheck(valid=True, new_hash=rehash)
