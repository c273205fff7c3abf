"""What bench/run.py and bench/populate.py share: a database of their own, the provider pinned to the
server core (on PostgreSQL + Redis, or on its embedded defaults), browserless sign-ins, Python load
for chained requests, and a worker's memory. Only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import psycopg
import pyotp
import redis
import requests
from server_engines import (
    HOST,
    LOAD_CORE,
    SERVER_CORE,
    Result,
    free_port,
    idp,
    in_pinned_process,
    on_threads,
    pinned,
    summarize,
    wait_healthy,
)
from sqlalchemy.engine import make_url

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIRECT_URI = "http://127.0.0.1/bench/callback"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TIMEOUT = 30


# -- the stores ----------------------------------------------------------------------------------


@contextlib.contextmanager
def dedicated_database(server_url: str, prefix: str, *, keep: bool = False) -> Iterator[str]:
    """A fresh PostgreSQL database `prefix` + random on the server (CREATE DATABASE), dropped after."""
    admin = make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def psycopg_url(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def flush_redis_db(url: str) -> None:
    """Empty the one Redis database `url` names (never the others: they belong to other users)."""
    with redis.Redis.from_url(url, socket_timeout=5) as client:
        client.flushdb()


# -- the provider --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """`idp serve --workers 1` pinned to the server core, and what it was set up with."""

    directory: Path
    config: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def origin(self) -> str:
        return f"http://{HOST}:{self.port}"

    def workers(self) -> list[int]:
        """The worker processes granian started (children of the `idp serve` process)."""
        return children(self.process.pid)


# Every benchmark sign-in comes from 127.0.0.1: the default quota of sign-ins one address may start
# within the sign-in lifetime (300 in 15 minutes) ran out in the third round of `bench/run.py`, whose
# sign-ins then all met the 429 page. The benchmark raises it, as an operator would for many users
# behind one address; the provider's default stays.
SIGN_INS_PER_ADDRESS = 1_000_000


def write_config(
    directory: Path, *, port: int, database_url: str, redis_url: str, keys: Path, threads: int | None = None
) -> Path:
    """The production defaults (OWASP argon2id parameters included), one worker, granian; only the
    address quota of sign-ins is raised (`SIGN_INS_PER_ADDRESS`). An empty `database_url` or
    `redis_url` keeps the provider's default: SQLite, or the embedded ephemeral store, in `directory`;
    `threads` (`[server] threads`) likewise."""
    config = directory / "idp.toml"
    config.write_text(
        f'issuer = "http://{HOST}:{port}"\ninstance_dir = "{directory / "instance"}"\n'
        f'[database]\nurl = "{database_url}"\n[redis]\nurl = "{redis_url}"\n'
        f'[keys]\ndirectory = "{keys}"\n[server]\nworkers = 1\nengine = "granian"\n'
        + (f"threads = {threads}\n" if threads is not None else "")
        + f"[address_limits]\nsign_ins = {SIGN_INS_PER_ADDRESS}\n"
    )
    return config


def prepare(
    directory: Path,
    *,
    database_url: str,
    redis_url: str,
    keys: Path | None = None,
    threads: int | None = None,
) -> Path:
    """Config and `idp init` (schema, keys, secrets); the port is chosen now and kept."""
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(
        directory,
        port=free_port(),
        database_url=database_url,
        redis_url=redis_url,
        keys=keys or directory / "keys",
        threads=threads,
    )
    idp(config, "init")
    return config


def port_of(config: Path) -> int:
    issuer = next(line for line in config.read_text().splitlines() if line.startswith("issuer"))
    return int(urlsplit(issuer.split('"')[1]).port or 80)


@contextlib.contextmanager
def serving(config: Path) -> Iterator[Provider]:
    """`idp serve` on the server core until the block ends (SIGTERM, then SIGKILL after 30 s)."""
    directory, port = config.parent, port_of(config)
    with (directory / "serve.log").open("w+") as log:
        serve = ["serve", "--host", HOST, "--port", str(port), "--workers", "1", "--engine", "granian"]
        process = subprocess.Popen(  # noqa: S603
            [*pinned(SERVER_CORE), sys.executable, "-m", "idp", "--config", str(config), *serve],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy("granian", process, port, log)
            yield Provider(directory, config, port, process)
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@dataclass(frozen=True)
class Registered:
    client_id: str
    secret: str

    @property
    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()


def register(config: Path, name: str, *options: str) -> Registered:
    created = json.loads(idp(config, "clients", "create", "--name", name, "--json", *options))
    return Registered(created["client_id"], created["client_secret"])


def register_relying_party(config: Path) -> Registered:
    """ES256 ID tokens, as the issue asks where the client allows (RS256 signing costs about 1 ms)."""
    return register(
        config,
        "bench-rp",
        *("--redirect-uri", REDIRECT_URI, "--scope", "openid", "--scope", "profile"),
        *("--id-token-alg", "ES256"),
    )


def children(pid: int) -> list[int]:
    found = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in found.read_text().split()] if found.exists() else []


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes used so far (all their threads)."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


def core_times(core: int) -> tuple[int, int]:
    """(busy, total) clock ticks of one core since boot, from /proc/stat."""
    line = next(row for row in Path("/proc/stat").read_text().splitlines() if row.startswith(f"cpu{core} "))
    ticks = [int(field) for field in line.split()[1:]]
    idle = ticks[3] + ticks[4]  # idle, iowait
    return sum(ticks) - idle, sum(ticks)


def worker_memory(pid: int) -> dict[str, int]:
    """Resident and proportional set size of one process, in bytes (PSS shares shared pages fairly)."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024  # type: ignore[union-attr]
    rollup = Path(f"/proc/{pid}/smaps_rollup")
    pss = 0
    if rollup.exists():
        found = re.search(r"^Pss:\s+(\d+) kB", rollup.read_text(), re.MULTILINE)
        pss = int(found.group(1)) * 1024 if found else 0
    return {"rss": rss, "pss": pss}


