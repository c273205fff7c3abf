"""One guard for guessing: limits that cannot be raced, and every guessed secret treated alike.

The race: a real `idp serve` (two workers, sixteen request threads each), on Redis and on the
embedded store, takes a burst of concurrent wrong guesses at each secret an attacker can guess; the
audit log says how many of them were actually checked. The guard: the same throttled, audited and
counted answer whichever secret is guessed, and no count for a check that broke off.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from flask import Flask
from prometheus_client import REGISTRY
from sqlalchemy import select
from support.app import Browser, add_client, add_user, make_app
from support.attack import (
    ATTACKER,
    Guesser,
    Victim,
    audit_events,
    client_at,
    passkey_assertion,
    wrong_totp_code,
)
from support.live import LiveProvider, start_provider
from support.oidc_client import Browser as UserAgent
from support.oidc_client import (
    Client,
    OpenIdProvider,
    create_account,
    is_factor_page,
    is_password_page,
)
from support.services import emptied_redis
from support.soft_authenticator import Credential, SoftAuthenticator
from support.step_up import cli_client, page_csrf, post_json
from werkzeug.test import TestResponse

from idp.config import load_settings
from idp.store.database import Database, DatabaseUnavailable
from idp.store.tables import AuditEvent
from idp.views import guessing
from idp.web import services

FREE = 5  # free attempts at every gate raced here: FREE + 1 checks (the last one sets the wait)
GATES = ("password_account", "second_factor", "webauthn_address", "client_auth")
THROTTLE = (
    "".join(
        f"[throttle.{gate}]\nfree_attempts = {FREE}\nbase_delay = 600\nmax_delay = 600\n" for gate in GATES
    )
    + "[throttle.password_address]\nfree_attempts = 1000\n"
)  # the tests share one address: never in the way
BURST = 64  # wrong guesses sent at once
PASSWORD = "a long enough password"
WRONG = "not the password at all"


# -- the race: concurrent guesses against a live provider -------------------------------------------------


@dataclass(frozen=True)
class Provider:
    live: LiveProvider
    op: OpenIdProvider
    client: Client

    def checked(self, event: str, *, step: str | None = None, client_id: str | None = None) -> int:
        """Guesses the provider checked and found wrong: its audit log's failures of `event`."""
        database = Database(load_settings(self.live.config).database_url)
        try:
            with database.unit_of_work() as session:
                rows = session.scalars(
                    select(AuditEvent).where(AuditEvent.event == event, AuditEvent.outcome == "failure")
                )
                return sum(
                    1
                    for row in rows
                    if step in (None, (row.detail or {}).get("step")) and client_id in (None, row.client_id)
                )
        finally:
            database.engine.dispose()


