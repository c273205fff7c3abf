"""The real PostgreSQL and Redis behind live providers: a database of a module's own, a Redis db of its own.

Either server missing fails the test (never skips it): a green run needs the real servers.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis
from sqlalchemy.engine import make_url

POSTGRES_URL_ENV = "IDP_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
E2E_REDIS_URL_ENV = "IDP_TEST_E2E_REDIS_URL"


def postgres_server_url() -> str:
    """The PostgreSQL server the tests use ($IDP_TEST_POSTGRES_URL, else the local one)."""
    return os.environ.get(POSTGRES_URL_ENV) or DEFAULT_POSTGRES_URL


def unreachable(service: str, url: str, env: str, problem: object) -> None:
    pytest.fail(f"{service} at {url} is unreachable ({problem}); start it or set {env}", pytrace=False)


@contextmanager
def dedicated_database(*, prefix: str) -> Iterator[str]:
    """A PostgreSQL database named `prefix` + random on the test server (CREATE DATABASE), dropped after."""
    server_url = postgres_server_url()
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        unreachable("PostgreSQL", server_url, POSTGRES_URL_ENV, str(error).strip().splitlines()[0])
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def e2e_redis_url() -> str:
    """The Redis database of the end-to-end providers ($IDP_TEST_E2E_REDIS_URL, else a local one)."""
    return os.environ.get(E2E_REDIS_URL_ENV) or "redis://127.0.0.1:6379/14"


def emptied_redis(url: str, *, env: str) -> str:
    """The Redis database `url` names, flushed (that one database only); fails when Redis is away."""
    try:
        with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
            client.flushdb()
    except redis.RedisError as error:
        unreachable("Redis", url, env, error)
    return url


@dataclass
class RedisServer:
    """A redis-server on a port of its own, without persistence: a restart forgets everything.
    `options` are more redis-server arguments (`--maxmemory 2mb`, ...)."""

    port: int
    directory: Path
    options: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory), *self.options]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=1) as client:
                    client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server on port {self.port} did not start")

    def kill(self) -> None:
        """As a crash would: SIGKILL, no shutdown."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
