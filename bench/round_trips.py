"""Round trips to PostgreSQL and Redis per request, by endpoint (run by hand, never in CI).

    /work/venv/bin/python bench/round_trips.py [--sign-ins 20] [--repeat 50]
        [--postgres-url URL] [--redis-url URL]

The provider runs in this process (werkzeug, one thread) over a fresh PostgreSQL database and Redis
db 10 (flushed before and after, no other); browserless sign-ins, client-credentials tokens,
refreshes and introspections are made over HTTP, and every request is attributed its server round
trips (psycopg waits for a reply; redis-py sends a command, or a whole pipeline at once), its wall
time and the CPU time of the thread that served it, counted at the WSGI edge (opening the browser
session included, and the requests answered ahead of Flask). The counts are exact and repeatable;
the times are only indicative (the load generator shares the process; the CPU time is the serving
thread's own, but other work on the machine slows it).
"""

from __future__ import annotations

import argparse
import collections
import logging
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
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
from populate import copy_users
from server_engines import HOST, free_port
from werkzeug.serving import make_server

from idp.app import create_app
from idp.config import load_settings

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Counters(threading.local):
    postgres = 0
    redis = 0


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


class PerEndpoint:
    """Round trips and time of each request, keyed by method and Flask endpoint, or by path for the
    requests answered ahead of Flask (idp/lean_paths.py, the published documents)."""

    ENDPOINT = "bench.endpoint"

    def __init__(self, app: Flask) -> None:
        self.rows: dict[str, list[tuple[int, int, float, float]]] = collections.defaultdict(list)
        inner = app.wsgi_app

        def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            postgres, redis_trips, started = COUNTS.postgres, COUNTS.redis, time.perf_counter()
            cpu = time.thread_time()
            body = list(inner(environ, start_response))
            cpu = time.thread_time() - cpu
            method = environ["REQUEST_METHOD"]
            endpoint = environ.get(self.ENDPOINT)
            key = f"{method} {endpoint}" if endpoint else f"{method} {environ['PATH_INFO']} (ahead of Flask)"
            self.rows[key].append(
                (COUNTS.postgres - postgres, COUNTS.redis - redis_trips, time.perf_counter() - started, cpu)
            )
            return body

        app.wsgi_app = counted  # type: ignore[method-assign]
        app.before_request_funcs.setdefault(None, []).insert(0, self._name)

    def _name(self) -> None:
        request.environ[self.ENDPOINT] = request.endpoint

    def clear(self) -> None:
        self.rows.clear()

    def table(self, title: str) -> str:
        lines = [
            f"\n{title}",
            f"  {'request':42} {'n':>5} {'postgres':>9} {'redis':>6} {'ms p50':>8} {'cpu ms p50':>11}",
        ]
        for key, samples in self.rows.items():
            postgres = statistics.mean(sample[0] for sample in samples)
            replies = statistics.mean(sample[1] for sample in samples)
            p50 = statistics.median(sample[2] for sample in samples) * 1e3
            cpu = statistics.median(sample[3] for sample in samples) * 1e3
            lines.append(f"  {key:42} {len(samples):5} {postgres:9.1f} {replies:6.1f} {p50:8.2f} {cpu:11.2f}")
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
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
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
        count_round_trips()
        per_endpoint = PerEndpoint(app)
        with served(app) as origin, requests.Session() as http:
            rp = RelyingParty(origin, relying_party)
            signed = [sign_in_user(rp, population, index).tokens for index in range(args.sign_ins)]
            print(per_endpoint.table(f"{args.sign_ins} sign-ins (authorize, password, TOTP, code, token)"))
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


if __name__ == "__main__":
    main()
