"""A real provider process for end-to-end tests: `idp init` + `idp serve` on a free port."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from sqlalchemy import select

from idp.config import load_settings
from idp.store.database import Database
from idp.store.tables import AuditEvent
from support.services import E2E_REDIS_URL_ENV, dedicated_database, e2e_redis_url, emptied_redis

E2E_REDIS_URL = e2e_redis_url()
# Every test request comes from 127.0.0.1: the per-address limits would be all tests' at once.
# tests/test_bounded_state.py sets its own to test them.
ONE_ADDRESS_FOR_ALL = "[address_limits]\nsign_ins = 1000000\naudited_failures = 1000000\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# The CLI as this checkout runs it; an installed wheel's is its venv's `bin/idp`.
CHECKOUT_IDP = (sys.executable, "-m", "idp")


@dataclass
class LiveProvider:
    issuer: str
    config: Path
    process: subprocess.Popen[bytes]
    command: tuple[str, ...] = CHECKOUT_IDP
    database_url: str = ""  # empty: SQLite under the instance directory

    def idp(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run the CLI against this provider's settings."""
        return subprocess.run(
            [*self.command, "--config", str(self.config), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
        )

    def audit_events(self, event: str) -> list[AuditEvent]:
        """The audit log as the provider wrote it, read from its database."""
        database = Database(load_settings(self.config).database_url)
        try:
            with database.unit_of_work() as session:
                found = list(session.scalars(select(AuditEvent).where(AuditEvent.event == event)))
                session.expunge_all()
                return found
        finally:
            database.engine.dispose()

    def stop(self) -> None:
        _stop(self.process)


@dataclass
class Instance:
    """One more `idp serve` of a provider's config on a port of its own: same issuer, stores and keys."""

    origin: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        _stop(self.process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=30)


def write_config(
    directory: Path,
    *,
    port: int,
    database_url: str = "",
    redis_url: str = "",
    extra: str = "",
    host: str = "127.0.0.1",
) -> Path:
    config = directory / "idp.toml"
    config.write_text(
        f'issuer = "http://{host}:{port}"\n'
        f'instance_dir = "{directory / "instance"}"\n'
        f'[database]\nurl = "{database_url}"\n'
        f'[redis]\nurl = "{redis_url}"\n'
        f'[keys]\ndirectory = "{directory / "keys"}"\n'
        # Tests sign in many times: keep argon2id cheap here (the default is OWASP's).
        "[passwords]\nmemory_cost = 8192\ntime_cost = 1\n"
        f"{'' if '[address_limits]' in extra else ONE_ADDRESS_FOR_ALL}"
        f"[server]\nworkers = 2\n{extra}"
    )
    return config


def start_provider(
    directory: Path,
    *,
    database_url: str = "",
    redis_url: str = "",
    extra: str = "",
    host: str = "127.0.0.1",
    issuer: str | None = None,
    command: tuple[str, ...] = CHECKOUT_IDP,
) -> LiveProvider:
    """`host` names the issuer; WebAuthn needs a domain (localhost), not an IP address. `issuer` is for
    a provider behind a reverse proxy (its public address); `command` runs another installation's CLI."""
    port = free_port()
    config = write_config(
        directory, port=port, database_url=database_url, redis_url=redis_url, extra=extra, host=host
    )
    if issuer is not None:
        config.write_text(f'issuer = "{issuer}"\n' + config.read_text().split("\n", 1)[1])
    init = subprocess.run(
        [*command, "--config", str(config), "init"],
        capture_output=True,
        text=True,
        check=False,
        cwd=directory,
    )
    assert init.returncode == 0, init.stderr
    process = _serve(config, port, directory / "idp-serve.log", command=command)
    _wait_healthy(f"http://{host}:{port}", process, directory / "idp-serve.log")
    public = issuer or f"http://{host}:{port}"
    return LiveProvider(
        issuer=public, config=config, process=process, command=command, database_url=database_url
    )


@contextmanager
def provider_on_real_stores(
    directory: Path, *, database_prefix: str, extra: str = "", host: str = "127.0.0.1"
) -> Iterator[LiveProvider]:
    """`provider_on_servers` with the end-to-end Redis database."""
    with provider_on_servers(
        directory,
        redis_url=E2E_REDIS_URL,
        redis_env=E2E_REDIS_URL_ENV,
        database_prefix=database_prefix,
        extra=extra,
        host=host,
    ) as provider:
        yield provider


@contextmanager
def provider_on_servers(
    directory: Path,
    *,
    redis_url: str,
    redis_env: str,
    database_prefix: str,
    extra: str = "",
    host: str = "127.0.0.1",
) -> Iterator[LiveProvider]:
    """`start_provider` on the real servers: a PostgreSQL database of its own and the Redis database
    `redis_url`, emptied first (counters of an earlier run must not count); stopped afterwards."""
    emptied_redis(redis_url, env=redis_env)
    with dedicated_database(prefix=database_prefix) as database_url:
        provider = start_provider(
            directory, database_url=database_url, redis_url=redis_url, extra=extra, host=host
        )
        try:
            yield provider
        finally:
            provider.stop()


def start_instance(provider: LiveProvider) -> Instance:
    """Scale out: `idp --config F serve --port P2` beside the provider, as a second node would run it."""
    port = free_port()
    log = provider.config.parent / f"idp-serve-{port}.log"
    process = _serve(provider.config, port, log, command=provider.command)
    instance = Instance(origin=f"http://{urlsplit(provider.issuer).hostname}:{port}", process=process)
    _wait_healthy(instance.origin, process, log)
    return instance


def _serve(
    config: Path, port: int, log: Path, *, command: tuple[str, ...] = CHECKOUT_IDP
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*command, "--config", str(config), "serve", "--port", str(port)],
        env={**os.environ},
        cwd=config.parent,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


def _wait_healthy(
    origin: str, process: subprocess.Popen[bytes], log: Path, *, expected_status: int = 200
) -> None:
    """Return once /health answers `expected_status`; otherwise stop the process and fail with its log."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"idp serve exited: {log.read_text()}")
        try:
            if requests.get(f"{origin}/health", timeout=1).status_code == expected_status:
                return
        except requests.RequestException:
            time.sleep(0.2)
    _stop(process)
    raise AssertionError("idp serve did not become healthy within 30 s")


@contextmanager
def instance_without_redis(provider: LiveProvider) -> Iterator[Instance]:
    """One more `idp serve` of the provider's settings whose Redis is a port where nothing listens: its
    pages that need short-lived state answer 503, as in an outage; stopped afterwards."""
    port = free_port()
    directory = provider.config.parent
    config = directory / f"idp-no-redis-{port}.toml"
    unreachable = f'[redis]\nurl = "redis://127.0.0.1:{free_port()}/0"'
    config.write_text(re.sub(r'(?m)^\[redis\]\nurl = ".*"$', unreachable, provider.config.read_text()))
    log = directory / f"idp-serve-{port}.log"
    process = _serve(config, port, log, command=provider.command)
    instance = Instance(origin=f"http://{urlsplit(provider.issuer).hostname}:{port}", process=process)
    try:
        _wait_healthy(instance.origin, process, log, expected_status=503)
        yield instance
    finally:
        instance.stop()
