"""One guard for every guess (NIST SP 800-63B 5.2.2): counted before it is checked, audited either way.

Passwords, second factors, passkey assertions and client secrets all pass through `reserve`: the
attempt is counted as a failure at its gates first (guesses sent at once get no more checks than
guesses sent in a row); while a gate holds, it is refused unseen, audited as throttled and answered
429 with Retry-After. Once checked, a wrong guess is audited and stays counted; a right one is taken
back (`idp.auth.throttle.Throttle.succeeded`); a check that never finished (an outage) is taken back too.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType
from typing import Any, TypeVar

from werkzeug.wrappers import Response

from idp import observability
from idp.auth.throttle import Attempt, Blocked, Reservation
from idp.store.ephemeral import StoreUnavailable
from idp.web import audit, services

Answer = TypeVar("Answer", bound=Response)


class Event(StrEnum):
    """The audit event of a guess; sign-ins also count in `idp_sign_ins_total`."""

    SIGN_IN = "sign_in"
    CLIENT_AUTHENTICATION = "client_authentication"  # counted by the token endpoint's status instead
    DEVICE_USER_CODE = "device_user_code"  # a code typed at /device (RFC 8628 5.1)


@dataclass(frozen=True)
class Guessed:
    """What the audit log says of a guess: its event, the step guessed, and whom it concerns."""

    event: Event
    step: str
    client_id: str | None = None
    user_id: str | None = None


def reserve(guessed: Guessed, *attempts: Attempt) -> Guess | Blocked:
    """The guess, counted at every gate of `attempts`; or why it must wait (audited as throttled)."""
    reserved = services().throttle.reserve(*attempts)
    if isinstance(reserved, Blocked):
        _record(guessed, "throttled", retry_after=reserved.retry_after, locked=reserved.locked)
        return reserved
    return Guess(guessed, reserved)


class Guess:
    """A counted guess, to check inside `with`: `wrong()` audits it (it stays counted), `right()` takes
    it back. Leaving the block by an exception before either takes it back too: it was never weighed
    (a guess left without a verdict otherwise stays counted, unaudited)."""

    def __init__(self, guessed: Guessed, reservation: Reservation) -> None:
        self._guessed = guessed
        self._reservation = reservation
        self._weighed = False

    def __enter__(self) -> Guess:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        if error is not None and not self._weighed:
            with contextlib.suppress(StoreUnavailable):  # the store is away: the guess stays counted
                services().throttle.refund(self._reservation)

    def wrong(self, *, user_id: str | None = None, reason: str | None = None) -> None:
        """Audit the failure (with `reason` for the log, never what was guessed); it stays counted."""
        self._weighed = True
        _record(self._guessed, "failure", user_id=user_id, **({"reason": reason} if reason else {}))

    def right(self) -> None:
        """The guess was right: take it back (and forgive the account's or user's earlier failures)."""
        self._weighed = True
        services().throttle.succeeded(self._reservation)


def too_many(response: Answer, blocked: Blocked) -> Answer:
    """RFC 6585 4: 429, with Retry-After (RFC 9110 10.2.3) unless only an unlock will help."""
    response.status_code = 429
    if blocked.retry_after:
        response.headers["Retry-After"] = str(blocked.retry_after)
    return response


def _record(guessed: Guessed, outcome: str, *, user_id: str | None = None, **detail: Any) -> None:
    """Audit the outcome of a guess, and count a sign-in's."""
    if guessed.event is Event.SIGN_IN:
        observability.SIGN_INS.labels(outcome, "").inc()
    audit(
        guessed.event,
        outcome,
        user_id=user_id or guessed.user_id,
        client_id=guessed.client_id or None,
        detail={"step": guessed.step, **detail},
    )
