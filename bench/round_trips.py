"""Round trips to PostgreSQL and Redis per request, by endpoint, and its CPU (run by hand, never in CI).

    /work/venv/bin/python bench/round_trips.py [--sign-ins 20] [--repeat 50]
        [--postgres-url URL] [--redis-url URL]
    /work/venv/bin/python bench/round_trips.py --cpu [--sign-ins 50] [--profile 30] [...]

The provider runs in this process (werkzeug, one thread) over a fresh PostgreSQL database and Redis
db 10 (flushed before and after, no other); browserless sign-ins, client-credentials tokens,
refreshes and introspections are made over HTTP, and every request is attributed its server round
trips (psycopg waits for a reply; redis-py sends a command, or a whole pipeline at once), its wall
time, and the CPU time of the thread that served it apart from argon2id's (the `cpu ms` column; the
password hash is `hash ms`), all counted at the WSGI edge (opening the browser session included, and
the requests answered ahead of Flask). The counts are exact and repeatable; the wall times are only
indicative (the load generator shares the process), the CPU times fairly steady on a busy machine.

With --cpu, only sign-ins are made, on SQLite + Redis and then on PostgreSQL + Redis, after a few
unmeasured ones (templates compiled, pools filled); with --profile N, N more sign-ins are then run
under cProfile (timing the thread's CPU, not its waits) and its heaviest functions printed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import io
import itertools
import logging
import pstats
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import psycopg.waiting
import redis.connection
import requests
from flask import Flask, request
from harness import (
    DEFAULT_POSTGRES_URL,
    RelyingParty,
    dedicated_database,
    flush_redis_db,
    prepare,
    register,
    register_relying_party,
    sign_in_user,
)
from populate import copy_users, write_users
from server_engines import HOST, free_port
from werkzeug.serving import make_server

from idp.app import create_app
from idp.auth.passwords import Passwords
from idp.config import load_settings

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
WARM_UP_SIGN_INS = 5


class Counters(threading.local):
    postgres = 0
    redis = 0
    hash_cpu = 0.0  # seconds of this thread's CPU in argon2id (Passwords.verify)


COUNTS = Counters()


def count_round_trips() -> None:
    """Wrap the two places every round trip passes through (this process only): psycopg waiting for
    the server (each time it waits to read a reply: a BEGIN sent before a query is a round trip of
    its own, and a ROLLBACK psycopg skips on an idle connection none), and redis-py sending a command
    or a whole pipeline."""
    wait, send = psycopg.Connection.wait, redis.connection.AbstractConnection.send_packed_command

    def counted_wait(self: Any, gen: Any, *args: Any, **kwargs: Any) -> Any:
        return wait(self, _replies_counted(gen), *args, **kwargs)

    def counted_send(self: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS.redis += 1
        return send(self, *args, **kwargs)

    psycopg.Connection.wait = counted_wait  # type: ignore[method-assign]
    redis.connection.AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]
    verify = Passwords.verify

    def timed_verify(self: Passwords, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return verify(self, **kwargs)
        finally:
            COUNTS.hash_cpu += time.thread_time() - started

    Passwords.verify = timed_verify  # type: ignore[method-assign]


def _replies_counted(gen: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
    """psycopg's generator, passed through, counting each wait for the server's reply."""
    try:
        state = gen.send(None)
        while True:
            if state == psycopg.waiting.Wait.R:
                COUNTS.postgres += 1
            state = gen.send((yield state))
    except StopIteration as done:
        return done.value


@dataclass(frozen=True)
class Sample:
    postgres: int
    redis: int
    seconds: float  # wall time
    cpu: float  # the serving thread's CPU time, argon2id's excluded
    hash_cpu: float  # argon2id's
    calls: int | None  # Python function calls, when profiled (a count: steady on a busy machine)


class PerEndpoint:
    """Round trips, time and CPU of each request, keyed by method and Flask endpoint, or by path for
    the requests answered ahead of Flask (idp/lean_paths.py, the published documents); while
    `profiled` holds a `pstats.Stats`, every request also runs under cProfile, added to it."""

    ENDPOINT = "bench.endpoint"

    def __init__(self, app: Flask) -> None:
        self.rows: dict[str, list[Sample]] = collections.defaultdict(list)
        self.profiled: pstats.Stats | None = None
        inner = app.wsgi_app

        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            postgres, redis_trips, hashing = COUNTS.postgres, COUNTS.redis, COUNTS.hash_cpu
            profiler = None if self.profiled is None else cProfile.Profile(time.thread_time)  # CPU, not waits
            started, cpu = time.perf_counter(), time.thread_time()
            if profiler is not None:
                profiler.enable()
            body = list(inner(environ, start_response))
            if profiler is not None:
                profiler.disable()
            cpu, seconds = time.thread_time() - cpu, time.perf_counter() - started
            calls = None
            if profiler is not None and self.profiled is not None:
                stats = pstats.Stats(profiler)
                calls = stats.total_calls  # type: ignore[attr-defined]  # typeshed lacks it
                self.profiled.add(stats)
            method = environ["REQUEST_METHOD"]
            endpoint = environ.get(self.ENDPOINT)
            key = f"{method} {endpoint}" if endpoint else f"{method} {environ['PATH_INFO']} (ahead of Flask)"
            hashed = COUNTS.hash_cpu - hashing
            self.rows[key].append(
                Sample(
                    COUNTS.postgres - postgres,
                    COUNTS.redis - redis_trips,
                    seconds,
                    cpu - hashed,
                    hashed,
                    calls,
                )
            )
            return body

        app.wsgi_app = counted  # type: ignore[method-assign]
        app.before_request_funcs.setdefault(None, []).insert(0, self._name)

    def _name(self) -> None:
        request.environ[self.ENDPOINT] = request.endpoint

    def clear(self) -> None:
        self.rows.clear()

    def table(self, title: str, *, per_sign_in: int = 0) -> str:
        """Means per request (wall time: the median); with `per_sign_in`, a last line adds up the
        requests of one sign-in (every row, over that many sign-ins)."""
        every = [sample for samples in self.rows.values() for sample in samples]
        profiled = all(sample.calls is not None for sample in every)
        columns = f"{'n':>5} {'postgres':>9} {'redis':>6} {'ms p50':>8} {'cpu ms':>7} {'hash ms':>8}"
        lines = [f"\n{title}", f"  {'request':42} {columns}{' calls' if profiled else ''}"]

        def figures(samples: list[Sample], count: int, *, p50: bool = True) -> str:
            seconds = statistics.median(s.seconds for s in samples) * 1e3 if p50 else None
            return " ".join(
                [
                    f"{sum(s.postgres for s in samples) / count:9.1f}",
                    f"{sum(s.redis for s in samples) / count:6.1f}",
                    f"{seconds:8.2f}" if seconds is not None else " " * 8,
                    f"{sum(s.cpu for s in samples) / count * 1e3:7.2f}",
                    f"{sum(s.hash_cpu for s in samples) / count * 1e3:8.2f}",
                    *([f"{sum(s.calls or 0 for s in samples) / count:5.0f}"] if profiled else []),
                ]
            )

        for key, samples in self.rows.items():
            lines.append(f"  {key:42} {len(samples):5} {figures(samples, len(samples))}")
        if per_sign_in:
            lines.append(f"  {'a whole sign-in':42} {'':5} {figures(every, per_sign_in, p50=False)}")
        return "\n".join(lines)


def heaviest(stats: pstats.Stats, *, sign_ins: int, top: int) -> str:
    """cProfile's heaviest functions: by their own time, then the provider's by inclusive time."""
    lines = []
    for order, restriction in (("tottime", top), ("cumulative", r"/idp/")):
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]  # where print_stats writes
        stats.sort_stats(order)
        stats.print_stats(*((restriction, top) if isinstance(restriction, str) else (restriction,)))
        kept = [line for line in out.getvalue().splitlines() if line.strip()]
        start = next(i for i, line in enumerate(kept) if line.lstrip().startswith("ncalls"))
        lines.append(f"\n  by {order} ({sign_ins} sign-ins; times are totals, with cProfile's overhead):")
        lines += [f"  {line}" for line in kept[start:]]
    return "\n".join(lines)


@contextmanager
def served(app: Flask) -> Iterator[str]:
    server = make_server(HOST, free_port(), app, threaded=False)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_port}"
    finally:
        server.shutdown()


def repeat(times: int, action: Callable[[], requests.Response]) -> None:
    for _ in range(times):
        response = action()
        if response.status_code != 200:
            raise SystemExit(f"{response.request.url}: {response.status_code} {response.text[:200]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sign-ins", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=50, help="requests of each other kind")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/10", help="flushed: use a free db")
    parser.add_argument("--cpu", action="store_true", help="sign-ins only, on SQLite and on PostgreSQL")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="with --cpu: N sign-ins profiled")
    parser.add_argument("--top", type=int, default=30, help="functions --profile prints")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    count_round_trips()
    if args.cpu:
        for backend in ("SQLite", "PostgreSQL"):
            cpu_of_sign_ins(args, backend)
        return
    flush_redis_db(args.redis_url)
    with (
        tempfile.TemporaryDirectory(prefix="idp-round-trips-") as scratch,
        dedicated_database(args.postgres_url, "idp_trips_") as database_url,
    ):
        config = prepare(Path(scratch), database_url=database_url, redis_url=args.redis_url)
        population = copy_users(database_url, count=args.sign_ins + 2, config=config)
        relying_party = register_relying_party(config)
        service = register(  # it introspects the relying party's tokens: registered as their resource server
            config,
            "bench-service",
            *("--grant-type", "client_credentials", "--introspect", relying_party.client_id),
        )
        app = create_app(load_settings(config))
        per_endpoint = PerEndpoint(app)
        with served(app) as origin, requests.Session() as http:
            rp = RelyingParty(origin, relying_party)
            signed = [sign_in_user(rp, population, index).tokens for index in range(args.sign_ins)]
            print(per_endpoint.table(f"{args.sign_ins} {SIGN_INS}", per_sign_in=args.sign_ins))
            per_endpoint.clear()
            repeat(
                args.repeat,
                lambda: http.post(
                    f"{origin}/token",
                    data={"grant_type": "client_credentials"},
                    headers={"Authorization": service.basic, **FORM},
                ),
            )
            print(per_endpoint.table("client-credentials tokens"))
            per_endpoint.clear()
            access_token, newest = signed[0]["access_token"], [signed[1]["refresh_token"]]

            def refresh() -> requests.Response:
                response = http.post(
                    f"{origin}/token",
                    data={"grant_type": "refresh_token", "refresh_token": newest[0]},
                    headers={"Authorization": relying_party.basic, **FORM},
                )
                newest[0] = response.json().get("refresh_token", "")
                return response

            repeat(args.repeat, refresh)
            print(per_endpoint.table("refreshes (chained)"))
            per_endpoint.clear()
            repeat(
                args.repeat,
                lambda: http.post(
                    f"{origin}/introspect",
                    data={"token": access_token},
                    headers={"Authorization": service.basic, **FORM},
                ),
            )
            print(per_endpoint.table("introspection of a user's access token"))
        app.extensions["idp"].database.engine.dispose()
    flush_redis_db(args.redis_url)


SIGN_INS = "sign-ins (authorize, password, TOTP, code, token)"


def cpu_of_sign_ins(args: argparse.Namespace, backend: str) -> None:
    """Sign-ins alone on `backend` (SQLite or PostgreSQL) + Redis: round trips and CPU per request,
    after a few unmeasured ones; then, with --profile, cProfile's view of more of them."""
    flush_redis_db(args.redis_url)
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="idp-cpu-")))
        if backend == "SQLite":
            database_url = f"sqlite:///{scratch / 'idp.sqlite3'}"
        else:
            database_url = stack.enter_context(dedicated_database(args.postgres_url, "idp_cpu_"))
        config = prepare(scratch, database_url=database_url, redis_url=args.redis_url)
        count = WARM_UP_SIGN_INS + args.sign_ins + args.profile
        population = write_users(database_url, count=count, config=config)
        relying_party = register_relying_party(config)
        app = create_app(load_settings(config))
        per_endpoint = PerEndpoint(app)
        with served(app) as origin:
            rp = RelyingParty(origin, relying_party)
            users = iter(range(count))
            for index in itertools.islice(users, WARM_UP_SIGN_INS):
                sign_in_user(rp, population, index)
            per_endpoint.clear()
            for index in itertools.islice(users, args.sign_ins):
                sign_in_user(rp, population, index)
            print(
                per_endpoint.table(
                    f"{backend} + Redis: {args.sign_ins} {SIGN_INS}", per_sign_in=args.sign_ins
                )
            )
            if args.profile:
                per_endpoint.clear()
                per_endpoint.profiled = pstats.Stats()
                for index in users:
                    sign_in_user(rp, population, index)
                print(per_endpoint.table(f"{backend} + Redis, profiled", per_sign_in=args.profile))
                print(heaviest(per_endpoint.profiled, sign_ins=args.profile, top=args.top))
                per_endpoint.profiled = None
        app.extensions["idp"].database.engine.dispose()
    flush_redis_db(args.redis_url)


if __name__ == "__main__":
    main()
