"""Delivering logout_tokens (OpenID Back-Channel Logout 1.0 2.5) in the background: a POST with a
timeout, retried with a doubling delay, never on the user's request; the last failure is reported."""

from __future__ import annotations

import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from idp.config import LogoutSettings
from idp.oidc.logout import BackChannelNotice
from idp.store.database import Database
from idp.store.durable import DurableStore, audit_event

log = logging.getLogger(__name__)
DELIVERED = (200, 204)
# 4xx but these: the client understood and refused (a bad token, say); trying again changes nothing.
RETRIED_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class DeliveryFailed:
    """A notice the client never accepted: what the audit log keeps (never the token itself)."""

    notice: BackChannelNotice
    attempts: int
    error: str


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A logout URI is called as registered: a redirect is an answer other than 200, not a new target."""

    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None


class BackChannelDelivery:
    """A small pool of worker threads POSTing `logout_token=` forms; `submit` returns at once."""

    def __init__(self, settings: LogoutSettings, *, report_failure: Callable[[DeliveryFailed], None]) -> None:
        self._settings = settings
        self._report_failure = report_failure
        self._opener = urllib.request.build_opener(_NoRedirects)
        self._pool = ThreadPoolExecutor(settings.backchannel_workers, thread_name_prefix="backchannel-logout")
        self._stopping = threading.Event()

    def submit(self, notices: Iterable[BackChannelNotice]) -> None:
        for notice in notices:
            self._pool.submit(self._deliver, notice)

    def drain(self) -> None:
        """Wait until every notice submitted is delivered or given up (a command exiting)."""
        self._pool.shutdown(wait=True)

    def stop(self) -> None:
        """Stop retrying and wait for the POSTs under way (at most one timeout)."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _deliver(self, notice: BackChannelNotice) -> None:
        delay = self._settings.backchannel_retry_delay
        error = ""
        for attempt in range(1, self._settings.backchannel_attempts + 1):
            error, retry = self._post(notice)
            if not error:
                log.info("back-channel logout delivered to client %s", notice.client_id)
                return
            last = attempt == self._settings.backchannel_attempts
            if not retry or last or self._stopping.wait(delay):
                break
            delay *= 2
        log.warning(
            "back-channel logout to client %s failed after %d attempt(s): %s",
            notice.client_id,
            attempt,
            error,
        )
        try:
            self._report_failure(DeliveryFailed(notice, attempt, error))
        except Exception:  # a worker thread has nobody to raise to: the log keeps it
            log.exception("could not audit a failed back-channel logout")

    def _post(self, notice: BackChannelNotice) -> tuple[str, bool]:
        """One POST: ("", False) when accepted, else the error and whether trying again may help."""
        body = urllib.parse.urlencode({"logout_token": notice.logout_token}).encode()
        request = urllib.request.Request(  # noqa: S310 (a registered http(s) URI: see clients.py)
            notice.uri,
            data=body,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded", "Cache-Control": "no-store"},
        )
        try:
            with self._opener.open(request, timeout=self._settings.backchannel_timeout) as response:
                status = response.status
        except urllib.error.HTTPError as answer:
            status = answer.code
        except (OSError, ValueError) as failure:  # refused, timed out, unresolvable, malformed
            return f"no answer ({type(failure).__name__})", True
        if status in DELIVERED:
            return "", False
        return f"status {status}", status >= 500 or status in RETRIED_STATUSES


def audit_delivery_failure(database: Database, failed: DeliveryFailed) -> None:
    """A client never accepted its logout_token: audited in a unit of work of its own (a worker's)."""
    with database.unit_of_work() as session:
        DurableStore.over(session).audit.record(
            audit_event(
                "backchannel_logout",
                "failure",
                at=int(time.time()),
                client_id=failed.notice.client_id,
                detail={"uri": failed.notice.uri, "attempts": failed.attempts, "error": failed.error},
            )
        )
