"""Password verification with argon2id (RFC 9106), uniform in outcome and time for unknown users."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from idp.config import PasswordSettings


@dataclass(frozen=True)
class PasswordCheck:
    valid: bool
    new_hash: str | None = None  # set when the stored hash used older parameters


class Passwords:
    def __init__(self, settings: PasswordSettings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.time_cost,
            memory_cost=settings.memory_cost,
            parallelism=settings.parallelism,
        )
        self.min_length = settings.min_length
        # Verified when the user is unknown or disabled, so every refusal costs the same.
        self._decoy = self._hasher.hash("decoy password that matches nothing")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, *, stored_hash: str | None, password: str) -> PasswordCheck:
        try:
            self._hasher.verify(stored_hash or self._decoy, password)
        except (VerificationError, InvalidHashError):
            return PasswordCheck(valid=False)
        if stored_hash is None:
            return PasswordCheck(valid=False)
        rehash = self._hasher.hash(password) if self._hasher.check_needs_rehash(stored_hash) else None
        return PasswordCheck(valid=True, new_hash=rehash)
