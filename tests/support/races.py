"""Two processes of one node racing for the same things, started at once."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from multiprocessing.synchronize import Barrier
from queue import Queue
from typing import Any

Racer = Callable[..., None]  # (*arguments, racer number, start barrier, results queue)


def race_in_two_processes(racer: Racer, *arguments: Any) -> list[list[str]]:
    """What each of two spawned processes (no connection crosses a fork) running
    `racer(*arguments, number, start, results)` put in `results`: each waits at `start`, so that both
    race; both must exit cleanly."""
    context = multiprocessing.get_context("spawn")
    start: Barrier = context.Barrier(2)
    results: Queue[list[str]] = context.Queue()
    workers = [context.Process(target=racer, args=(*arguments, number, start, results)) for number in (1, 2)]
    for worker in workers:
        worker.start()
    won = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    assert [worker.exitcode for worker in workers] == [0, 0]
    return won
