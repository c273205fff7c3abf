"""Shared fixtures: the real services behind the stores, and the stores themselves.

Redis and PostgreSQL are never mocked; when one is unreachable the tests that need it fail
(they do not skip), so a missing service cannot pass for a green run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from support.account import Account, sign_in
from support.app import add_client, make_app
from support.live import LiveProvider, free_port
from support.oidc_client import OpenIdProvider
from support.services import POSTGRES_URL_ENV, RedisServer, postgres_server_url

from idp.store.database import Database
from idp.store.ephemeral import EmbeddedStore, EphemeralStore, RedisStore

REDIS_URL_ENV = "IDP_TEST_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def _require(service: str, url: str, env: str, check: Callable[[], object], error: type[Exception]) -> None:
    """Fail (never skip) every test that needs a service which does not answer."""
    try:
        check()
    except error as raised:
        problem = str(getattr(raised, "orig", None) or raised).strip().splitlines()[0]
    else:
        return
    pytest.fail(
        f"{service} at {url} is unreachable ({problem}); start it (.ci/run does) or set {env}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def _redis_server() -> str:
    url = os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
    _require("Redis", url, REDIS_URL_ENV, lambda: _flush(url), redis.RedisError)
    return url


@pytest.fixture
def redis_url(_redis_server: str) -> str:
    """The URL of the test Redis database, emptied before the test."""
    _flush(_redis_server)
    return _redis_server


def _flush(url: str) -> None:
    with redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2) as client:
        client.flushdb()


@pytest.fixture(scope="session")
def _postgres_server() -> Iterator[tuple[str, Engine]]:
    url = postgres_server_url()
    admin = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    _require("PostgreSQL", url, POSTGRES_URL_ENV, lambda: admin.connect().close(), OperationalError)
    yield url, admin
    admin.dispose()


@pytest.fixture
def postgres_url(_postgres_server: tuple[str, Engine]) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    url, admin = _postgres_server
    schema = f"idp_test_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    base = make_url(url)
    options = f"{base.query.get('options', '')} -csearch_path={schema}".strip()
    yield base.update_query_dict({"options": options}).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text("SET lock_timeout = '10s'"))
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database without a schema: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'idp.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def unmigrated_database(database_url: str) -> Iterator[Database]:
    """A database without a schema yet, to migrate step by step."""
    database = Database(database_url)
    yield database
    database.engine.dispose()


@pytest.fixture
def database(unmigrated_database: Database) -> Database:
    """A migrated, empty database: a SQLite file, or a fresh PostgreSQL schema."""
    unmigrated_database.migrate()
    return unmigrated_database


@pytest.fixture(params=["redis", "embedded"])
def ephemeral_store(request: pytest.FixtureRequest, tmp_path: Path) -> EphemeralStore:
    """An empty ephemeral store: the test Redis database, or an embedded store in a fresh file."""
    if request.param == "redis":
        return RedisStore(request.getfixturevalue("redis_url"))
    return EmbeddedStore(tmp_path / "ephemeral.sqlite3")


@pytest.fixture(scope="module")
def op(live: LiveProvider) -> OpenIdProvider:
    """The live provider of the module (its `live` fixture) as a relying party sees it."""
    return OpenIdProvider(live.issuer)


# The in-process provider of the account suites; a module defining its own `app` overrides it.


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


@pytest.fixture
def client_id(app: Flask) -> str:
    return add_client(app)[0]


@pytest.fixture
def account(app: Flask, client_id: str) -> Account:
    return sign_in(app, client_id)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of the test's own, to stop, kill and start again."""
    server = RedisServer(free_port(), tmp_path)
    server.start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.kill()
