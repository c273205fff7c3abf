"""The EphemeralStore contract, run against every backend: Redis and the embedded SQLite file."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from support.races import race_in_two_processes

from idp.store.ephemeral import (
    EmbeddedStore,
    Entry,
    EphemeralStore,
    Held,
    RedisStore,
    Reserved,
    StoreUnavailable,
    Tally,
    open_ephemeral_store,
)

PAST_ONE_SECOND = 1.2  # sleep this long to outlive ttl=1


def test_put_then_get(ephemeral_store: EphemeralStore) -> None:
    ephemeral_store.put("code:a", b"\x00first\xff", ttl=60)
    ephemeral_store.put("code:b", b"second", ttl=60)

    assert ephemeral_store.get("code:a") == b"\x00first\xff"
    assert ephemeral_store.get("code:b") == b"second"
    assert ephemeral_store.get("code:c") is None


def test_get_many_answers_in_the_order_asked(ephemeral_store: EphemeralStore) -> None:
    ephemeral_store.put("marker:a", b"a", ttl=60)
    ephemeral_store.put("marker:c", b"\x00c", ttl=60)
    ephemeral_store.put("marker:gone", b"expired", ttl=1)
    time.sleep(PAST_ONE_SECOND)

    assert ephemeral_store.get_many(["marker:c", "marker:b", "marker:gone", "marker:a", "marker:c"]) == [
        b"\x00c",
        None,
        None,
        b"a",
        b"\x00c",
    ]
    assert ephemeral_store.get_many([]) == []


def test_put_unless_any_stores_only_while_none_of_the_keys_is_present(
    ephemeral_store: EphemeralStore,
) -> None:
    ephemeral_store.put("hold:a", b"held", ttl=60)

    assert ephemeral_store.put_unless_any(Entry("record:x", b"x", 60), keys=["hold:b", "hold:a"]) is False
    assert ephemeral_store.put_unless_any(Entry("record:y", b"y", 1), keys=["hold:b", "hold:c"]) is True
    assert ephemeral_store.put_unless_any(Entry("record:z", b"z", 60), keys=[]) is True
    assert ephemeral_store.get_many(["record:x", "record:y", "record:z"]) == [None, b"y", b"z"]
    time.sleep(PAST_ONE_SECOND)
    assert ephemeral_store.get("record:y") is None


def test_put_replaces_the_value(ephemeral_store: EphemeralStore) -> None:
    ephemeral_store.put("state", b"old", ttl=60)
    ephemeral_store.put("state", b"new", ttl=60)

    assert ephemeral_store.get("state") == b"new"


def test_get_does_not_consume(ephemeral_store: EphemeralStore) -> None:
    ephemeral_store.put("state", b"kept", ttl=60)

    assert ephemeral_store.get("state") == b"kept"
    assert ephemeral_store.get("state") == b"kept"


def test_entries_expire_after_their_ttl(ephemeral_store: EphemeralStore) -> None:
    ephemeral_store.put("short", b"gone soon", ttl=1)
    ephemeral_store.put("taken-late", b"gone soon", ttl=1)
    ephemeral_store.put("long", b"still here", ttl=60)
    assert ephemeral_store.get("short") == b"gone soon"

    time.sleep(PAST_ONE_SECOND)

    assert ephemeral_store.get("short") is None
    assert ephemeral_store.take("taken-late") is None
    assert ephemeral_store.get("long") == b"still here"


def test_take_returns_the_value_once(ephemeral_store: EphemeralStore) -> None:
    ephemeral_store.put("code", b"grant", ttl=60)

    assert ephemeral_store.take("code") == b"grant"
    assert ephemeral_store.take("code") is None
    assert ephemeral_store.get("code") is None
    assert ephemeral_store.take("never-put") is None


def test_take_has_one_winner_among_racing_threads(ephemeral_store: EphemeralStore) -> None:
    racers, rounds = 8, 10
    for round_ in range(rounds):
        ephemeral_store.put(f"code:{round_}", f"grant {round_}".encode(), ttl=60)
    start = threading.Barrier(racers)

    def race(round_: int) -> bytes | None:
        start.wait(timeout=10)
        return ephemeral_store.take(f"code:{round_}")

    with ThreadPoolExecutor(racers) as pool:
        for round_ in range(rounds):
            results = list(pool.map(race, [round_] * racers))
            winners = [result for result in results if result is not None]
            assert winners == [f"grant {round_}".encode()], f"round {round_}: {results}"


def test_take_marked_leaves_its_marker_only_when_it_took_the_value(ephemeral_store: EphemeralStore) -> None:
    ephemeral_store.put("code", b"grant", ttl=60)

    assert ephemeral_store.take_marked("code", marker="code-spent", value=b"grant-1", ttl=60) == b"grant"
    assert ephemeral_store.get("code") is None
    assert ephemeral_store.get("code-spent") == b"grant-1"
    assert ephemeral_store.take_marked("code", marker="code-spent", value=b"other", ttl=60) is None
    assert ephemeral_store.get("code-spent") == b"grant-1", "a second take overwrote the marker"
    assert ephemeral_store.take_marked("never-put", marker="never-spent", value=b"x", ttl=60) is None
    assert ephemeral_store.get("never-spent") is None


def test_take_marked_keeps_its_marker_for_its_ttl(ephemeral_store: EphemeralStore) -> None:
    ephemeral_store.put("code", b"grant", ttl=60)
    ephemeral_store.take_marked("code", marker="code-spent", value=b"grant-1", ttl=1)
    time.sleep(PAST_ONE_SECOND)

    assert ephemeral_store.get("code-spent") is None


def test_take_marked_has_one_winner_among_racing_threads(ephemeral_store: EphemeralStore) -> None:
    """Every loser finds the marker already there: none sees the key gone without it."""
    racers, rounds = 8, 10
    for round_ in range(rounds):
        ephemeral_store.put(f"code:{round_}", f"grant {round_}".encode(), ttl=60)
    start = threading.Barrier(racers)

    def race(round_: int) -> tuple[bytes | None, bytes | None]:
        start.wait(timeout=10)
        taken = ephemeral_store.take_marked(
            f"code:{round_}", marker=f"spent:{round_}", value=b"spent", ttl=60
        )
        return taken, ephemeral_store.get(f"spent:{round_}")

    with ThreadPoolExecutor(racers) as pool:
        for round_ in range(rounds):
            results = list(pool.map(race, [round_] * racers))
            winners = [taken for taken, _ in results if taken is not None]
            assert winners == [f"grant {round_}".encode()], f"round {round_}: {results}"
            assert all(marker == b"spent" for _, marker in results), f"round {round_}: {results}"


def test_incr_counts_from_one(ephemeral_store: EphemeralStore) -> None:
    counts = [ephemeral_store.incr("failures:alice", ttl=60) for _ in range(3)]

    assert counts == [1, 2, 3]
    assert ephemeral_store.incr("failures:bob", ttl=60) == 1


def test_incr_keeps_the_ttl_of_the_first_increment(ephemeral_store: EphemeralStore) -> None:
    assert ephemeral_store.incr("failures", ttl=1) == 1
    assert ephemeral_store.incr("failures", ttl=60) == 2  # must not extend the window

    time.sleep(PAST_ONE_SECOND)

    assert ephemeral_store.incr("failures", ttl=60) == 1


def test_incr_is_atomic_among_racing_threads(ephemeral_store: EphemeralStore) -> None:
    threads, each = 8, 25

    def count(_: int) -> list[int]:
        return [ephemeral_store.incr("failures", ttl=60) for _ in range(each)]

    with ThreadPoolExecutor(threads) as pool:
        seen = [value for values in pool.map(count, range(threads)) for value in values]

    assert sorted(seen) == list(range(1, threads * each + 1))


def test_delete(ephemeral_store: EphemeralStore) -> None:
    ephemeral_store.put("session", b"s", ttl=60)
    ephemeral_store.put("other", b"o", ttl=60)
    ephemeral_store.incr("counter", ttl=60)

    ephemeral_store.delete("session", "counter", "never-put")
    ephemeral_store.delete()

    assert ephemeral_store.get("session") is None
    assert ephemeral_store.get("other") == b"o"
    assert ephemeral_store.incr("counter", ttl=60) == 1


def test_put_replacing_renames_an_entry_in_one_step(ephemeral_store: EphemeralStore) -> None:
    """A session given a new id: the old key is gone and the new one holds the value, together."""
    ephemeral_store.put("session:old", b"s", ttl=60)
    ephemeral_store.put("other", b"o", ttl=60)

    ephemeral_store.put("session:new", b"s2", ttl=60, replacing="session:old")
    ephemeral_store.put("session:newer", b"s3", ttl=60, replacing="never-put")

    assert ephemeral_store.get_many(["session:old", "session:new", "session:newer", "other"]) == [
        None,
        b"s2",
        b"s3",
        b"o",
    ]


def test_ping_answers(ephemeral_store: EphemeralStore) -> None:
    ephemeral_store.ping()


# -- reserve and refund: an attempt is counted before it is weighed ------------------------------------


def tally(name: str, *, free: int = 2, holds: tuple[int, ...] = (60,), window: int = 60) -> Tally:
    return Tally(key=f"tries:{name}", hold_key=f"held:{name}", window=window, free=free, holds=holds)


def held(outcomes: list[Reserved | Held]) -> list[bool]:
    return [isinstance(outcome, Held) for outcome in outcomes]


def test_reserve_counts_the_free_attempts_and_the_first_beyond_them_sets_the_hold(
    ephemeral_store: EphemeralStore,
) -> None:
    tries = tally("alice", free=2, holds=(60,))
    outcomes = [ephemeral_store.reserve([tries]) for _ in range(5)]

    assert held(outcomes) == [False, False, False, True, True]
    assert outcomes[3] == outcomes[4] == Held(waits=(60,))
    assert len({outcome.token for outcome in outcomes[:3] if isinstance(outcome, Reserved)}) == 3


def test_each_count_beyond_the_free_ones_takes_the_next_hold_and_the_last_repeats(
    ephemeral_store: EphemeralStore,
) -> None:
    tries = tally("alice", free=1, holds=(10, 20))
    assert isinstance(ephemeral_store.reserve([tries]), Reserved)
    waits = []
    for _ in range(3):
        assert isinstance(ephemeral_store.reserve([tries]), Reserved)
        outcome = ephemeral_store.reserve([tries])
        assert isinstance(outcome, Held)
        waits.append(outcome.waits)
        ephemeral_store.delete(tries.hold_key)  # as if the hold had run out

    assert waits == [(10,), (20,), (20,)]


def test_one_held_tally_refuses_the_attempt_and_counts_it_nowhere(ephemeral_store: EphemeralStore) -> None:
    alice, address = tally("alice", free=0), tally("address", free=5)
    assert isinstance(ephemeral_store.reserve([alice]), Reserved)

    assert ephemeral_store.reserve([address, alice]) == Held(waits=(None, 60))
    assert held([ephemeral_store.reserve([address]) for _ in range(7)]) == [False] * 6 + [True], (
        "the address still had all five free attempts and the one that holds"
    )


def test_a_hold_ends_after_its_seconds(ephemeral_store: EphemeralStore) -> None:
    tries = tally("alice", free=0, holds=(1,))
    assert isinstance(ephemeral_store.reserve([tries]), Reserved)
    assert ephemeral_store.reserve([tries]) == Held(waits=(1,))

    time.sleep(PAST_ONE_SECOND)

    assert isinstance(ephemeral_store.reserve([tries]), Reserved)


def test_counts_last_the_window_from_the_first_attempt(ephemeral_store: EphemeralStore) -> None:
    tries = tally("alice", free=2, window=1)
    ephemeral_store.reserve([tries])
    time.sleep(PAST_ONE_SECOND / 2)
    ephemeral_store.reserve([tries])  # must not extend the window
    time.sleep(PAST_ONE_SECOND / 2)

    assert held([ephemeral_store.reserve([tries]) for _ in range(4)]) == [False, False, False, True]


def test_refund_takes_back_one_count_and_the_hold_it_set(ephemeral_store: EphemeralStore) -> None:
    tries = tally("alice", free=1)
    ephemeral_store.reserve([tries])
    second = ephemeral_store.reserve([tries])
    assert isinstance(second, Reserved)
    assert isinstance(ephemeral_store.reserve([tries]), Held)

    ephemeral_store.refund([tries], token=second.token)

    assert held([ephemeral_store.reserve([tries]) for _ in range(2)]) == [False, True]


def test_refund_forgets_other_keys_in_the_same_step(ephemeral_store: EphemeralStore) -> None:
    """A success takes back its address's count and ends its account's run at once."""
    address, account = tally("address", free=5), tally("account", free=1)
    reserved = ephemeral_store.reserve([address, account])
    assert isinstance(reserved, Reserved)
    ephemeral_store.reserve([account])  # the account's gate now holds

    ephemeral_store.refund([address], token=reserved.token, forget=[account.key, account.hold_key])

    assert ephemeral_store.get_many([account.key, account.hold_key]) == [None, None]
    assert ephemeral_store.incr(address.key, ttl=60) == 1  # its count was taken back to 0
    ephemeral_store.refund([], token="nothing", forget=["never-put"])


def test_refund_leaves_a_hold_another_reservation_set(ephemeral_store: EphemeralStore) -> None:
    tries = tally("alice", free=0)
    first = ephemeral_store.reserve([tries])
    assert isinstance(first, Reserved)
    ephemeral_store.delete(tries.hold_key)  # as if its hold had run out
    assert isinstance(ephemeral_store.reserve([tries]), Reserved)

    ephemeral_store.refund([tries], token=first.token)

    assert ephemeral_store.reserve([tries]) == Held(waits=(60,))


def test_refund_of_a_count_that_is_gone_takes_nothing(ephemeral_store: EphemeralStore) -> None:
    tries = tally("alice", free=0)
    ephemeral_store.refund([tries], token="no reservation")
    ephemeral_store.refund([], token="nothing")

    assert held([ephemeral_store.reserve([tries]) for _ in range(2)]) == [False, True], (
        "a count below zero would have made the first attempt free"
    )


def test_racing_reservations_get_no_further_than_the_allowance(ephemeral_store: EphemeralStore) -> None:
    racers = 32
    alice, address = tally("alice", free=5), tally("address", free=1000)
    start = threading.Barrier(racers)

    def race(_: int) -> Reserved | Held:
        start.wait(timeout=10)
        return ephemeral_store.reserve([address, alice])

    with ThreadPoolExecutor(racers) as pool:
        outcomes = list(pool.map(race, range(racers)))

    assert held(outcomes).count(False) == 6, "five free attempts, and the one that set the hold"
    assert held([ephemeral_store.reserve([address]) for _ in range(994)]) == [False] * 994, (
        "held attempts counted nowhere"
    )


UNREACHABLE: list[tuple[str, Callable[[EphemeralStore], object]]] = [
    ("ping", lambda store: store.ping()),
    ("put", lambda store: store.put("k", b"v", ttl=60)),
    ("get", lambda store: store.get("k")),
    ("get_many", lambda store: store.get_many(["k", "l"])),
    ("delete", lambda store: store.delete("k", "l")),
    ("take", lambda store: store.take("k")),
    ("incr", lambda store: store.incr("k", ttl=60)),
    ("reserve", lambda store: store.reserve([tally("k")])),
    ("refund", lambda store: store.refund([tally("k")], token="t")),
]


@pytest.mark.parametrize(
    "operation",
    [
        pytest.param(call, id=f"{name} fails because nothing listens on the port")
        for name, call in UNREACHABLE
    ],
)
def test_unreachable_redis_raises_store_unavailable(
    operation: Callable[[EphemeralStore], object],
) -> None:
    store = RedisStore("redis://127.0.0.1:1/0")

    with pytest.raises(StoreUnavailable):
        operation(store)


def test_open_picks_redis_when_a_url_is_configured(redis_url: str, tmp_path: Path) -> None:
    assert isinstance(open_ephemeral_store(redis_url, tmp_path), RedisStore)
    embedded = open_ephemeral_store("", tmp_path / "instance")
    assert isinstance(embedded, EmbeddedStore)
    assert (tmp_path / "instance" / "ephemeral.sqlite3").is_file()


# The embedded store promises the same across the processes of one node: they share one file.


def test_embedded_instances_on_one_file_share_entries(tmp_path: Path) -> None:
    path = tmp_path / "ephemeral.sqlite3"
    first, second = EmbeddedStore(path), EmbeddedStore(path)

    first.put("code", b"grant", ttl=60)
    first.incr("failures", ttl=60)

    assert second.get("code") == b"grant"
    assert second.incr("failures", ttl=60) == 2
    assert second.take("code") == b"grant"
    assert first.get("code") is None
    assert first.take("code") is None


def _take_all(path: Path, keys: list[str], _racer: int, start: Barrier, results: Queue[list[str]]) -> None:
    store = EmbeddedStore(path)
    start.wait(timeout=30)
    results.put([key for key in keys if store.take(key) is not None])


def test_embedded_take_has_one_winner_across_processes(tmp_path: Path) -> None:
    path = tmp_path / "ephemeral.sqlite3"
    store = EmbeddedStore(path)
    keys = [f"code:{number}" for number in range(300)]
    for key in keys:
        store.put(key, key.encode(), ttl=60)
    won = race_in_two_processes(_take_all, path, keys)

    assert sorted(won[0] + won[1]) == sorted(keys), "every key is taken exactly once"
    assert all(store.get(key) is None for key in keys)


def test_embedded_log_is_copied_back_while_writes_go_on(tmp_path: Path) -> None:
    """The store checkpoints its write-ahead log itself (SQLite's own checkpoints, which stalled every
    thread of the process, are off): after 20,000 writes of 1 KiB the log stays the size of a few
    thousand at most, and a concurrent reader in a second thread is never refused meanwhile."""
    path = tmp_path / "ephemeral.sqlite3"
    store = EmbeddedStore(path)
    finished, failures = threading.Event(), []

    def read_while_writing() -> None:
        while not finished.is_set():
            try:
                store.get("entry:0")
            except Exception as error:  # the test reports any
                failures.append(error)

    reader = threading.Thread(target=read_while_writing)
    reader.start()
    try:
        for number in range(20_000):
            store.put(f"entry:{number}", b"x" * 1024, ttl=60)
    finally:
        finished.set()
        reader.join()
    assert failures == []
    log = path.with_name(path.name + "-wal")
    assert log.stat().st_size < 64 * 1024 * 1024  # 6-13 MiB here; never checkpointed: over 400 MiB
    assert store.get("entry:19999") == b"x" * 1024
