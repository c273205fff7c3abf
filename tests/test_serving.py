"""The production server as clients meet it: idle and silent connections do not starve the others."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from support.live import LiveProvider, start_provider

from idp.malloc import limit_malloc_arenas

IDLE_CONNECTIONS = 48  # more than the requests a worker runs at once, times the workers


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LiveProvider]:
    live = start_provider(tmp_path)
    yield live
    live.stop()


def test_idle_connections_do_not_starve_other_clients(provider: LiveProvider) -> None:
    address = urlsplit(provider.issuer)
    idle = []
    try:
        for _ in range(IDLE_CONNECTIONS):
            silent = socket.create_connection((address.hostname, address.port), timeout=5)
            idle.append(silent)  # connected, never sends a request head
        for _ in range(5):
            assert requests.get(f"{provider.issuer}/health", timeout=5).status_code == 200
    finally:
        for connection in idle:
            connection.close()


def test_one_thread_per_worker_answers_concurrent_clients(tmp_path: Path) -> None:
    """`[server] threads = 1`: each worker runs one request at a time and queues the rest."""
    live = start_provider(tmp_path, extra="threads = 1\n")
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda _: _refused_token_request(live.issuer), range(64)))
        assert answers == [401] * 64
    finally:
        live.stop()


def _refused_token_request(issuer: str) -> int:
    """Through Flask, to its error answer and audit (an unknown client)."""
    data = {"grant_type": "client_credentials"}
    return requests.post(f"{issuer}/token", data=data, auth=("nobody", "wrong"), timeout=10).status_code


def test_workers_limit_glibc_malloc_arenas() -> None:
    """glibc (this machine's C library) takes the arena limit that keeps a worker near 160 MiB."""
    assert limit_malloc_arenas() is True
