"""The durable database: engine, schema migrations and the unit of work."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection, ExceptionContext
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from idp.store.outages import OutageLog
from idp.store.write_batches import WriteBatches

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# A pooled connection idle for longer than this is pinged before use (HikariCP's rule): one that just
# served a request is not, which saves a round trip per request under load.
PING_AFTER_IDLE_SECONDS = 1.0
# The PostgreSQL advisory lock every instance takes around its migrations (any number, fixed for good).
MIGRATION_LOCK = 0x1D9_6D16

Written = TypeVar("Written")


class DatabaseUnavailable(Exception):
    """The durable store cannot be reached; callers fail closed."""


class Database:
    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        outages = OutageLog("database")  # one log of down/up transitions for both pools
        self.engine: Engine = _engine(url, pool_size=pool_size, outages=outages)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # Connections that stay in autocommit (switching a pooled one costs round trips each way), as
        # many as requests run at once: a refresh holds one while its commit is flushed.
        self.reading_engine = _engine(url, pool_size=pool_size, outages=outages, isolation_level="AUTOCOMMIT")
        self._reading_sessions = sessionmaker(self.reading_engine, expire_on_commit=False)
        self._batches = WriteBatches(self._write_transaction, unwritten=DatabaseUnavailable)

    @contextmanager
    def unit_of_work(self) -> Iterator[Session]:
        """One transaction: committed when the block ends normally, rolled back otherwise."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def open_session(self) -> Session:
        return self._sessions()

    def open_reading_session(self) -> Session:
        """For a request that only reads: each statement runs on its own (autocommit), one round trip
        each, with no BEGIN and COMMIT around them. Never write through it (see `autocommit_cursor`)."""
        return self._reading_sessions()

    @contextmanager
    def autocommit_cursor(self) -> Iterator[Any]:
        """A DBAPI cursor on a pooled autocommit connection, for a hot statement compiled once and
        atomic on its own (`rotate_refresh_token`): below SQLAlchemy's per-execution work. A server
        that cannot be reached (connecting, or with the statement) raises DatabaseUnavailable; a
        connection that failed is dropped from the pool."""
        dbapi = self.reading_engine.dialect.loaded_dbapi
        unreachable = (dbapi.OperationalError, dbapi.InterfaceError)
        try:
            connection = self.reading_engine.raw_connection()
        except unreachable as error:
            raise DatabaseUnavailable(str(error)) from error
        try:
            cursor = connection.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
        except unreachable as error:
            connection.invalidate()
            raise DatabaseUnavailable(str(error)) from error
        finally:
            connection.close()

    def write_together(self, write: Callable[[Any], Written]) -> Written:
        """What `write` gives, run on a DBAPI cursor in a write transaction shared with the concurrent
        `write_together` calls of this process (`WriteBatches`), once that transaction committed: for
        a hot write compiled once (below SQLAlchemy's per-execution work) on SQLite, whose writers
        would otherwise wait for each other's commits. A write in a transaction that failed raises;
        DatabaseUnavailable when the database could not be written."""
        return self._batches.run(write)

    @contextmanager
    def _write_transaction(self) -> Iterator[Any]:
        """A cursor in a transaction, committed when the block ends normally, rolled back otherwise. On
        SQLite it holds the write lock from its start (other processes' writers wait for it)."""
        begin = "BEGIN IMMEDIATE" if self.engine.dialect.name == "sqlite" else "BEGIN"
        with self.autocommit_cursor() as cursor:
            cursor.execute(begin)
            try:
                yield cursor
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to `revision`, the newest by default (idempotent). Safe when several
        instances start at once: one migrates while the others wait, then find nothing left to do."""
        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._migration_lock(), self.engine.begin() as connection:
            if self.engine.dialect.name == "postgresql":
                # Held until this transaction ends, so released with the migrations' commit.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def revision(self) -> str | None:
        """The schema's current revision (None before the first migration)."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """On SQLite, an exclusive lock on a file beside the database, across processes; PostgreSQL
        serializes with its advisory lock inside the transaction instead."""
        database = self.engine.url.database
        if self.engine.dialect.name != "sqlite" or not database or database == ":memory:":
            yield
            return
        with open(f"{database}.migrate.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def ping(self) -> None:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError as error:
            raise DatabaseUnavailable(str(error.orig)) from error


def _engine(url: str, *, pool_size: int, outages: OutageLog, **options: Any) -> Engine:
    engine = create_engine(url, pool_size=pool_size, max_overflow=4, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    _ping_idle_connections(engine)
    _log_outages(engine, outages)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    """A connection the server dropped while it sat in the pool (a restart, an idle timeout) is
    replaced before a request gets it; SQLAlchemy retries the checkout on DisconnectionError."""

    def mark_idle(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(str(error)) from error

    event.listen(engine, "checkin", mark_idle)
    event.listen(engine, "checkout", ping_if_idle)


def _log_outages(engine: Engine, outages: OutageLog) -> None:
    """Down when a connection cannot be made or is lost; up when a new one is made again (the pool
    replaces every connection it lost)."""

    def failed(context: ExceptionContext) -> None:
        if context.is_disconnect or context.connection is None:
            outages.failed(context.original_exception)

    def connected(_dbapi_connection: Any, _record: Any) -> None:
        outages.answered()

    event.listen(engine, "handle_error", failed)
    event.listen(engine, "connect", connected)


def _sqlite_pragmas(connection: DBAPIConnection, _record: object) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # A commit is on disk before it returns (a rotated refresh token stays rotated after a power
    # loss): the build's default, said here. `WriteBatches` shares one such sync among writes.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.close()
