"""The concurrent writes of one process committed together: one transaction and one sync for them all."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar, cast

Outcome = TypeVar("Outcome")


class _Queued(Generic[Outcome]):
    """One write waiting for its batch, then what it gave (or why its batch failed)."""

    __slots__ = ("done", "failure", "outcome", "write")

    def __init__(self, write: Callable[[Any], Outcome]) -> None:
        self.write = write
        self.done = False
        self.outcome: Outcome | None = None
        self.failure: BaseException | None = None


class WriteBatches:
    """SQLite has one writer at a time and syncs its log at every commit (milliseconds on a disk), so
    writes made one by one queue behind each other's syncs, and a writer waiting for the lock in
    SQLite's busy handler sleeps in growing steps (up to 100 ms) however soon the lock is free. Here
    each write joins the process's queue and waits for the writer lock; whoever takes it writes
    everything queued in one transaction with one commit, and each of the others then finds its own
    done. A write is answered only after its transaction committed: as durable as on its own. Writes
    of other processes are serialized by SQLite's lock (`open_transaction` takes it)."""

    def __init__(
        self,
        open_transaction: Callable[[], AbstractContextManager[Any]],
        *,
        unwritten: Callable[[str], Exception],
    ) -> None:
        self._open_transaction = open_transaction  # a DBAPI cursor in a write transaction
        self._unwritten = unwritten  # what a write raises when another's transaction failed with it
        self._writer = threading.Lock()
        self._queue: collections.deque[_Queued[Any]] = collections.deque()  # append, popleft: atomic

    def run(self, write: Callable[[Any], Outcome]) -> Outcome:
        """What `write` gives, run on the transaction's cursor, once that transaction committed. A
        write that raises fails with its error and its transaction with it: the batch's other writes,
        not made, fail with `unwritten`, as they do when the transaction fails to begin or commit."""
        queued = _Queued(write)
        self._queue.append(queued)
        with self._writer:
            if not queued.done:  # no earlier batch took it: this one writes whatever is queued
                self._write_queued()
        if queued.failure is not None:
            raise queued.failure
        return cast(Outcome, queued.outcome)

    def _write_queued(self) -> None:
        batch: list[_Queued[Any]] = []
        while self._queue:
            batch.append(self._queue.popleft())
        try:
            with self._open_transaction() as cursor:
                for queued in batch:
                    try:
                        queued.outcome = queued.write(cursor)
                    except BaseException as error:
                        queued.failure = error
                        raise
        except BaseException as error:
            for queued in batch:
                if queued.failure is None:
                    queued.failure = self._unwritten(f"written with a batch that failed: {error!r}")
                    queued.failure.__cause__ = error
            if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit: this thread's to stop
                raise
        finally:
            for queued in batch:
                queued.done = True
