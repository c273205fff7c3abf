"""A store outage is logged once per transition, down (with the reason) then up, not once per request."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class OutageLog:
    """Whether this process last found one store reachable; only a change is logged. The reason is the
    driver's first line (addresses and refusals, never a password: URLs are not part of it)."""

    def __init__(self, store: str) -> None:
        self._store = store
        self._down = False
        self._lock = threading.Lock()

    def failed(self, reason: BaseException) -> None:
        with self._lock:
            if self._down:
                return
            self._down = True
        log.error("store down: %s unreachable (%s)", self._store, _first_line(reason))

    def answered(self) -> None:
        if not self._down:  # the path of every healthy call: no lock taken
            return
        with self._lock:
            if not self._down:
                return
            self._down = False
        log.warning("store up: %s answers again", self._store)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
