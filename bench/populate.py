"""Scale figures by hand (nothing here runs in CI): a large user population, memory per session and
per worker, and whether sign-in latency depends on the number of users.

    /work/venv/bin/python bench/populate.py [--users 1000000] [--small 1000] [--sessions 100000]
        [--sign-ins 40] [--postgres-url URL] [--redis-url URL] [--keep]

1. Two fresh PostgreSQL databases (idp_pop_<random>) get `idp init`, then `--users` and `--small`
   users by COPY, each with a TOTP factor. Every user shares one argon2id hash (the configured,
   default parameters; hashed once) and one sealed TOTP secret: it's a benchmark.
2. Both providers are served at once, pinned to the server core with one worker each, and take
   turns at complete browserless sign-ins (authorize, password, TOTP, code, token; one at a time
   from the load core): p50/p99 of the sign-in and of its password step, per population.
3. Memory: RSS/PSS of each provider's worker after those sign-ins, and the Redis memory of
   `--sessions` sessions stored the way idp/auth/sessions.py stores them (key `idp:session:<sha256
   of the cookie id>`, the JSON of a real signed-in session as value, the session lifetime as TTL),
   as the INFO used_memory delta and as MEMORY USAGE of a sample of keys. The Redis database given
   (default 11) is flushed before and after, and no other.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import secrets
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pyotp
import redis
import requests
from harness import (
    DEFAULT_POSTGRES_URL,
    Population,
    Provider,
    RelyingParty,
    SignedIn,
    dedicated_database,
    flush_redis_db,
    prepare,
    psycopg_url,
    register_relying_party,
    serving,
    sign_in_user,
    worker_memory,
)
from server_engines import LOAD_CORE, pinned
from sqlalchemy.engine import make_url

from idp.auth.passwords import Passwords
from idp.auth.sessions import storage_key
from idp.config import load_settings
from idp.secrets import SecretBox
from idp.store.database import Database
from idp.store.ephemeral import KEY_PREFIX
from idp.store.tables import Factor, FactorKind, User

BATCH = 50_000
MIB = 1024 * 1024


# -- the population --------------------------------------------------------------------------------


def _shared_credentials(config: Path, count: int, prefix: str) -> tuple[Population, str, bytes]:
    """The population, and the one argon2id hash and one sealed TOTP secret all its users share."""
    settings = load_settings(config)
    password = secrets.token_urlsafe(16)
    totp_secret = pyotp.random_base32()
    password_hash = Passwords(settings.passwords).hash(password)
    sealed = SecretBox(Path(settings.keys.directory)).seal(totp_secret.encode())
    population = Population(prefix=prefix, count=count, password=password, totp_secret=totp_secret)
    return population, password_hash, sealed


def write_users(database_url: str, *, count: int, config: Path, prefix: str = "bench-") -> Population:
    """Like `copy_users`, through SQLAlchemy: any database (SQLite too), for a few thousand users."""
    population, password_hash, sealed = _shared_credentials(config, count, prefix)
    now = int(time.time())
    database = Database(database_url)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with database.unit_of_work() as session:  # the users flushed first: no relationship orders them
        session.add_all(
            User(
                id=user_id,
                username=population.username(index),
                email=f"{population.username(index)}@example.test",
                password_hash=password_hash,
                disabled=False,
                created_at=now,
            )
            for index, user_id in enumerate(ids)
        )
        session.flush()
        session.add_all(
            Factor(
                id=str(uuid.uuid4()),
                user_id=user_id,
                kind=FactorKind.TOTP,
                name="Authenticator app",
                secret=sealed,
                data={},
                created_at=now,
            )
            for user_id in ids
        )
    database.engine.dispose()
    database.reading_engine.dispose()
    return population


def copy_users(database_url: str, *, count: int, config: Path, prefix: str = "bench-") -> Population:
    """`count` users with one TOTP factor each, written by COPY; one hash and one sealed secret for all."""
    population, password_hash, sealed = _shared_credentials(config, count, prefix)
    now = int(time.time())
    # kind, name, lookup_key (NULL), secret (bytea, hex), data: the same for every user
    factor_columns = f"totp\tAuthenticator app\t\\N\t\\\\x{sealed.hex()}\t{{}}"
    with psycopg.connect(psycopg_url(database_url)) as connection:
        # Rows made here reference each other correctly: skip the per-row foreign-key triggers.
        connection.execute("SET session_replication_role = replica")
        for start in range(0, count, BATCH):
            ids = [str(uuid.uuid4()) for _ in range(min(BATCH, count - start))]
            users, factors = io.StringIO(), io.StringIO()
            for offset, user_id in enumerate(ids):
                name = population.username(start + offset)
                users.write(f"{user_id}\t{name}\t{name}@example.test\t{password_hash}\tf\t{now}\n")
                factors.write(f"{uuid.uuid4()}\t{user_id}\t{factor_columns}\t{now}\t\\N\n")
            with connection.cursor() as cursor:
                with cursor.copy(
                    "COPY users (id, username, email, password_hash, disabled, created_at) FROM STDIN"
                ) as copy:
                    copy.write(users.getvalue())
                with cursor.copy(
                    "COPY factors (id, user_id, kind, name, lookup_key, secret, data, created_at, "
                    "last_used_at) FROM STDIN"
                ) as copy:
                    copy.write(factors.getvalue())
            connection.commit()
        connection.execute("ANALYZE users")
        connection.execute("ANALYZE factors")
        connection.commit()
    return population


def insert_users(database_url: str, *, count: int, config: Path, prefix: str = "bench-") -> Population:
    """`copy_users` for SQLite: the same rows, by executemany in one transaction."""
    population, password_hash, sealed = _shared_credentials(config, count, prefix)
    now = int(time.time())
    users = [(str(uuid.uuid4()), population.username(index)) for index in range(count)]
    path = make_url(database_url).database
    assert path, "the provider's SQLite database is a file"
    with contextlib.closing(sqlite3.connect(path)) as connection, connection:
        connection.executemany(
            "INSERT INTO users (id, username, email, password_hash, disabled, created_at) "
            "VALUES (?, ?, ?, ?, 0, ?)",
            ((user_id, name, f"{name}@example.test", password_hash, now) for user_id, name in users),
        )
        connection.executemany(
            "INSERT INTO factors (id, user_id, kind, name, secret, data, created_at) "
            "VALUES (?, ?, 'totp', 'Authenticator app', ?, '{}', ?)",
            ((str(uuid.uuid4()), user_id, sealed, now) for user_id, _ in users),
        )
        connection.execute("ANALYZE")
    return population


def bulk_users(database_url: str, *, count: int, config: Path) -> Population:
    """The benchmark's users, written the fastest way the database allows: COPY or executemany."""
    if make_url(database_url).get_backend_name() == "sqlite":
        return insert_users(database_url, count=count, config=config)
    return copy_users(database_url, count=count, config=config)


