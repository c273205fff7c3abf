"""Short-lived state behind one small contract: Redis, or an embedded SQLite file for one node."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

import redis

from idp.store.outages import OutageLog
from idp.store.redis_wire import RedisWire, Script

KEY_PREFIX = "idp:"


class StoreUnavailable(Exception):
    """The ephemeral store cannot be reached; callers fail closed."""


@dataclass(frozen=True)
class Entry:
    """A value to store under a key for `ttl` seconds."""

    key: str
    value: bytes
    ttl: int


@dataclass(frozen=True)
class Tally:
    """A count of attempts, kept `window` seconds from its first, and the hold it puts on more of them:
    the count `free + n` holds the tally `holds[n - 1]` seconds (the last of at least one repeats)."""

    key: str
    hold_key: str
    window: int
    free: int
    holds: tuple[int, ...]


@dataclass(frozen=True)
class Reserved:
    """Every tally counted the attempt; the holds it set carry `token` (see `refund`)."""

    token: str


@dataclass(frozen=True)
class Held:
    """Nothing was counted: the seconds each tally is still held (None where it is not)."""

    waits: tuple[int | None, ...]


class EphemeralStore(Protocol):
    """Every key has a TTL and one owning module; `take`, `take_marked`, `incr`, `reserve` and `refund`
    are atomic."""

    def put(self, key: str, value: bytes, *, ttl: int, replacing: str | None = None) -> None:
        """Store the value; with `replacing`, remove that key in the same step (a renamed entry)."""
        ...

    def get(self, key: str) -> bytes | None: ...

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The values of several keys in one round trip, in the order asked (None where absent)."""
        ...

    def put_unless_any(self, entry: Entry, *, keys: Sequence[str]) -> bool:
        """Store `entry` unless one of `keys` is present, in one step; whether it was stored."""
        ...

    def take(self, key: str) -> bytes | None:
        """Return the value and delete it in one step: at most one caller ever sees it."""
        ...

    def take_marked(self, key: str, *, marker: str, value: bytes, ttl: int) -> bytes | None:
        """`take`, and when it found the value, store `value` under `marker` in the same step: whoever
        finds `key` gone can then tell it was taken (a spent code names its grant)."""
        ...

    def incr(self, key: str, *, ttl: int) -> int:
        """Add one and return the new count; the TTL starts with the first increment."""
        ...

    def delete(self, *keys: str) -> None:
        """Remove the keys (in one round trip); absent ones are ignored."""
        ...

    def reserve(self, tallies: Sequence[Tally]) -> Reserved | Held:
        """Unless a tally is held, count one attempt on every tally and set the holds the new counts
        call for, in one step: concurrent callers never get past a hold one of them set."""
        ...

    def refund(self, tallies: Sequence[Tally], *, token: str, forget: Sequence[str] = ()) -> None:
        """Take one count back from each tally, and its hold if the reservation `token` set it; remove
        the keys `forget` in the same step."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""
        ...


# KEYS: the key taken, the marker; ARGV: the marker's value and seconds.
_TAKE_MARKED = Script("""
local value = redis.call('GETDEL', KEYS[1])
if value then redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2]) end
return value
""")
# KEYS: each tally's count and hold key; ARGV: the reservation's token, the tallies' [window, free, holds].
_RESERVE = Script("""
local tallies = cjson.decode(ARGV[2])
local waits, held = {}, false
for i = 1, #tallies do
  local left = redis.call('PTTL', KEYS[2 * i])
  if left == -2 then waits[i] = -1 else waits[i] = math.max(left, 0); held = true end
