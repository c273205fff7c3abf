"""Bounded unauthenticated state: whatever one address sends before anyone signs in, the provider
keeps little of it, for little time, and fails closed when Redis is full.

Each test runs a live provider on PostgreSQL and a redis-server of its own, so that what the
provider stores can be measured there and nothing else is in it. All requests come from one
address (127.0.0.1), as a single client flooding the provider would.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import redis
import requests
from flask import Flask
from sqlalchemy import create_engine, func, select
from support.app import REDIRECT_URI, Browser, add_client, make_app
from support.attack import ATTACKER, VICTIM, client_at
from support.live import LiveProvider, free_port, provider_on_servers
from support.oidc_client import TIMEOUT, OpenIdProvider, create_account, is_password_page
from support.oidc_client import Browser as UserAgent
from support.services import RedisServer
from support.step_up import cli_client

from idp.store.tables import AuditEvent

KIB = 1024
JUNK = {f"junk{n}": "x" * 8000 for n in range(7)}  # 56 KiB of parameters nobody reads, under the body limit
SIGN_IN_LIFETIME = 900
SESSION_LIFETIME = 43200
UNAVAILABLE = "Temporarily unavailable"
METRICS_TOKEN = secrets.token_hex(32)
METRICS = f'[metrics]\nbearer_token = "{METRICS_TOKEN}"\n'


@dataclass
class Bounded:
    """A live provider, the Redis it alone uses, and the database its audit trail goes to."""

    live: LiveProvider
    store: redis.Redis
    database_url: str

    @property
    def op(self) -> OpenIdProvider:
        return OpenIdProvider(self.live.issuer)

    def stored_bytes(self) -> int:
        """What the provider keeps in Redis now, as Redis counts it (MEMORY USAGE of every key)."""
        return sum(int(self.store.memory_usage(key) or 0) for key in self.store.scan_iter())

    def keys(self, pattern: str) -> list[bytes]:
        return list(self.store.scan_iter(match=pattern))

    def audit_rows(self, event: str) -> int:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                query = select(func.count()).select_from(AuditEvent).where(AuditEvent.event == event)
                return int(connection.scalar(query) or 0)
        finally:
            engine.dispose()


@contextmanager
def bounded_provider(
    directory: Path, *, extra: str = "", redis_options: tuple[str, ...] = ()
) -> Iterator[Bounded]:
    server = RedisServer(free_port(), directory, redis_options)
    server.start()
    try:
        with (
            provider_on_servers(
                directory,
                redis_url=server.url,
                redis_env="(a redis-server of this test's own)",
                database_prefix="idp_bounded_",
                extra=extra,
            ) as live,
            redis.Redis.from_url(server.url) as store,
        ):
            yield Bounded(live, store, live.database_url)
    finally:
        server.kill()


def authorization_request(client_id: str, redirect_uri: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": "openid",
        "state": secrets.token_urlsafe(12),
        "code_challenge": "c" * 43,
        "code_challenge_method": "S256",
        **extra,
    }


def test_a_flood_of_authorization_requests_keeps_4_kib_a_sign_in_and_stops_at_the_address_quota(
    tmp_path: Path,
) -> None:
    """300 requests carrying 56 KiB of junk each used to add 18.6 MB to Redis within a second."""
    with bounded_provider(tmp_path, extra="[address_limits]\nsign_ins = 300\n") as bounded:
        client = cli_client(bounded.live, "flooded")
        endpoint = bounded.op.endpoint("authorization")
        form = authorization_request(client.client_id, client.redirect_uri, **JUNK)
        before = bounded.stored_bytes()

        def one() -> requests.Response:
            return requests.post(endpoint, data=form, allow_redirects=False, timeout=TIMEOUT * 6)

        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda _n: one(), range(360)))

        started = [answer for answer in answers if answer.status_code == 302]
        refused = [answer for answer in answers if answer.status_code == 429]
        assert len(started) == 300 and len(refused) == 60, sorted({a.status_code for a in answers})
        assert all("/signin/" in answer.headers["Location"] for answer in started)
        assert all(int(answer.headers["Retry-After"]) == SIGN_IN_LIFETIME for answer in refused)
        sign_ins = [bounded.store.get(key) or b"" for key in bounded.keys("idp:authz:*")]
        assert len(sign_ins) == 300 and not any(b"junk" in sign_in for sign_in in sign_ins)
        assert max(len(sign_in) for sign_in in sign_ins) <= 4 * KIB + KIB
        added = bounded.stored_bytes() - before
        assert added <= 300 * 6 * KIB, f"{added / 1e6:.1f} MB for 300 sign-ins"


def test_an_understood_parameter_past_4_kib_is_refused_to_the_client_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    with bounded_provider(tmp_path) as bounded:
        client = cli_client(bounded.live, "oversized")
        query = authorization_request(client.client_id, client.redirect_uri, nonce="n" * 5000)

        answer = requests.get(
            bounded.op.endpoint("authorization"), params=query, allow_redirects=False, timeout=TIMEOUT
        )

        assert answer.status_code == 302 and answer.headers["Location"].startswith(client.redirect_uri)
        sent_back = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert sent_back["error"] == ["invalid_request"] and sent_back["state"] == [query["state"]]
        assert sent_back["iss"] == [bounded.live.issuer]
        assert bounded.keys("idp:authz:*") == [] and bounded.keys("idp:session:*") == []


def test_failures_from_one_address_add_a_bounded_number_of_audit_rows_and_no_key_a_guess(
    tmp_path: Path,
) -> None:
    with bounded_provider(tmp_path, extra=f"[address_limits]\naudited_failures = 20\n{METRICS}") as bounded:
        op = bounded.op
        client = cli_client(bounded.live, "audited")

        def wrong_client(n: int) -> requests.Response:
            form = {"grant_type": "client_credentials", "client_id": f"nobody-{n}", "client_secret": "x"}
            return requests.post(op.endpoint("token"), data=form, timeout=TIMEOUT)

        with ThreadPoolExecutor(max_workers=8) as pool:
            refused = list(pool.map(wrong_client, range(150)))
        guesser = UserAgent(op)
        page = guesser.authorize(client).page
        guesses = [guesser.submit(page, username=f"someone-{n}", password="guess") for n in range(50)]

        assert {answer.json()["error"] for answer in refused} == {"invalid_client"}
        assert {guess.status_code for guess in guesses} <= {401, 429}
        recorded = bounded.audit_rows("client_authentication") + bounded.audit_rows("sign_in")
        assert recorded == 20, "the address's quota of failure rows"
        assert bounded.audit_rows("audit_suppressed") == 1, "and one row saying the rest were not kept"
        metrics = requests.get(
            f"{bounded.live.issuer}/metrics",
            headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
            timeout=TIMEOUT,
        ).text
        suppressed = [line for line in metrics.splitlines() if line.startswith("idp_audit_suppressed_total{")]
        assert sum(float(line.rsplit(" ", 1)[1]) for line in suppressed) == 200 - 20
        assert bounded.keys("idp:throttle:*client-auth*") == [], (
            "an id that names no client: nothing to count"
        )


def test_an_anonymous_session_lives_as_long_as_a_sign_in_and_a_signed_in_one_its_lifetime(
    tmp_path: Path,
) -> None:
    with bounded_provider(tmp_path) as bounded:
        client = cli_client(bounded.live, "sessions")
        account = create_account(bounded.live, "sessions")
        browser = UserAgent(bounded.op)
        attempt = browser.authorize(client)
        assert is_password_page(attempt.page)
        (anonymous,) = bounded.keys("idp:session:*")
        assert 0 < bounded.store.ttl(anonymous) <= SIGN_IN_LIFETIME

        attempt, _callback = browser.sign_in(client, account)

        (signed_in,) = bounded.keys("idp:session:*")
        assert SIGN_IN_LIFETIME < bounded.store.ttl(signed_in) <= SESSION_LIFETIME


def test_a_full_redis_without_eviction_fails_requests_closed_and_they_recover_once_it_has_room(
    tmp_path: Path,
) -> None:
    """maxmemory-policy noeviction, as docs/deployment.md asks: a full Redis refuses writes (never
    forgets a revocation, a spent code or a guess count), and the provider answers 503, not 500."""
    with bounded_provider(tmp_path, redis_options=("--maxmemory-policy", "noeviction")) as bounded:
        client = cli_client(bounded.live, "full")
        endpoint = bounded.op.endpoint("authorization")
        used = int(bounded.store.info("memory")["used_memory"])
        bounded.store.config_set("maxmemory", used // 2)  # full: every write is refused

        refused = requests.get(
            endpoint, params=authorization_request(client.client_id, client.redirect_uri), timeout=TIMEOUT
        )
        assert refused.status_code == 503 and UNAVAILABLE in refused.text
        assert refused.headers["Retry-After"] == "5"

        bounded.store.config_set("maxmemory", used * 4)
        again = requests.get(
            endpoint,
            params=authorization_request(client.client_id, client.redirect_uri),
            allow_redirects=False,
            timeout=TIMEOUT,
        )
        assert again.status_code == 302 and "/signin/" in again.headers["Location"]


def test_one_address_past_its_quota_leaves_the_others_signing_in(tmp_path: Path) -> None:
    """In process, where each request may come from any address."""
    app: Flask = make_app(tmp_path, address_limits={"sign_ins": 2})
    client_id, _secret = add_client(app)
    flooding = Browser(client_at(app, ATTACKER), client_id)
    answers = [
        flooding.client.get("/authorize", query_string=authorization_request(client_id, REDIRECT_URI))
        for _ in range(3)
    ]
    assert [answer.status_code for answer in answers] == [302, 302, 429]
    assert "Too many sign-ins" in answers[-1].get_data(as_text=True)
    elsewhere = Browser(client_at(app, VICTIM), client_id)
    assert elsewhere.authorize().request.path.startswith("/signin/")
