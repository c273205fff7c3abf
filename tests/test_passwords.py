"""argon2id verification: concurrent hashes per process bounded by its cores."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from argon2 import PasswordHasher

from idp.auth.passwords import Passwords, concurrent_hashes
from idp.config import PasswordSettings

FAST = PasswordSettings(memory_cost=8192, time_cost=1)


def test_concurrent_hashes_follow_the_cores_this_process_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert [concurrent_hashes(parallelism) for parallelism in (1, 2, 4, 8)] == [4, 2, 1, 1]


def test_no_more_hashes_run_at_once_than_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    passwords = Passwords(FAST)
    stored = passwords.hash("correct horse battery staple")
    running, most, lock = 0, 0, threading.Lock()
    verify = PasswordHasher.verify

    def observed_verify(self: PasswordHasher, *args: Any) -> Any:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        try:
            return verify(self, *args)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(PasswordHasher, "verify", observed_verify)
    with ThreadPoolExecutor(max_workers=8) as pool:
        checks = list(
            pool.map(
                lambda guess: passwords.verify(stored_hash=stored, password=guess),
                ["correct horse battery staple", "wrong"] * 8,
            )
        )

    assert [check.valid for check in checks] == [True, False] * 8
    assert most == 2
