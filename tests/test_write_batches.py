"""`Database.write_together` (idp/store/write_batches.py), on SQLite and on PostgreSQL: writes queued while
a batch is written go together in the next transaction, each answered with its own outcome once that
transaction committed; a write that fails takes its batch with it, and only its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text

from idp.store.database import Database, DatabaseUnavailable
from idp.store.write_batches import WriteBatches

FOLLOWERS = 5


class Wrong(Exception):
    """What a faulty write raises."""


@pytest.fixture
def scratch(database: Database) -> Database:
    with database.engine.begin() as connection:
        connection.execute(text("CREATE TABLE scratch (n INTEGER PRIMARY KEY)"))
    return database


def _insert(n: int, *, fails: bool = False) -> Callable[[Any], int]:
    def write(cursor: Any) -> int:
        cursor.execute(f"INSERT INTO scratch (n) VALUES ({n:d})")  # noqa: S608 (an int; either paramstyle)
        if fails:
            raise Wrong(f"write {n}")
        return n

    return write


def _written(database: Database) -> list[int]:
    with database.engine.connect() as connection:
        return sorted(connection.execute(text("SELECT n FROM scratch")).scalars())


@contextmanager
def _batch_in_progress(
    database: Database, writes: list[Callable[[Any], int]]
) -> Iterator[tuple[list[Future[int]], list[object]]]:
    """Write 0 holds the writer until `writes` are all queued behind it; the futures of write 0 and
    of `writes`, and the transactions opened (one entry each)."""
    transactions: list[object] = []

    @contextmanager
    def counted() -> Iterator[Any]:
        with database._write_transaction() as cursor:
            transactions.append(cursor)
            yield cursor

    batches = WriteBatches(counted, unwritten=DatabaseUnavailable)
    inside, release = threading.Event(), threading.Event()

    def first(cursor: Any) -> int:
        inside.set()
        assert release.wait(timeout=10)
        return _insert(0)(cursor)

    with ThreadPoolExecutor(1 + len(writes)) as pool:
        futures = [pool.submit(batches.run, first)]
        assert inside.wait(timeout=10)
        futures += [pool.submit(batches.run, write) for write in writes]
        deadline = time.monotonic() + 10
        while len(batches._queue) < len(writes) and time.monotonic() < deadline:
            time.sleep(0.01)
        release.set()
        yield futures, transactions


def test_writes_queued_during_a_batch_are_written_together_in_the_next(scratch: Database) -> None:
    writes = [_insert(n) for n in range(1, FOLLOWERS + 1)]
    with _batch_in_progress(scratch, writes) as (futures, transactions):
        outcomes = [future.result(timeout=10) for future in futures]

    assert outcomes == list(range(FOLLOWERS + 1)), "each write answers with its own outcome"
    assert len(transactions) == 2
    assert _written(scratch) == list(range(FOLLOWERS + 1))


def test_a_write_that_fails_fails_its_batch_and_only_it_with_its_error(scratch: Database) -> None:
    writes = [_insert(n, fails=n == 3) for n in range(1, FOLLOWERS + 1)]
    with _batch_in_progress(scratch, writes) as (futures, _):
        errors = [future.exception(timeout=10) for future in futures]

    assert errors[0] is None, "the batch before is not affected"
    assert isinstance(errors[3], Wrong) and str(errors[3]) == "write 3"
    others = [errors[n] for n in (1, 2, 4, 5)]
    assert all(isinstance(error, DatabaseUnavailable) for error in others), others
    assert all(error is not None and error.__cause__ is errors[3] for error in others)
    assert _written(scratch) == [0], "nothing of the failed batch was written"


def test_a_write_to_a_database_that_cannot_be_reached_raises_database_unavailable() -> None:
    unreachable = Database("postgresql+psycopg://postgres@127.0.0.1:1/test")

    with pytest.raises(DatabaseUnavailable) as raised:
        unreachable.write_together(_insert(1))
    assert isinstance(raised.value.__cause__, DatabaseUnavailable)