end
if held then return waits end
for i = 1, #tallies do
  local window, free, holds = tallies[i][1], tallies[i][2], tallies[i][3]
  local count = redis.call('INCR', KEYS[2 * i - 1])
  redis.call('EXPIRE', KEYS[2 * i - 1], window, 'NX')
  if count > free then
    redis.call('SET', KEYS[2 * i], ARGV[1], 'EX', holds[math.min(count - free, #holds)])
  end
end
return {}
""")
# KEYS: each tally's count and hold key, then the keys to forget; ARGV: the token of the reservation
# taken back, and how many of KEYS are the tallies'.
_REFUND = Script("""
local counted = tonumber(ARGV[2])
for i = 1, counted, 2 do
  if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then redis.call('DECR', KEYS[i]) end
  if redis.call('GET', KEYS[i + 1]) == ARGV[1] then redis.call('DEL', KEYS[i + 1]) end
end
for i = counted + 1, #KEYS do redis.call('DEL', KEYS[i]) end
""")

# KEYS: the keys that stop the write, then the entry's key; ARGV: its value and TTL.
_PUT_UNLESS_ANY = Script("""
if #KEYS > 1 and redis.call('EXISTS', unpack(KEYS, 1, #KEYS - 1)) > 0 then return 0 end
redis.call('SET', KEYS[#KEYS], ARGV[1], 'EX', ARGV[2])
return 1
""")


class RedisStore:
    def __init__(self, url: str) -> None:
        self._redis = RedisWire(url, timeout=2)
        self._errors = _redis_errors(OutageLog("redis"))

    def put(self, key: str, value: bytes, *, ttl: int, replacing: str | None = None) -> None:
        with self._errors:
            if replacing is None:
                self._redis.command("SET", KEY_PREFIX + key, value, "EX", ttl)
            else:
                self._redis.transaction(
                    ("DEL", KEY_PREFIX + replacing), ("SET", KEY_PREFIX + key, value, "EX", ttl)
                )

    def get(self, key: str) -> bytes | None:
        with self._errors:
            return cast(bytes | None, self._redis.command("GET", KEY_PREFIX + key))

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        with self._errors:
            return cast(list[bytes | None], self._redis.command("MGET", *(KEY_PREFIX + key for key in keys)))

    def put_unless_any(self, entry: Entry, *, keys: Sequence[str]) -> bool:
        with self._errors:
            stored = self._redis.script(
                _PUT_UNLESS_ANY,
                keys=[*(KEY_PREFIX + key for key in keys), KEY_PREFIX + entry.key],
                args=[entry.value, entry.ttl],
            )
        return bool(stored)

    def take(self, key: str) -> bytes | None:
        with self._errors:
            return cast(bytes | None, self._redis.command("GETDEL", KEY_PREFIX + key))

    def take_marked(self, key: str, *, marker: str, value: bytes, ttl: int) -> bytes | None:
        with self._errors:
            taken = self._redis.script(
                _TAKE_MARKED, keys=[KEY_PREFIX + key, KEY_PREFIX + marker], args=[value, ttl]
            )
            return cast(bytes | None, taken)

    def incr(self, key: str, *, ttl: int) -> int:
        with self._errors:
            count, _ = self._redis.transaction(
                ("INCR", KEY_PREFIX + key), ("EXPIRE", KEY_PREFIX + key, ttl, "NX")
            )
            return int(count)

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        with self._errors:
            self._redis.command("DEL", *(KEY_PREFIX + key for key in keys))

    def reserve(self, tallies: Sequence[Tally]) -> Reserved | Held:
        token = secrets.token_hex(16)
        schedules = json.dumps([[tally.window, tally.free, tally.holds] for tally in tallies])
        with self._errors:
            waits = self._redis.script(_RESERVE, keys=_tally_keys(tallies), args=[token, schedules])
        if not waits:
            return Reserved(token)
        return Held(tuple(None if left < 0 else math.ceil(left / 1000) for left in waits))

    def refund(self, tallies: Sequence[Tally], *, token: str, forget: Sequence[str] = ()) -> None:
        if tallies or forget:
            counted = _tally_keys(tallies)
            with self._errors:
                self._redis.script(
                    _REFUND,
                    keys=[*counted, *(KEY_PREFIX + key for key in forget)],
                    args=[token, len(counted)],
                )

    def ping(self) -> None:
        with self._errors:
            self._redis.command("PING")


def _tally_keys(tallies: Sequence[Tally]) -> list[str]:
    return [KEY_PREFIX + key for tally in tallies for key in (tally.key, tally.hold_key)]


class _redis_errors:
    """Translate the client's connection failures, and writes refused by a full Redis (maxmemory with
    `noeviction`), into StoreUnavailable: the request fails closed. Whether Redis answers goes to the
    outage log (a full Redis answers: its refusals are not an outage)."""

    def __init__(self, outages: OutageLog) -> None:
        self._outages = outages

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        if isinstance(error, redis.ConnectionError | redis.TimeoutError):
            self._outages.failed(error)
        elif error is None:
            self._outages.answered()
        if isinstance(error, redis.ConnectionError | redis.TimeoutError | redis.exceptions.OutOfMemoryError):
            raise StoreUnavailable(f"redis: {error}") from error


class EmbeddedStore:
    """A SQLite file with expiry: atomic across the processes and threads of one node.

    A process keeps one connection, used by one thread at a time (`_lock`): its threads queue on the
    lock instead of sleeping in SQLite's busy handler (1, 2, 5, 10 ms and longer while another thread
    holds the file's write lock), and its page cache is not emptied before each statement (SQLite
    empties a connection's cache whenever another connection wrote). Other processes are kept out
    by SQLite's lock on the file."""

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS entries "
        "(key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID",
        # The purge finds the expired entries without reading every other one.
        "CREATE INDEX IF NOT EXISTS entries_by_expiry ON entries (expires_at)",
    )
    _PURGE_EVERY = 1000
    _CHECKPOINT_EVERY = 250  # writes: about 700 pages of log, as SQLite's own (1,000 pages) would

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._depth = 0  # how deep the thread holding `_lock` is in it
        self._writes = 0
        self._checkpoint_due = False
        # Used by whichever thread holds `_lock`, never by two at once.
        self._connection = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        # The log is copied back into the file by `_checkpoint`, after the lock is let go.
        self._connection.execute("PRAGMA wal_autocheckpoint=0")
        for statement in self._SCHEMA:
            self._connection.execute(statement)
        self._checkpointer = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        self._checkpointing = threading.Lock()

    def put(self, key: str, value: bytes, *, ttl: int, replacing: str | None = None) -> None:
        if replacing is not None:
            with self._transaction():
                self.delete(replacing)
                self.put(key, value, ttl=ttl)
            return
        with self._locked():
            self._write(
                "INSERT INTO entries (key, value, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                (key, value, time.time() + ttl),
            )

    def get(self, key: str) -> bytes | None:
        with self._locked():
            row = self._connection.execute(
                "SELECT value FROM entries WHERE key = ? AND expires_at > ?", (key, time.time())
            ).fetchone()
        return None if row is None else bytes(row[0])

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        with self._locked():
            found = dict(
                self._connection.execute(
                    f"SELECT key, value FROM entries WHERE key IN ({_placeholders(len(keys))}) "  # noqa: S608
                    "AND expires_at > ?",
                    (*keys, time.time()),
                )
            )
        return [None if found.get(key) is None else bytes(found[key]) for key in keys]

    def put_unless_any(self, entry: Entry, *, keys: Sequence[str]) -> bool:
        """One statement, atomic on its own: the write lock is held for no longer than it runs."""
        now = time.time()
        with self._locked():
            stored = self._write(
                "INSERT INTO entries (key, value, expires_at) SELECT ?, ?, ? WHERE NOT EXISTS "  # noqa: S608
                f"(SELECT 1 FROM entries WHERE key IN ({_placeholders(len(keys))}) AND expires_at > ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                (entry.key, entry.value, now + entry.ttl, *keys, now),
            ).rowcount
        return stored == 1

    def take(self, key: str) -> bytes | None:
        with self._locked():
            row = self._write(
                "DELETE FROM entries WHERE key = ? RETURNING value, expires_at", (key,)
            ).fetchone()
        if row is None or row[1] <= time.time():
            return None
        return bytes(row[0])

    def take_marked(self, key: str, *, marker: str, value: bytes, ttl: int) -> bytes | None:
        with self._transaction():
            taken = self.take(key)
            if taken is not None:
                self.put(marker, value, ttl=ttl)
            return taken

    def incr(self, key: str, *, ttl: int) -> int:
        now = time.time()
        with self._locked():
            row = self._write(
                "INSERT INTO entries (key, value, expires_at) VALUES (?, 1, ?) "
                "ON CONFLICT(key) DO UPDATE SET "
                "value = CASE WHEN expires_at > ? THEN CAST(value AS INTEGER) + 1 ELSE 1 END, "
                "expires_at = CASE WHEN expires_at > ? THEN expires_at ELSE excluded.expires_at END "
                "RETURNING value",
                (key, now + ttl, now, now),
            ).fetchone()
        return int(row[0])

    def delete(self, *keys: str) -> None:
        if keys:
            with self._locked():
                self._write(
                    "DELETE FROM entries WHERE key IN (SELECT value FROM json_each(?))", (json.dumps(keys),)
                )

    def reserve(self, tallies: Sequence[Tally]) -> Reserved | Held:
        with self._transaction():
            now = time.time()
            waits = tuple(self._hold_left(tally.hold_key, now) for tally in tallies)
            if any(wait is not None for wait in waits):
                return Held(waits)
            token = secrets.token_hex(16)
            for tally in tallies:
                count = self.incr(tally.key, ttl=tally.window)
                if count > tally.free:
                    hold = tally.holds[min(count - tally.free, len(tally.holds)) - 1]
                    self.put(tally.hold_key, token.encode(), ttl=hold)
            return Reserved(token)

    def refund(self, tallies: Sequence[Tally], *, token: str, forget: Sequence[str] = ()) -> None:
        if not tallies and not forget:
            return
        with self._transaction():
            self.delete(*forget)
            now = time.time()
            for tally in tallies:
                self._write(
                    "UPDATE entries SET value = CAST(value AS INTEGER) - 1 "
                    "WHERE key = ? AND expires_at > ? AND CAST(value AS INTEGER) > 0",
                    (tally.key, now),
                )
                self._write(
                    "DELETE FROM entries WHERE key = ? AND value = ?", (tally.hold_key, token.encode())
                )

    def ping(self) -> None:
        try:
            with self._locked():
                self._connection.execute("SELECT 1").fetchone()
        except sqlite3.Error as error:
            raise StoreUnavailable(f"embedded store: {error}") from error

    def _hold_left(self, key: str, now: float) -> int | None:
        row = self._connection.execute(
            "SELECT expires_at FROM entries WHERE key = ? AND expires_at > ?", (key, now)
        ).fetchone()
        return None if row is None else math.ceil(row[0] - now)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Take the file's write lock before reading: no other writer, in any process or thread, comes
        in between (atomic)."""
        with self._locked():
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def _write(self, sql: str, parameters: tuple[object, ...]) -> sqlite3.Cursor:
        """Run a writing statement; the caller holds `_lock`."""
        cursor = self._connection.execute(sql, parameters)
        self._writes += 1
        if self._writes % self._PURGE_EVERY == 0:
            self._connection.execute("DELETE FROM entries WHERE expires_at <= ?", (time.time(),))
        if self._writes % self._CHECKPOINT_EVERY == 0:
            self._checkpoint_due = True
        return cursor

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """`_lock` held; a checkpoint that became due is run once it is let go."""
        with self._lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                checkpoint = self._depth == 0 and self._checkpoint_due
                if checkpoint:
                    self._checkpoint_due = False
        if checkpoint:
            self._checkpoint()

    def _checkpoint(self) -> None:
        """Copy the log back into the database file (it syncs the file: milliseconds on a disk) on a
        connection of its own, while this process's other threads go on reading and writing: under
        SQLite's own checkpoints, run by the commit that filled the log, they all waited for it. A
        checkpoint already running (another thread's, or another process's) is left to finish."""
        if not self._checkpointing.acquire(blocking=False):
            return
        try:
            with contextlib.suppress(sqlite3.OperationalError):  # busy: another process checkpoints
                self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            self._checkpointing.release()


@functools.lru_cache(maxsize=64)
def _placeholders(count: int) -> str:
    """The parameters of an SQL `IN (...)` list of `count` values: only `?` is ever formatted into SQL."""
    return ", ".join("?" * count)


def open_ephemeral_store(redis_url: str, instance_dir: Path) -> EphemeralStore:
    """Redis when a URL is configured, else the embedded store under the instance directory."""
    if redis_url:
        return RedisStore(redis_url)
    return EmbeddedStore(instance_dir / "ephemeral.sqlite3")
