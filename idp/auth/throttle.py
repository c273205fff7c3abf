"""Throttling of guesses (NIST SP 800-63B 5.2.2): exponential back-off per account and per address.

Counters live in the ephemeral store, so every worker and instance sees the same ones. An attempt is
counted as a failure before it is checked (`reserve`, one atomic step), so guesses sent at once get
no more checks than guesses sent one after another; a success takes it back. Waiting is always
enough to try again, except that an account with `lock_after` consecutive password failures needs
more than waiting: a passkey sign-in or an administrator (`idp users unlock`).
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import math
from dataclasses import dataclass

from idp.config import BackoffSettings, ThrottleSettings
from idp.store.ephemeral import EphemeralStore, Held, Tally
from idp.words import _, ngettext


@dataclass(frozen=True)
class Blocked:
    """Why and for how long an attempt is refused before it is even checked."""

    retry_after: int
    locked: bool = False

    @property
    def message(self) -> str:
        """What the page says, in the reader's language."""
        if self.locked:
            return _(
                "This account is locked after too many failed sign-ins. Sign in with a passkey, "
                "or ask your administrator to unlock it."
            )
        minutes = max(1, math.ceil(self.retry_after / 60))
        return ngettext(
            "Too many failed attempts. Try again in %(num)d minute.",
            "Too many failed attempts. Try again in %(num)d minutes.",
            minutes,
        )


@dataclass(frozen=True)
class Gate:
    """One kind of guess (passwords of an account, codes of a user, ...) and its back-off schedule;
    a success forgives the gate's earlier failures only when it is `reset_by_success` (an account's,
    a user's), never an address's."""

    name: str
    schedule: BackoffSettings
    reset_by_success: bool = False

    @functools.cached_property
    def holds(self) -> tuple[int, ...]:
        """The wait after each failure beyond the free ones: doubling from the base up to the cap."""
        holds = [min(self.schedule.base_delay, self.schedule.max_delay)]
        while holds[-1] < self.schedule.max_delay:
            holds.append(min(holds[-1] * 2, self.schedule.max_delay))
        return tuple(holds)


Attempt = tuple[Gate, str]


@dataclass(frozen=True)
class Reservation:
    """An attempt counted as a failure at each of its gates before it is checked."""

    attempts: tuple[Attempt, ...]
    token: str


class Throttle:
    def __init__(self, *, ephemeral: EphemeralStore, settings: ThrottleSettings) -> None:
        self._ephemeral = ephemeral
        self._lock_after = settings.lock_after
        self._lock_window = settings.lock_window
        self.password_account = Gate("password-account", settings.password_account, reset_by_success=True)
        self.password_address = Gate("password-address", settings.password_address)
        self.second_factor = Gate("second-factor", settings.second_factor, reset_by_success=True)
        self.webauthn_address = Gate("webauthn-address", settings.webauthn_address)
        self.client_auth = Gate("client-auth", settings.client_auth)
        self.user_code_address = Gate("user-code-address", settings.user_code_address)
        self.client_hold_keys = functools.lru_cache(maxsize=4096)(self._client_hold_keys)

    def client_authentication(self, client_id: str, address: str | None) -> Attempt:
        """A client authentication counts against that client from that address."""
        return (self.client_auth, f"{client_id}|{address_subject(address)}")

    def _client_hold_keys(self, client_id: str, address: str | None) -> tuple[str, ...]:
        """The `hold_keys` of a client authentication, kept per client and address (`client_hold_keys`):
        read by every token and introspection request answered ahead of Flask."""
        return tuple(self.hold_keys(self.client_authentication(client_id, address)))

    def reserve(self, *attempts: Attempt) -> Reservation | Blocked:
        """Count the attempt as a failure at every gate, unless one of them makes it wait (then the
        longest wait, and nothing is counted): one atomic step, whoever else tries at the same time."""
        reserved = self._ephemeral.reserve(self._tallies(*attempts))
        if not isinstance(reserved, Held):
            return Reservation(attempts, reserved.token)
        failures, runs = reserved.waits[: len(attempts)], reserved.waits[len(attempts) :]
        if any(wait is not None for wait in runs):
            return Blocked(retry_after=0, locked=True)
        return Blocked(retry_after=max(wait for wait in failures if wait is not None))

    def holding(self, *attempts: Attempt) -> bool:
        """Whether a gate of `attempts` makes them wait, counting nothing: for an attempt already known
        to be right, which `reserve` would count and `succeeded` take straight back (one read instead
        of two writes; a right attempt never adds to a gate, even for a moment)."""
        return any(hold is not None for hold in self._ephemeral.get_many(self.hold_keys(*attempts)))

    def hold_keys(self, *attempts: Attempt) -> list[str]:
        """The keys `holding` reads (any of them present: a gate holds), for a caller that reads them
        in a round trip it makes anyway."""
        return [tally.hold_key for tally in self._tallies(*attempts)]

    def succeeded(self, reservation: Reservation) -> None:
        """A success ends the run of consecutive failures at the gates it resets; the others (the
        addresses) keep their earlier failures and only take this attempt back."""
        attempts = reservation.attempts
        reset = [attempt for attempt in attempts if attempt[0].reset_by_success]
        kept = [attempt for attempt in attempts if not attempt[0].reset_by_success]
        self._ephemeral.refund(self._tallies(*kept), token=reservation.token, forget=self._keys(*reset))

    def refund(self, reservation: Reservation) -> None:
        """Take back an attempt that was never checked (its check failed on an outage)."""
        self._ephemeral.refund(self._tallies(*reservation.attempts), token=reservation.token)

    def unlock(self, subject: str) -> None:
        """Clear an account's back-off and lock (`idp users unlock`, or a passkey sign-in)."""
        self._forget((self.password_account, subject))

    def _forget(self, *attempts: Attempt) -> None:
        self._ephemeral.delete(*self._keys(*attempts))

    def _keys(self, *attempts: Attempt) -> list[str]:
        """Every key an attempt's tallies keep: forgetting them ends their runs."""
        return [key for tally in self._tallies(*attempts) for key in (tally.key, tally.hold_key)]

    def _tallies(self, *attempts: Attempt) -> list[Tally]:
        """What an attempt counts: failures at its gate, and the run towards the lock for an account."""
        failures = [self._failures(gate, subject) for gate, subject in attempts]
        return [
            *failures,
            *(self._run(subject) for gate, subject in attempts if gate is self.password_account),
        ]

    def _failures(self, gate: Gate, subject: str) -> Tally:
        """Failures within the gate's window; from the free attempts on, each one holds the gate."""
        return Tally(
            key=_key("failures", gate, subject),
            hold_key=_key("until", gate, subject),
            window=gate.schedule.window,
            free=gate.schedule.free_attempts,
            holds=gate.holds,
        )

    def _run(self, subject: str) -> Tally:
        """Consecutive password failures are remembered until a success (or `lock_window`, a month),
        not just the back-off window: a day's pause must not restart the count towards the lock."""
        return Tally(
            key=_key("run", self.password_account, subject),
            hold_key=_key("locked", self.password_account, subject),
            window=self._lock_window,
            free=self._lock_after - 1,
            holds=(self._lock_window,),
        )


@functools.lru_cache(maxsize=4096)  # parsing is a tenth of a lean token request's own work
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
