"""Operations against a real `idp serve` (two workers): metrics across workers, on their own listener or
behind a bearer token and never public by default; request ids, JSON logs."""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from support.live import CHECKOUT_IDP, LiveProvider, free_port, start_provider, write_config

METRICS_TOKEN = secrets.token_hex(32)


@dataclass(frozen=True)
class Observed:
    live: LiveProvider
    metrics_listener: str  # the separate listener's /metrics URL


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Observed]:
    directory = tmp_path_factory.mktemp("observability")
    token_file = directory / "metrics-token"
    token_file.write_text(METRICS_TOKEN + "\n")  # as a container secret: one line
    port = free_port()
    metrics = f'[metrics]\nlisten = "127.0.0.1:{port}"\nbearer_token_file = "{token_file}"\n'
    live = start_provider(directory, extra=metrics)
    yield Observed(live, f"http://127.0.0.1:{port}/metrics")
    live.stop()


@pytest.fixture(scope="module")
def provider(observed: Observed) -> LiveProvider:
    return observed.live


@pytest.fixture(scope="module")
def unconfigured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    live = start_provider(tmp_path_factory.mktemp("no-metrics-settings"))
    yield live
    live.stop()


def _metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        found = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if found and ",".join(sorted(found.group(1).split(","))) == wanted:
            return float(found.group(2))
    return 0.0


def test_token_counters_add_up_across_workers(observed: Observed) -> None:
    provider = observed.live
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
    text = requests.get(observed.metrics_listener, timeout=10).text
    assert _metric(text, "idp_tokens_issued_total", grant_type="client_credentials", status="200") == 6
    assert _metric(text, "idp_tokens_issued_total", grant_type="client_credentials", status="401") == 1
    assert _metric(text, "idp_request_duration_seconds_count", endpoint="oidc.token") == 7


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        f"Basic {METRICS_TOKEN}",
        f"Bearer {METRICS_TOKEN[:-1]}",
        f"Bearer {METRICS_TOKEN}x",
        "Bearer ",
    ],
    ids=["no-token", "not-bearer", "a-prefix-of-the-token", "the-token-and-more", "empty-bearer"],
)
def test_metrics_on_the_main_port_refuse_anyone_without_the_bearer_token(
    provider: LiveProvider, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    refused = requests.get(f"{provider.issuer}/metrics", headers=headers, timeout=10)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert "idp_" not in refused.text


def test_metrics_on_the_main_port_answer_the_bearer_token(provider: LiveProvider) -> None:
    answer = requests.get(
        f"{provider.issuer}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    assert answer.status_code == 200
    assert "idp_request_duration_seconds" in answer.text


def test_the_metrics_listener_serves_what_the_main_port_does_not_show(observed: Observed) -> None:
    answer = requests.get(observed.metrics_listener, timeout=10)
    assert answer.status_code == 200
    assert "idp_request_duration_seconds_count" in answer.text


def test_metrics_are_not_served_on_the_main_port_by_default(unconfigured: LiveProvider) -> None:
    for headers in ({}, {"Authorization": "Bearer anything"}):
        assert requests.get(f"{unconfigured.issuer}/metrics", headers=headers, timeout=10).status_code == 404


def test_config_show_masks_the_metrics_token(provider: LiveProvider) -> None:
    shown = provider.idp("config", "show")
    assert shown.returncode == 0, shown.stderr
    assert 'metrics.bearer_token = "***"' in shown.stdout.splitlines()
    assert METRICS_TOKEN not in shown.stdout


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


def test_a_metrics_listener_port_already_taken_stops_serve_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path, port=free_port(), extra=f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
        served = subprocess.run(
            [*CHECKOUT_IDP, "--config", str(config), "serve", "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert served.returncode == 2
    assert served.stderr == (
        f"idp: config error: metrics.listen: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    )


def test_the_metrics_listener_runs_beside_gunicorn_too(tmp_path: Path) -> None:
    port = free_port()
    live = start_provider(tmp_path, extra=f'engine = "gunicorn"\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    try:
        for _ in range(4):
            assert requests.get(f"{live.issuer}/health", timeout=10).status_code == 200
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert _metric(text, "idp_request_duration_seconds_count", endpoint="wellknown.health") >= 4
        assert requests.get(f"{live.issuer}/metrics", timeout=10).status_code == 404
    finally:
        live.stop()
