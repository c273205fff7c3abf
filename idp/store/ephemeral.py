"""Short-lived state behind one small contract: Redis, or an embedded SQLite file for one node."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

import redis

KEY_PREFIX = "idp:"


class StoreUnavailable(Exception):
    """The ephemeral store cannot be reached; callers fail closed."""


class EphemeralStore(Protocol):
    """Every key has a TTL and one owning module; `take` and `incr` are atomic."""

    def put(self, key: str, value: bytes, *, ttl: int) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        """The values of several keys in one round trip, in the order asked (None where absent)."""
        ...

    def take(self, key: str) -> bytes | None:
        """Return the value and delete it in one step: at most one caller ever sees it."""
        ...

    def incr(self, key: str, *, ttl: int) -> int:
        """Add one and return the new count; the TTL starts with the first increment."""
        ...

    def delete(self, *keys: str) -> None:
        """Remove the keys (in one round trip); absent ones are ignored."""
        ...

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers."""
        ...


class RedisStore:
    def __init__(self, url: str) -> None:
        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)

    def put(self, key: str, value: bytes, *, ttl: int) -> None:
        with _redis_errors():
            self._redis.set(KEY_PREFIX + key, value, ex=ttl)

    def get(self, key: str) -> bytes | None:
        with _redis_errors():
            return self._redis.get(KEY_PREFIX + key)  # type: ignore[return-value]

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        with _redis_errors():
            return self._redis.mget([KEY_PREFIX + key for key in keys])  # type: ignore[return-value]

    def take(self, key: str) -> bytes | None:
        with _redis_errors():
            return self._redis.getdel(KEY_PREFIX + key)  # type: ignore[return-value]

    def incr(self, key: str, *, ttl: int) -> int:
        with _redis_errors():
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(KEY_PREFIX + key)
            pipe.expire(KEY_PREFIX + key, ttl, nx=True)
            count, _ = pipe.execute()
            return int(count)

    def delete(self, *keys: str) -> None:
        if not keys:
            return
        with _redis_errors():
            self._redis.delete(*(KEY_PREFIX + key for key in keys))

    def ping(self) -> None:
        with _redis_errors():
            self._redis.ping()


class _redis_errors:
    """Translate the client's connection failures, and writes refused by a full Redis (maxmemory with
    `noeviction`), into StoreUnavailable: the request fails closed."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: object) -> None:
        if isinstance(error, redis.ConnectionError | redis.TimeoutError | redis.exceptions.OutOfMemoryError):
            raise StoreUnavailable(f"redis: {error}") from error


class EmbeddedStore:
    """A SQLite file with expiry: atomic across the processes and threads of one node."""

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS entries "
        "(key TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID"
    )
    _PURGE_EVERY = 1000

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        self._local = threading.local()
        self._writes = 0
        self._connection().execute(self._SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self._path, timeout=10, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            self._local.connection = connection
        return connection

    def put(self, key: str, value: bytes, *, ttl: int) -> None:
        self._write(
            "INSERT INTO entries (key, value, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            (key, value, time.time() + ttl),
        )

    def get(self, key: str) -> bytes | None:
        row = (
            self._connection()
            .execute("SELECT value FROM entries WHERE key = ? AND expires_at > ?", (key, time.time()))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        found = dict(
            self._connection().execute(
                "SELECT key, value FROM entries WHERE key IN (SELECT value FROM json_each(?)) "
                "AND expires_at > ?",
                (json.dumps(keys), time.time()),
            )
        )
        return [None if found.get(key) is None else bytes(found[key]) for key in keys]

    def take(self, key: str) -> bytes | None:
        row = self._write("DELETE FROM entries WHERE key = ? RETURNING value, expires_at", (key,)).fetchone()
        if row is None or row[1] <= time.time():
            return None
        return bytes(row[0])

    def incr(self, key: str, *, ttl: int) -> int:
        now = time.time()
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
            self._write(
                "DELETE FROM entries WHERE key IN (SELECT value FROM json_each(?))", (json.dumps(keys),)
            )

    def ping(self) -> None:
        try:
            self._connection().execute("SELECT 1").fetchone()
        except sqlite3.Error as error:
            raise StoreUnavailable(f"embedded store: {error}") from error

    def _write(self, sql: str, parameters: tuple[object, ...]) -> sqlite3.Cursor:
        connection = self._connection()
        cursor = connection.execute(sql, parameters)
        self._writes += 1
        if self._writes % self._PURGE_EVERY == 0:
            connection.execute("DELETE FROM entries WHERE expires_at <= ?", (time.time(),))
        return cursor


def open_ephemeral_store(redis_url: str, instance_dir: Path) -> EphemeralStore:
    """Redis when a URL is configured, else the embedded store under the instance directory."""
    if redis_url:
        return RedisStore(redis_url)
    return EmbeddedStore(instance_dir / "ephemeral.sqlite3")