@pytest.fixture(scope="module", params=["redis", "embedded"])
def provider(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    redis_url = ""
    if request.param == "redis":
        redis_url = emptied_redis(request.getfixturevalue("_redis_server"), env="IDP_TEST_REDIS_URL")
    live = start_provider(
        tmp_path_factory.mktemp(f"race-{request.param}"), redis_url=redis_url, extra=THROTTLE
    )
    try:
        yield Provider(live, OpenIdProvider(live.issuer), cli_client(live, "race"))
    finally:
        live.stop()


def burst(sends: list[Callable[[], requests.Response]]) -> list[int]:
    """Every request sent at once (each attacker's cookie jar, page and form made ready beforehand,
    each thread ready before any sends); the statuses answered."""
    start = threading.Barrier(len(sends))

    def send(one: Callable[[], requests.Response]) -> int:
        start.wait(timeout=60)
        return one().status_code

    with ThreadPoolExecutor(len(sends)) as pool:
        return list(pool.map(send, sends))


def password_page(provider: Provider) -> tuple[UserAgent, requests.Response]:
    agent = UserAgent(provider.op)
    page = agent.authorize(provider.client).page
    assert is_password_page(page), page.text
    return agent, page


def test_concurrent_wrong_passwords_get_no_more_checks_than_the_allowance(provider: Provider) -> None:
    alice = create_account(provider.live, "alice")

    def prepare(n: int) -> Callable[[], requests.Response]:
        agent, page = password_page(provider)
        return lambda: agent.submit(page, username=alice.username, password=f"{WRONG} {n}")

    statuses = burst([prepare(n) for n in range(BURST)])

    assert provider.checked("sign_in", step="password") == FREE + 1
    assert sorted(statuses) == [401] * (FREE + 1) + [429] * (BURST - FREE - 1)


def test_concurrent_wrong_totp_codes_get_no_more_checks_than_the_allowance(provider: Provider) -> None:
    bob = create_account(provider.live, "bob")
    UserAgent(provider.op).sign_in(provider.client, bob)  # enrols the authenticator app
    assert bob.authenticator is not None
    wrong = wrong_totp_code(bob.authenticator.secret)

    def prepare(_n: int) -> Callable[[], requests.Response]:
        agent, page = password_page(provider)
        factor = agent.submit(page, username=bob.username, password=bob.password)  # phished
        assert is_factor_page(factor), factor.text
        return lambda: agent.submit(factor, code=wrong)

    statuses = burst([prepare(n) for n in range(BURST)])

    assert provider.checked("sign_in", step="totp") == FREE + 1
    assert sorted(statuses) == [401] * (FREE + 1) + [429] * (BURST - FREE - 1)


def test_concurrent_forged_passkey_assertions_get_no_more_checks_than_the_allowance(
    provider: Provider,
) -> None:
    key = SoftAuthenticator()

    def prepare(_n: int) -> Callable[[], requests.Response]:
        agent, page = password_page(provider)
        csrf = page_csrf(page)
        options = post_json(agent, f"{page.url}/passkey/options", {}, csrf=csrf)
        assert options.status_code == 200, options.text
        if not key.credentials:
            key.credentials.append(Credential.new(rp_id=options.json()["rpId"], user_handle=b"nobody"))
        forged = key.get(options.json())  # a credential never registered here
        return lambda: post_json(agent, f"{page.url}/passkey", {"credential": forged}, csrf=csrf)

    statuses = burst([prepare(n) for n in range(BURST)])

    assert provider.checked("sign_in", step="webauthn") == FREE + 1
    assert sorted(statuses) == [400] * (FREE + 1) + [429] * (BURST - FREE - 1)


def test_concurrent_wrong_client_secrets_get_no_more_checks_than_the_allowance(provider: Provider) -> None:
    target = provider.client

    def prepare(n: int) -> Callable[[], requests.Response]:
        return lambda: provider.op.token(target.with_secret(f"guess-{n}"), grant_type="client_credentials")

    statuses = burst([prepare(n) for n in range(BURST)])

    assert provider.checked("client_authentication", client_id=target.client_id) == FREE + 1
    assert sorted(statuses) == [401] * (FREE + 1) + [429] * (BURST - FREE - 1)


@pytest.mark.parametrize("sent_as", ["HTTP Basic", "the form"])
def test_a_burst_of_right_client_secrets_is_never_throttled(provider: Provider, sent_as: str) -> None:
    """A busy client's requests sent at once: a right secret is checked before it would be counted and
    is never counted, so they cannot make the client's own gate hold (HTTP Basic is answered ahead of
    Flask once the client is cached, the form by Flask)."""
    busy = cli_client(provider.live, f"busy-{len(sent_as)}", "--grant-type", "client_credentials")
    assert busy.secret is not None
    form = {"grant_type": "client_credentials"}

    def send() -> requests.Response:
        if sent_as == "HTTP Basic":
            return provider.op.token(busy, **form)
        credentials = {"client_id": busy.client_id, "client_secret": busy.secret}
        return requests.post(provider.op.endpoint("token"), data=form | credentials, timeout=30)

    statuses = burst([send] * (3 * FREE)) + burst([send] * (3 * FREE))

    assert statuses == [200] * (6 * FREE)
    assert provider.checked("client_authentication", client_id=busy.client_id) == 0


# -- one guard: every guessed secret throttled, audited and counted alike ----------------------------------


@dataclass
class Scene:
    """A provider where every gate allows one free failure, then waits a minute; alice has an
    authenticator app and a passkey, and an attacker who knows her password."""

    app: Flask
    client_id: str
    victim: Victim
    key: SoftAuthenticator
    factor_guesser: Guesser


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    one_free = {"free_attempts": 1, "base_delay": 60, "max_delay": 60}
    app = make_app(tmp_path, throttle=dict.fromkeys((*GATES, "password_address"), one_free))
    client_id = add_client(app)[0]
    add_user(app, "alice", PASSWORD)
    victim = Victim.enrolled(app, client_id, "alice", PASSWORD)
    key = SoftAuthenticator()
    victim.add_passkey(key)
    return Scene(app, client_id, victim, key, Guesser.at_factor_page(app, client_id, "alice", PASSWORD))


def wrong_password(scene: Scene) -> TestResponse:
    return Guesser.at_password_page(scene.app, scene.client_id).password("alice", WRONG)


def wrong_totp(scene: Scene) -> TestResponse:
    return scene.factor_guesser.totp(wrong_totp_code(scene.victim.authenticator.secret))


def forged_passkey(scene: Scene) -> TestResponse:
    attacker = Browser(client_at(scene.app, ATTACKER), scene.client_id)
    return passkey_assertion(attacker, attacker.authorize(), scene.key, origin="https://login.example.net")


def wrong_client_secret(scene: Scene) -> TestResponse:
    form = {"grant_type": "client_credentials"}
    return client_at(scene.app, ATTACKER).post("/token", data=form, auth=(scene.client_id, "guess"))


@dataclass(frozen=True)
class Secret:
    guess: Callable[[Scene], TestResponse]
    event: str
    step: str
    refused: int
    counted_as_sign_in: bool = True


SECRETS = [
    pytest.param(Secret(wrong_password, "sign_in", "password", 401), id="passwords"),
    pytest.param(Secret(wrong_totp, "sign_in", "totp", 401), id="TOTP codes"),
    pytest.param(Secret(forged_passkey, "sign_in", "webauthn", 400), id="passkey assertions"),
    pytest.param(
        Secret(wrong_client_secret, "client_authentication", "oidc.token", 401, counted_as_sign_in=False),
        id="client secrets",
    ),
]


def sign_in_counts() -> dict[str, float]:
    return {
        outcome: REGISTRY.get_sample_value("idp_sign_ins_total", {"outcome": outcome, "acr": ""}) or 0.0
        for outcome in ("failure", "throttled")
    }


@pytest.mark.parametrize("secret", SECRETS)
def test_every_guessed_secret_is_refused_audited_and_counted_alike(scene: Scene, secret: Secret) -> None:
    before = sign_in_counts()

    answers = [secret.guess(scene) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [secret.refused, secret.refused, 429]
    assert answers[-1].headers["Retry-After"] == "60"
    failures = audit_events(scene.app, secret.event, "failure")
    assert [event.detail["step"] for event in failures] == [secret.step] * 2
    throttled = audit_events(scene.app, secret.event, "throttled")
    assert [event.detail for event in throttled] == [
        {"step": secret.step, "retry_after": 60, "locked": False}
    ]
    counted = {outcome: now - before[outcome] for outcome, now in sign_in_counts().items()}
    assert counted == (
        {"failure": 2, "throttled": 1} if secret.counted_as_sign_in else dict.fromkeys(counted, 0)
    )


def test_a_guess_whose_check_broke_off_is_taken_back(scene: Scene) -> None:
    with scene.app.test_request_context(environ_base={"REMOTE_ADDR": ATTACKER}):
        attempt = (services().throttle.second_factor, "someone")
        guessed = guessing.Guessed(guessing.Event.SIGN_IN, "totp")
        for _ in range(3):
            guess = guessing.reserve(guessed, attempt)
            assert isinstance(guess, guessing.Guess)
            with pytest.raises(DatabaseUnavailable), guess:
                raise DatabaseUnavailable("the database went away in the middle of the check")
        outcomes = []
        for _ in range(3):
            guess = guessing.reserve(guessed, attempt)
            outcomes.append(type(guess).__name__)
            if isinstance(guess, guessing.Guess):
                with guess:
                    guess.wrong()

    assert outcomes == ["Guess", "Guess", "Blocked"], "the broken-off checks counted nothing"
