"""Redis commands on pooled connections (idp/store/redis_wire.py): what breaks on a connection, Redis
closing it, restarting or forgetting its scripts, and threads sharing the pool. Real servers only: the
shared test Redis, or a redis-server of our own where one is killed."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from support.services import RedisServer

from idp.store.ephemeral import Held, RedisStore, Reserved, StoreUnavailable, Tally
from idp.store.redis_wire import RedisWire

TRIES = Tally(key="tries:alice", hold_key="held:alice", window=60, free=1, holds=(60,))


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url, socket_timeout=2) as client:
        yield client


def fill_pool(wire: RedisWire, connections: int) -> None:
    """Leave `connections` idle connections in the pool: as many commands in flight at once."""
    start = threading.Barrier(connections)

    def block(_: int) -> None:
        start.wait(timeout=10)
        wire.command("BLPOP", "never-pushed", 0.3)

    with ThreadPoolExecutor(connections) as pool:
        list(pool.map(block, range(connections)))


def test_a_connection_redis_closed_while_idle_does_not_fail_the_next_command(
    redis_url: str, admin: redis.Redis
) -> None:
    """Even a command that must not run twice (INCR): the closed connection is found before sending."""
    wire = RedisWire(redis_url, timeout=2)
    killed = wire.command("CLIENT", "ID")
    assert admin.client_kill_filter(_id=killed) == 1

    assert wire.command("INCR", "count") == 1
    assert wire.command("CLIENT", "ID") != killed
    assert admin.get("count") == b"1"


def test_a_redis_restart_between_two_commands_fails_neither(own_redis: RedisServer) -> None:
    wire = RedisWire(own_redis.url, timeout=2)
    fill_pool(wire, connections=3)
    store = RedisStore(own_redis.url)
    store.put("before", b"kept until the restart", ttl=60)
    assert isinstance(store.reserve([TRIES]), Reserved)

    own_redis.kill()
    own_redis.start()

    assert wire.command("INCR", "count") == 1, "three stale connections dropped, a fresh one used"
    assert store.get("before") is None, "a restart without persistence forgets everything"
    assert isinstance(store.reserve([TRIES]), Reserved), "the script, forgotten too, was sent again"


def test_a_stopped_redis_fails_closed_until_it_is_back(own_redis: RedisServer) -> None:
    store = RedisStore(own_redis.url)
    store.put("before", b"x", ttl=60)

    own_redis.kill()
    with pytest.raises(StoreUnavailable):
        store.get("before")
    with pytest.raises(StoreUnavailable):
        store.reserve([TRIES])

    own_redis.start()
    assert store.get("before") is None
    assert isinstance(store.reserve([TRIES]), Reserved)


BROKEN_OFF: list[tuple[str, type[Exception], Callable[[RedisWire], object]]] = [
    ("a command timed out", redis.TimeoutError, lambda wire: wire.command("BLPOP", "never-pushed", 1)),
    (
        "a transaction was refused while queued, its EXEC's reply still coming",
        redis.ResponseError,
        lambda wire: wire.transaction(("GET",), ("SET", "key", "value")),
    ),
]


@pytest.mark.parametrize(
    ("error", "exchange"), [pytest.param(error, call, id=name) for name, error, call in BROKEN_OFF]
)
def test_a_reply_left_unread_is_never_read_by_the_next_command(
    redis_url: str, error: type[Exception], exchange: Callable[[RedisWire], object]
) -> None:
    """The connection it was coming on is dropped, not pooled."""
    wire = RedisWire(redis_url, timeout=0.2)
    with pytest.raises(error):
        exchange(wire)

    assert wire.command("ECHO", "next") == b"next"
    assert wire.command("EXISTS", "key") == 0


def test_a_script_redis_forgot_costs_one_more_round_trip_once(redis_url: str, admin: redis.Redis) -> None:
    store = RedisStore(redis_url)
    assert isinstance(store.reserve([TRIES]), Reserved)
    admin.script_flush()
    admin.config_resetstat()

    outcomes = [store.reserve([TRIES]) for _ in range(3)]

    assert [type(outcome) for outcome in outcomes] == [Reserved, Held, Held]
    stats = admin.info("commandstats")
    assert stats["cmdstat_eval"]["calls"] == 1, "sent in full once, when Redis asked for it"
    assert stats["cmdstat_evalsha"]["calls"] == 3


def test_threads_share_the_pool_each_reading_its_own_replies(redis_url: str, admin: redis.Redis) -> None:
    threads, rounds = 8, 200
    wire = RedisWire(redis_url, timeout=2)
    connections_before = admin.info("stats")["total_connections_received"]

    def work(thread: int) -> list[bool]:
        mine = []
        for round_ in range(rounds):
            value = f"{thread}:{round_}".encode()
            wire.command("SET", f"key:{thread}", value)
            mine.append(wire.command("GET", f"key:{thread}") == value)
            mine.append(
                wire.transaction(("INCR", f"count:{thread}"), ("GET", f"key:{thread}"))
                == [
                    round_ + 1,
                    value,
                ]
            )
        return mine

    with ThreadPoolExecutor(threads) as pool:
        answers = [answer for mine in pool.map(work, range(threads)) for answer in mine]

    assert all(answers) and len(answers) == threads * rounds * 2
    made = admin.info("stats")["total_connections_received"] - connections_before
    assert 1 <= made <= threads, f"{made} connections for {threads} threads"
