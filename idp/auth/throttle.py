"""Throttling of guesses (NIST SP 800-63B 5.2.2): exponential back-off per account and per address.

Counters live in the ephemeral store, so every worker and instance sees the same ones. Waiting is
always enough to try again, except that an account with `lock_after` consecutive password failures
needs more than waiting: a passkey sign-in or an administrator (`idp users unlock`).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import time
from dataclasses import dataclass

from idp.config import BackoffSettings, ThrottleSettings
from idp.store.ephemeral import EphemeralStore


@dataclass(frozen=True)
class Blocked:
    """Why and for how long an attempt is refused before it is even checked."""

    retry_after: int
    locked: bool = False

    @property
    def message(self) -> str:
        if self.locked:
            return (
                "This account is locked after too many failed sign-ins. Sign in with a passkey, "
                "or ask your administrator to unlock it."
            )
        minutes = max(1, math.ceil(self.retry_after / 60))
        return f"Too many failed attempts. Try again in {minutes} minute{'s' if minutes > 1 else ''}."


@dataclass(frozen=True)
class Gate:
    """One kind of guess (passwords of an account, codes of a user, ...) and its back-off schedule."""

    name: str
    schedule: BackoffSettings


class Throttle:
    def __init__(self, *, ephemeral: EphemeralStore, settings: ThrottleSettings) -> None:
        self._ephemeral = ephemeral
        self._lock_after = settings.lock_after
        self._lock_window = settings.lock_window
        self.password_account = Gate("password-account", settings.password_account)
        self.password_address = Gate("password-address", settings.password_address)
        self.second_factor = Gate("second-factor", settings.second_factor)
        self.webauthn_address = Gate("webauthn-address", settings.webauthn_address)
        self.client_auth = Gate("client-auth", settings.client_auth)

    def blocked(self, *attempts: tuple[Gate, str]) -> Blocked | None:
        """The longest wait any of the (gate, subject) pairs imposes now, or None (one round trip)."""
        keys = [_key("until", gate, subject) for gate, subject in attempts]
        locks = [_key("locked", gate, subject) for gate, subject in attempts if gate is self.password_account]
        values = self._ephemeral.get_many(keys + locks)
        if any(value is not None for value in values[len(keys) :]):
            return Blocked(retry_after=0, locked=True)
        now = time.time()
        waits = [
            math.ceil(float(raw) - now) for raw in values[: len(keys)] if raw is not None and float(raw) > now
        ]
        return Blocked(retry_after=max(waits)) if waits else None

    def failed(self, gate: Gate, subject: str) -> int:
        """Count a failure; from the free attempts on, each failure doubles the wait. Returns the count."""
        schedule = gate.schedule
        failures = self._ephemeral.incr(_key("failures", gate, subject), ttl=schedule.window)
        beyond = failures - schedule.free_attempts
        if beyond > 0:
            delay = min(schedule.base_delay * 2 ** min(beyond - 1, 30), schedule.max_delay)
            self._ephemeral.put(_key("until", gate, subject), str(time.time() + delay).encode(), ttl=delay)
        if gate is self.password_account:
            self._count_towards_lock(subject)
        return failures

    def _count_towards_lock(self, subject: str) -> None:
        """Consecutive password failures are remembered until a success (or `lock_window`, a month),
        not just the back-off window: a day's pause must not restart the count towards the lock."""
        run = self._ephemeral.incr(_key("run", self.password_account, subject), ttl=self._lock_window)
        if run >= self._lock_after:
            self._ephemeral.put(_key("locked", self.password_account, subject), b"1", ttl=self._lock_window)

    def succeeded(self, gate: Gate, subject: str) -> None:
        """A success ends the run of consecutive failures (the address gates keep counting)."""
        self._ephemeral.delete(
            *(_key(kind, gate, subject) for kind in ("failures", "until", "run", "locked"))
        )

    def unlock(self, subject: str) -> None:
        self.succeeded(self.password_account, subject)


def address_subject(address: str | None) -> str:
    """Addresses are throttled by host for IPv4 and by /64 network for IPv6 (one host's usual share)."""
    try:
        parsed = ipaddress.ip_address(address or "")
    except ValueError:
        return "unknown"
    if parsed.version == 6 and parsed.ipv4_mapped is None:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed.ipv4_mapped or parsed) if parsed.version == 6 else str(parsed)


def account_subject(username: str) -> str:
    """Accounts are throttled by the name typed, so unknown names behave like known ones."""
    return hashlib.sha256(username.strip().casefold().encode()).hexdigest()


def _key(kind: str, gate: Gate, subject: str) -> str:
    return f"throttle:{kind}:{gate.name}:{json.dumps(subject)[1:-1]}"