# -- browserless sign-ins --------------------------------------------------------------------------


class SignInFailed(Exception):
    """The provider answered something a successful sign-in never shows."""


@dataclass(frozen=True)
class SignedIn:
    tokens: dict[str, Any]
    seconds: float  # authorize to tokens
    password_seconds: float  # the password POST alone (argon2id lives here)


@dataclass(frozen=True)
class Population:
    """Users `prefix`0000000.. with one password and one TOTP secret (a benchmark, not a directory)."""

    prefix: str
    count: int
    password: str
    totp_secret: str

    def username(self, index: int) -> str:
        return f"{self.prefix}{index:07d}"


@dataclass(frozen=True)
class RelyingParty:
    """A confidential client doing authorization code + PKCE the way a browser without JavaScript would."""

    origin: str
    client: Registered

    def sign_in(self, http: requests.Session, username: str, password: str, code: str) -> SignedIn:
        started = time.perf_counter()
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
        state = secrets.token_urlsafe(12)
        query = {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid profile",
            "state": state,
            "nonce": secrets.token_urlsafe(12),
            "code_challenge": challenge.decode(),
            "code_challenge_method": "S256",
        }
        page = self._follow(http, http.get(f"{self.origin}/authorize", params=query, **_once()))
        form = {"csrf_token": _csrf(page), "username": username, "password": password}
        password_started = time.perf_counter()
        page = self._follow(http, http.post(page.url, data=form, **_once()))
        password_seconds = time.perf_counter() - password_started
        if not urlsplit(page.url).path.endswith("/factor"):
            raise SignInFailed(f"password step: {page.status_code} at {page.url}")
        done = self._follow(
            http, http.post(page.url, data={"csrf_token": _csrf(page), "code": code}, **_once())
        )
        callback = dict(parse_qsl(urlsplit(done.headers.get("Location", "")).query))
        if not done.is_redirect or callback.get("state") != state or "code" not in callback:
            raise SignInFailed(f"second factor: {done.status_code} at {done.url}")
        token = http.post(
            f"{self.origin}/token",
            data={
                "grant_type": "authorization_code",
                "code": callback["code"],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
            headers={"Authorization": self.client.basic},
            **_once(),
        )
        if token.status_code != 200:
            raise SignInFailed(f"token: {token.status_code} {token.text[:200]}")
        return SignedIn(token.json(), time.perf_counter() - started, password_seconds)

    def _follow(self, http: requests.Session, response: requests.Response) -> requests.Response:
        """Follow the provider's own (relative) redirects; stop at a page or a redirect to the client."""
        while response.is_redirect and response.headers["Location"].startswith("/"):
            response = http.get(self.origin + response.headers["Location"], **_once())
        return response


def _once() -> dict[str, Any]:
    return {"allow_redirects": False, "timeout": TIMEOUT}


def _csrf(page: requests.Response) -> str:
    found = CSRF.search(page.text)
    if found is None:
        raise SignInFailed(f"no form: {page.status_code} at {page.url}")
    return found.group(1)


def sign_in_user(rp: RelyingParty, population: Population, index: int) -> SignedIn:
    """Sign user `index` in once, from a fresh user agent (their code for this time step)."""
    with requests.Session() as http:
        code = pyotp.TOTP(population.totp_secret).now()
        return rp.sign_in(http, population.username(index), population.password, code)


# -- Python load: each connection a chain of dependent requests ----------------------------------------


Chain = Callable[[], Callable[[], bool]]  # makes one connection's step; a step says whether it succeeded


def run_chains(make_chain: Chain, *, connections: int, duration: float, core: int = LOAD_CORE) -> Result:
    """`connections` threads in one process on `core`, each repeating its chain's step until the end;
    requests/s, p50/p99 of a step, and how many failed."""
    return in_pinned_process(core, lambda: _chains(make_chain, connections, duration), timeout=duration + 120)


def _chains(make_chain: Chain, connections: int, duration: float) -> Result:
    latencies: list[float] = []
    failures: list[str] = []
    deadline = time.perf_counter() + duration

    def connection() -> None:
        step = make_chain()
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                problem = "" if step() else "refused"
            except (requests.RequestException, SignInFailed) as error:
                problem = repr(error)[:300]
            if problem:
                failures.append(problem)
                time.sleep(0.01)  # a broken chain must not spin
            else:
                latencies.append(time.perf_counter() - started)

    return summarize(latencies, on_threads(connection, connections), failures)
