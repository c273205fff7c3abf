"""Operations against a real `idp serve` (two workers): metrics across workers, request ids, JSON logs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from support.live import LiveProvider, start_provider


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    live = start_provider(tmp_path_factory.mktemp("observability"))
    yield live
    live.stop()


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        found = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if found and ",".join(sorted(found.group(1).split(","))) == wanted:
            return float(found.group(2))
    return 0.0


def test_token_counters_add_up_across_workers(provider: LiveProvider) -> None:
    created = provider.idp(
        "clients", "create", "--name", "Machine", "--grant-type", "client_credentials", "--json"
    )
    client = json.loads(created.stdout)
    for _ in range(6):  # more requests than workers: several processes answer
        answer = requests.post(
            f"{provider.issuer}/token",
            data={"grant_type": "client_credentials"},
            auth=(client["client_id"], client["client_secret"]),
            timeout=10,
        )
        assert answer.status_code == 200
    requests.post(
        f"{provider.issuer}/token",
        data={"grant_type": "client_credentials"},
        auth=(client["client_id"], "wrong"),
        timeout=10,
    )
    text = requests.get(f"{provider.issuer}/metrics", timeout=10).text
    assert _metric(text, "idp_tokens_issued_total", grant_type="client_credentials", status="200") == 6
    assert _metric(text, "idp_tokens_issued_total", grant_type="client_credentials", status="401") == 1
    assert _metric(text, "idp_request_duration_seconds_count", endpoint="oidc.token") == 7


def test_request_id_is_echoed_or_made_up(provider: LiveProvider) -> None:
    mine = requests.get(f"{provider.issuer}/health", headers={"X-Request-ID": "trace-42"}, timeout=10)
    assert mine.headers["X-Request-ID"] == "trace-42"
    hostile = requests.get(f"{provider.issuer}/health", headers={"X-Request-ID": "a b\tc" * 30}, timeout=10)
    assert re.fullmatch(r"[0-9a-f]{16}", hostile.headers["X-Request-ID"])


def test_logs_are_json_lines_with_the_request_id(provider: LiveProvider) -> None:
    page = requests.get(
        f"{provider.issuer}/authorize",
        params={"client_id": "nobody", "response_type": "code"},
        headers={"X-Request-ID": "log-check-1"},
        timeout=10,
    )
    assert page.status_code == 400
    log = Path(provider.config.parent / "idp-serve.log").read_text()
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in entries)
    ours = [entry for entry in entries if entry.get("request_id") == "log-check-1"]
    assert [entry["message"] for entry in ours] == ["authorization request refused: invalid_client"]