def database_size(database_url: str) -> int:
    with psycopg.connect(psycopg_url(database_url)) as connection:
        row = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    return int(row[0]) if row else 0


# -- sign-in latency by population ----------------------------------------------------------------------


@contextlib.contextmanager
def on_load_core() -> Iterator[None]:
    """Run the block's client work on the load core (this process's affinity, restored after)."""
    before = os.sched_getaffinity(0)
    if pinned(LOAD_CORE):
        os.sched_setaffinity(0, {LOAD_CORE})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def latencies(signed: list[SignedIn]) -> str:
    def p(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    total = [s.seconds for s in signed]
    password = [s.password_seconds for s in signed]
    return (
        f"sign-in p50 {p(total, 0.5):7.1f} ms  p99 {p(total, 0.99):7.1f} ms   "
        f"password step p50 {p(password, 0.5):6.1f} ms  p99 {p(password, 0.99):6.1f} ms"
    )


# -- memory per session in Redis -------------------------------------------------------------------


def real_session_value(provider: Provider, rp: RelyingParty, population: Population, redis_url: str) -> bytes:
    """The stored session of one real sign-in (what idp/auth/sessions.py wrote for it)."""
    with requests.Session() as http:
        code = pyotp.TOTP(population.totp_secret).now()
        rp.sign_in(http, population.username(population.count - 1), population.password, code)
        cookie = http.cookies.get(load_settings(provider.config).sessions.cookie_name)
    assert cookie, "a signed-in user agent holds a session cookie"
    with redis.Redis.from_url(redis_url) as client:
        value = client.get(KEY_PREFIX + storage_key(cookie))
    assert isinstance(value, bytes), "the session is stored under the digest of its cookie"
    return value


def session_memory(redis_url: str, *, value: bytes, count: int, lifetime: int) -> dict[str, float]:
    """Store `count` sessions like ServerSessionInterface.save_session; the memory they take."""
    flush_redis_db(redis_url)
    with redis.Redis.from_url(redis_url) as client:
        before = int(client.info("memory")["used_memory"])
        keys = []
        for start in range(0, count, 10_000):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(10_000, count - start)):
                key = KEY_PREFIX + storage_key(secrets.token_urlsafe(32))
                pipe.set(key, value, ex=lifetime)
                keys.append(key)
            pipe.execute()
        after = int(client.info("memory")["used_memory"])
        sample = [int(client.memory_usage(key) or 0) for key in keys[:: max(1, count // 1000)]]
    flush_redis_db(redis_url)
    return {
        "delta_per_session": (after - before) / count,
        "memory_usage_per_key": statistics.mean(sample),
        "value_bytes": len(value),
        "total_mib": (after - before) / MIB,
    }


# -- main -----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="the large population (default 1M)")
    parser.add_argument("--small", type=int, default=1_000, help="the small population (default 1,000)")
    parser.add_argument("--sessions", type=int, default=100_000, help="sessions stored in Redis")
    parser.add_argument("--sign-ins", type=int, default=40, help="sign-ins per population (sequential)")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11", help="flushed: use a free db")
    parser.add_argument("--keep", action="store_true", help="keep the databases (their names are printed)")
    args = parser.parse_args()

    flush_redis_db(args.redis_url)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="idp-populate-")))
        keys = tmp / "keys"
        sizes = {"large": args.users, "small": args.small}
        configs, populations, urls = {}, {}, {}
        for label, count in sizes.items():
            urls[label] = stack.enter_context(
                dedicated_database(args.postgres_url, "idp_pop_", keep=args.keep)
            )
            configs[label] = prepare(
                tmp / label, database_url=urls[label], redis_url=args.redis_url, keys=keys
            )
            started = time.perf_counter()
            populations[label] = copy_users(urls[label], count=count, config=configs[label])
            elapsed = time.perf_counter() - started
            print(
                f"{label:>5}: {count:>9,} users + TOTP factors by COPY in {elapsed:6.1f} s "
                f"({count / elapsed:,.0f} users/s); database {database_size(urls[label]) / MIB:,.0f} MiB"
            )

        providers = {label: stack.enter_context(serving(configs[label])) for label in sizes}
        rps = {
            label: RelyingParty(providers[label].origin, register_relying_party(configs[label]))
            for label in sizes
        }
        signed: dict[str, list[SignedIn]] = {label: [] for label in sizes}
        with on_load_core():
            for label in sizes:  # warm-up: a few sign-ins each, not counted
                for index in range(3):
                    sign_in_user(rps[label], populations[label], index)
            for turn in range(args.sign_ins):
                for label in sizes if turn % 2 == 0 else reversed(list(sizes)):
                    index = 3 + turn * 7919 % (populations[label].count - 4)  # spread over the table
                    signed[label].append(sign_in_user(rps[label], populations[label], index))
        print(f"\nsign-in latency, {args.sign_ins} sequential sign-ins each, alternating populations:")
        for label, count in sizes.items():
            print(f"  {count:>9,} users: {latencies(signed[label])}")

        print("\nworker memory after warm-up (one granian worker, the idp app loaded and used):")
        for label, provider in providers.items():
            for pid in provider.workers():
                rss, pss = (worker_memory(pid)[kind] / MIB for kind in ("rss", "pss"))
                print(f"  {label:>5} pid {pid}: RSS {rss:6.1f} MiB  PSS {pss:6.1f} MiB")

        small = populations["small"]
        value = real_session_value(providers["small"], rps["small"], small, args.redis_url)
        lifetime = load_settings(configs["small"]).sessions.lifetime
        memory = session_memory(args.redis_url, value=value, count=args.sessions, lifetime=lifetime)
        print(
            f"\nRedis, {args.sessions:,} signed-in sessions ({memory['value_bytes']} byte JSON each, "
            f"TTL {lifetime} s): {memory['total_mib']:.1f} MiB used_memory delta = "
            f"{memory['delta_per_session']:.0f} B/session; "
            f"MEMORY USAGE {memory['memory_usage_per_key']:.0f} B/key"
        )


if __name__ == "__main__":
    main()
