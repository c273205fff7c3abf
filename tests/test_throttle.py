"""Throttling guesses (NIST SP 800-63B 5.2.2): back-off per account, address, user and client, and the lock.

The unit tests run Throttle on both ephemeral stores. The attack tests script what an attacker does
through the real app, with delays of a second so that waiting out a back-off stays cheap.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.app import REDIRECT_URI, Browser, add_client, add_user, make_app
from support.attack import (
    ATTACKER,
    VICTIM,
    Guesser,
    Victim,
    audit_events,
    botnet,
    client_at,
    idp_command,
    newest_code,
    passkey_assertion,
    refusal,
    register,
    wrong_totp_code,
)
from support.soft_authenticator import SoftAuthenticator
from werkzeug.test import TestResponse

from idp.auth.throttle import Attempt, Blocked, Gate, Reservation, Throttle, account_subject
from idp.config import BackoffSettings, ThrottleSettings
from idp.store.ephemeral import EphemeralStore

PASSWORD = "a long enough password"
WRONG = "not the password at all"
GATES = ("password_account", "password_address", "second_factor", "webauthn_address", "client_auth")
WAIT = "Too many failed attempts. Try again in 1 minute."
LOCKED = (
    "This account is locked after too many failed sign-ins. Sign in with a passkey, "
    "or ask your administrator to unlock it."
)
WRONG_CREDENTIALS = "The username or password is not right."


# -- Throttle on its own ---------------------------------------------------------------------------
# A failure is an attempt reserved and never taken back; `refusal_of` makes one more attempt and
# tells how it was refused (None: it got through, and now counts as a failure too).

LOCK = Blocked(retry_after=0, locked=True)


def throttle_on(store: EphemeralStore, *, lock_after: int = 100, **schedule: int) -> Throttle:
    """Every gate on one schedule: 3 free failures, then 10 s doubling up to 40 s (unless overridden)."""
    backoff = BackoffSettings(**{"free_attempts": 3, "base_delay": 10, "max_delay": 40, **schedule})
    settings = ThrottleSettings(lock_after=lock_after, **dict.fromkeys(GATES, backoff))
    return Throttle(ephemeral=store, settings=settings)


def fail(throttle: Throttle, *attempts: Attempt) -> Reservation:
    reserved = throttle.reserve(*attempts)
    assert isinstance(reserved, Reservation), f"refused: {reserved}"
    return reserved


def refusal_of(throttle: Throttle, *attempts: Attempt) -> Blocked | None:
    reserved = throttle.reserve(*attempts)
    return reserved if isinstance(reserved, Blocked) else None


@pytest.mark.parametrize("gate_name", GATES)
def test_free_attempts_then_a_wait_of_the_base_delay_and_refused_attempts_count_nothing(
    ephemeral_store: EphemeralStore, gate_name: str
) -> None:
    throttle = throttle_on(ephemeral_store)
    attempt = (getattr(throttle, gate_name), "subject")
    assert [refusal_of(throttle, attempt) for _ in range(7)] == [None] * 4 + [Blocked(retry_after=10)] * 3


def test_each_failure_after_a_wait_doubles_it_up_to_the_cap(ephemeral_store: EphemeralStore) -> None:
    throttle = throttle_on(ephemeral_store, free_attempts=1, base_delay=1, max_delay=2)
    attempt = (throttle.second_factor, "subject")
    fail(throttle, attempt)
    waits = []
    for _ in range(3):
        fail(throttle, attempt)
        refused = refusal_of(throttle, attempt)
        assert refused is not None
        waits.append(refused.retry_after)
        time.sleep(refused.retry_after + 0.05)
    assert waits == [1, 2, 2]


@pytest.mark.parametrize(
    ("base", "cap", "waits"),
    [
        (10, 40, (10, 20, 40)),
        (5, 300, (5, 10, 20, 40, 80, 160, 300)),
        (30, 30, (30,)),
        (60, 45, (45,)),
    ],
    ids=["doubles up to the cap", "stops at a cap between doublings", "a cap of the base", "a cap below it"],
)
def test_the_waits_of_a_gate_double_from_the_base_delay_up_to_the_cap(
    base: int, cap: int, waits: tuple[int, ...]
) -> None:
    assert Gate("gate", BackoffSettings(base_delay=base, max_delay=cap)).holds == waits


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        (1, "Try again in 1 minute."),
        (60, "Try again in 1 minute."),
        (61, "Try again in 2 minutes."),
        (900, "Try again in 15 minutes."),
    ],
    ids=["a second rounds up", "a minute", "a second more is two", "the default cap"],
)
def test_the_wait_is_told_in_whole_minutes(retry: int, message: str) -> None:
    assert Blocked(retry_after=retry).message == f"Too many failed attempts. {message}"


@pytest.mark.parametrize(
    ("gate_name", "subject"),
    [
        ("password_account", account_subject("bob")),
        ("password_address", account_subject("alice")),
        ("second_factor", account_subject("alice")),
    ],
    ids=[
        "free because bob is another account",
        "free because the address gate counts apart",
        "free because the second-factor gate counts apart",
    ],
)
def test_failures_count_per_gate_and_subject(
    ephemeral_store: EphemeralStore, gate_name: str, subject: str
) -> None:
    throttle = throttle_on(ephemeral_store)
    alice = (throttle.password_account, account_subject("alice"))
    for _ in range(4):
        fail(throttle, alice)
    assert refusal_of(throttle, alice) == Blocked(retry_after=10)
    assert refusal_of(throttle, (getattr(throttle, gate_name), subject)) is None


def test_names_are_one_account_whatever_their_case_and_spacing() -> None:
    assert account_subject(" Alice ") == account_subject("alice") != account_subject("alice2")


def test_a_success_starts_the_account_run_over_and_leaves_the_other_gates(
    ephemeral_store: EphemeralStore,
) -> None:
    throttle = throttle_on(ephemeral_store)
    alice = (throttle.password_account, account_subject("alice"))
    address = (throttle.password_address, ATTACKER)
    for _ in range(3):
        fail(throttle, alice)
        fail(throttle, address)
    throttle.succeeded(fail(throttle, alice, address))  # right, though it had set both waits
    assert [refusal_of(throttle, alice) for _ in range(5)] == [None] * 4 + [Blocked(retry_after=10)], (
        "the count of consecutive failures starts over"
    )
    assert [refusal_of(throttle, address) for _ in range(2)] == [None, Blocked(retry_after=10)], (
        "the address keeps its three earlier failures"
    )


def test_an_attempt_never_checked_is_taken_back_at_every_gate(ephemeral_store: EphemeralStore) -> None:
    throttle = throttle_on(ephemeral_store, lock_after=10, free_attempts=9)
    alice = (throttle.password_account, account_subject("alice"))
    address = (throttle.password_address, ATTACKER)
    for _ in range(9):
        fail(throttle, alice, address)
    throttle.refund(fail(throttle, alice, address))  # it set both waits and the lock; its check broke
    assert [refusal_of(throttle, alice, address) for _ in range(2)] == [None, LOCK]


def test_the_longest_wait_of_the_gates_asked_is_reported(ephemeral_store: EphemeralStore) -> None:
    short, long = (BackoffSettings(free_attempts=3, base_delay=delay, max_delay=40) for delay in (10, 40))
    settings = ThrottleSettings(password_account=short, password_address=long)
    throttle = Throttle(ephemeral=ephemeral_store, settings=settings)
    account = (throttle.password_account, account_subject("alice"))
    address = (throttle.password_address, ATTACKER)
    for _ in range(4):
        fail(throttle, account)
        fail(throttle, address)
    assert [refusal_of(throttle, account), refusal_of(throttle, address)] == [Blocked(10), Blocked(40)]
    assert refusal_of(throttle, account, address) == refusal_of(throttle, address, account) == Blocked(40)


@pytest.mark.parametrize(
    ("gate_name", "locks"),
    [("password_account", True), ("second_factor", False), ("password_address", False)],
    ids=[
        "locks: consecutive password failures of an account",
        "never locks: second factors only back off",
        "never locks: addresses only back off",
    ],
)
def test_only_consecutive_password_failures_of_an_account_lock_it(
    ephemeral_store: EphemeralStore, gate_name: str, locks: bool
) -> None:
    throttle = throttle_on(ephemeral_store, lock_after=10, free_attempts=50)
    attempt = (getattr(throttle, gate_name), "subject")
    for _ in range(10):
        fail(throttle, attempt)  # nine failures do not lock
    assert refusal_of(throttle, attempt) == (LOCK if locks else None)
    assert LOCK.message == LOCKED


def test_a_lock_beats_any_wait_and_unlock_clears_only_the_account(ephemeral_store: EphemeralStore) -> None:
    throttle = throttle_on(ephemeral_store, lock_after=10, free_attempts=9)
    account = (throttle.password_account, account_subject("alice"))
    address = (throttle.password_address, ATTACKER)
    for _ in range(10):
        fail(throttle, account, address)
    assert refusal_of(throttle, address, account) == LOCK
    throttle.unlock(account_subject("alice"))
    assert [refusal_of(throttle, account) for _ in range(9)] == [None] * 9, "the count starts over"
    assert refusal_of(throttle, address) == Blocked(retry_after=10), (
        "unlocking an account forgives no address"
    )


def test_waiting_out_the_back_off_is_enough_but_not_for_a_lock(ephemeral_store: EphemeralStore) -> None:
    throttle = throttle_on(ephemeral_store, lock_after=10, free_attempts=9, base_delay=1, max_delay=1)
    waited = (throttle.password_address, ATTACKER)
    locked = (throttle.password_account, account_subject("bob"))
    for _ in range(10):
        fail(throttle, waited)
        fail(throttle, locked)
    assert refusal_of(throttle, waited) == Blocked(retry_after=1)
    time.sleep(1.05)
    assert refusal_of(throttle, waited) is None
    assert refusal_of(throttle, locked) == LOCK


def test_a_lock_and_the_run_of_failures_outlast_the_window(ephemeral_store: EphemeralStore) -> None:
    throttle = throttle_on(ephemeral_store, lock_after=10, free_attempts=50, window=1)
    alice = (throttle.password_account, account_subject("alice"))
    bob = (throttle.password_account, account_subject("bob"))
    for _ in range(10):
        fail(throttle, alice)
    for _ in range(9):
        fail(throttle, bob)
    time.sleep(1.1)
    fail(throttle, bob)
    assert refusal_of(throttle, alice) == LOCK, "waiting out the window unlocked alice"
    assert refusal_of(throttle, bob) == LOCK, "bob's tenth consecutive failure came after the window"


# -- an attack on the sign-in pages -----------------------------------------------------------------

ONE_SECOND = {"free_attempts": 3, "base_delay": 1, "max_delay": 1}
RELAXED = {"free_attempts": 50}


def attacked_app(tmp_path: Path, **throttle: Any) -> Flask:
    """Every gate relaxed (50 free failures) unless given; ten consecutive password failures lock."""
    return make_app(
        tmp_path,
        throttle={"lock_after": 10, **dict.fromkeys(GATES, RELAXED), **throttle},
        factors={"email": {"sign_in": True}},
    )


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return attacked_app(tmp_path, password_account=ONE_SECOND, second_factor=ONE_SECOND)


@pytest.fixture
def client_id(app: Flask) -> str:
    return add_client(app)[0]


@pytest.fixture
def victim(app: Flask, client_id: str) -> Victim:
    add_user(app, "alice", PASSWORD)
    return Victim.enrolled(app, client_id, "alice", PASSWORD)


def from_one_address(_guess: int) -> str:
    return ATTACKER


def from_a_botnet(guess: int) -> str:
    return botnet(30)[guess]


SOURCES = [
    pytest.param(from_one_address, id="from one address"),
    pytest.param(from_a_botnet, id="from a new address each guess"),
]


def statuses(responses: list[TestResponse]) -> list[int]:
    return [response.status_code for response in responses]


def assert_told_to_wait(response: TestResponse) -> None:
    assert refusal(response) == (429, "1", WAIT)


@pytest.mark.parametrize("source", SOURCES)
def test_wrong_passwords_for_an_account_back_off_and_the_victim_gets_in_after_the_wait(
    app: Flask, client_id: str, victim: Victim, source: Callable[[int], str]
) -> None:
    guesser = Guesser.at_password_page(app, client_id)
    own_browser = victim.new_browser()
    own_page = own_browser.authorize()
    guesses = [guesser.password("alice", WRONG, address=source(n)) for n in range(5)]
    assert statuses(guesses) == [401, 401, 401, 401, 429], "three free failures, then a wait of 1 s"
    assert_told_to_wait(guesses[-1])
    more = [guesser.password("alice", f"{WRONG} {n}", address=source(n + 5)) for n in range(6)]
    assert set(statuses(more)) == {429}, "refused unseen, so uncounted (4 + 6 would lock)"
    right = guesser.password("alice", PASSWORD, address=source(20))
    assert_told_to_wait(right)  # the password is not even checked while the account waits
    blocked = own_browser.submit(own_page, username="alice", password=PASSWORD)
    assert_told_to_wait(blocked)  # the victim waits too: the account, not the address, is throttled
    time.sleep(1.05)
    done = victim.sign_in()
    assert done.status_code == 302 and done.location.startswith(REDIRECT_URI)
    throttled = audit_events(app, "sign_in", "throttled")
    assert len(throttled) == 9 and {event.detail["step"] for event in throttled} == {"password"}
    assert {event.ip for event in throttled} == {source(n) for n in (4, *range(5, 11), 20)} | {VICTIM}


def test_spraying_many_names_from_one_address_hits_the_address_gate(tmp_path: Path) -> None:
    app = attacked_app(tmp_path, password_address={"free_attempts": 6, "base_delay": 60, "max_delay": 60})
    client_id = add_client(app)[0]
    add_user(app, "alice", PASSWORD)
    victim = Victim.enrolled(app, client_id, "alice", PASSWORD)
    guesser = Guesser.at_password_page(app, client_id)
    names = ["alice", *(f"user{n}" for n in range(7))]
    guesses = [guesser.password(name, "Summer2024!") for name in names]
    assert statuses(guesses) == [401] * 7 + [429], "each name failed once: only the address gate counts"
    assert refusal(guesses[-1]) == (429, "60", WAIT)
    assert guesser.password("alice", PASSWORD).status_code == 429, "not even the right password gets in"
    done = victim.sign_in()
    assert done.status_code == 302 and done.location.startswith(REDIRECT_URI), "from the victim's address"
    assert guesser.password("alice", PASSWORD).status_code == 429, "a success elsewhere forgives no address"


def test_spraying_from_one_ipv6_network_hits_the_address_gate(tmp_path: Path) -> None:
    app = attacked_app(tmp_path, password_address={"free_attempts": 6, "base_delay": 60, "max_delay": 60})
    guesser = Guesser.at_password_page(app, add_client(app)[0])
    guesses = [
        guesser.password(f"user{n}", "Summer2024!", address=f"2001:db8:1:2::{n + 1:x}") for n in range(8)
    ]
    assert statuses(guesses) == [401] * 7 + [429]


def test_unknown_names_and_disabled_accounts_are_throttled_exactly_like_a_real_one(tmp_path: Path) -> None:
    app = attacked_app(tmp_path, password_account={"free_attempts": 8, "base_delay": 1, "max_delay": 1})
    client_id = add_client(app)[0]
    add_user(app, "alice", PASSWORD)
    add_user(app, "bob", PASSWORD, disabled=True)
    names = {"alice": "a real account", "nobody": "an unknown name", "bob": "a disabled account"}
    guessers = {name: Guesser.at_password_page(app, client_id) for name in names}
    transcripts: dict[str, list[tuple[int, str | None, str]]] = {name: [] for name in names}

    def round_of_guesses() -> None:
        for name, guesser in guessers.items():
            transcripts[name].append(refusal(guesser.password(name, WRONG)))

    for _ in range(10):
        round_of_guesses()
    time.sleep(1.05)
    round_of_guesses()
    round_of_guesses()
    wrong, locked = (401, None, WRONG_CREDENTIALS), (429, None, LOCKED)
    expected = [wrong] * 9 + [(429, "1", WAIT), wrong, locked]
    assert transcripts["alice"] == expected, "8 free, the 9th waits, the 10th locks"
    assert {names[name]: transcript for name, transcript in transcripts.items()} == dict.fromkeys(
        names.values(), expected
    )


def locked_out(app: Flask, client_id: str) -> None:
    """Ten wrong passwords for alice (nine free, and the tenth waits a second): the account locks."""
    guesser = Guesser.at_password_page(app, client_id)
    assert statuses([guesser.password("alice", WRONG) for _ in range(10)]) == [401] * 10
    assert refusal(guesser.password("alice", PASSWORD)) == (429, None, LOCKED)


def unlock_with_the_command(app: Flask, victim: Victim, _key: SoftAuthenticator, tmp_path: Path) -> None:
    assert idp_command(tmp_path, "users", "unlock", "alice") == 0
    assert len(audit_events(app, "account_unlocked", "success")) == 1


def unlock_with_a_passkey(_app: Flask, victim: Victim, key: SoftAuthenticator, _tmp_path: Path) -> None:
    done = victim.sign_in_with_passkey(key)
    assert done.status_code == 302 and done.location.startswith(REDIRECT_URI), done.get_data(as_text=True)


@pytest.mark.parametrize(
    "reopen",
    [
        pytest.param(unlock_with_the_command, id="idp users unlock"),
        pytest.param(unlock_with_a_passkey, id="a passkey"),
    ],
)
def test_ten_consecutive_wrong_passwords_lock_until_an_unlock_or_a_passkey(
    tmp_path: Path, reopen: Callable[[Flask, Victim, SoftAuthenticator, Path], None]
) -> None:
    app = attacked_app(tmp_path, password_account={"free_attempts": 9, "base_delay": 1, "max_delay": 1})
    client_id = add_client(app)[0]
    add_user(app, "alice", PASSWORD)
    victim = Victim.enrolled(app, client_id, "alice", PASSWORD)
    key = SoftAuthenticator()
    victim.add_passkey(key)
    locked_out(app, client_id)
    time.sleep(1.05)
    assert refusal(victim.sign_in()) == (429, None, LOCKED), "waiting out the last back-off is not enough"
    reopen(app, victim, key, tmp_path)
    done = victim.sign_in()
    assert done.status_code == 302 and done.location.startswith(REDIRECT_URI)
    locks = [event for event in audit_events(app, "sign_in", "throttled") if event.detail["locked"]]
    assert len(locks) == 2


def test_unlocking_a_name_nobody_has_is_an_error(tmp_path: Path) -> None:
    attacked_app(tmp_path)
    assert idp_command(tmp_path, "users", "unlock", "nobody") == 2


# -- second factors -------------------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCES)
def test_wrong_totp_codes_back_off_and_the_victim_gets_in_after_the_wait(
    app: Flask, client_id: str, victim: Victim, source: Callable[[int], str]
) -> None:
    guesser = Guesser.at_factor_page(app, client_id, "alice", PASSWORD)
    wrong = wrong_totp_code(victim.authenticator.secret)
    guesses = [guesser.totp(wrong, address=source(n)) for n in range(5)]
    assert statuses(guesses) == [401, 401, 401, 401, 429]
    assert_told_to_wait(guesses[-1])
    unused = victim.authenticator.totp.generate_otp(int(time.time()) // 30 + 1)
    assert_told_to_wait(guesser.totp(unused, address=source(5)))  # a right code is not even checked
    time.sleep(1.05)
    done = victim.sign_in()
    assert done.status_code == 302 and done.location.startswith(REDIRECT_URI)
    throttled = audit_events(app, "sign_in", "throttled")
    assert [event.detail["step"] for event in throttled] == ["totp", "totp"]
    assert {event.user_id for event in throttled} == {audit_events(app, "sign_in", "success")[0].user_id}


def guess_totp(guesser: Guesser, victim: Victim) -> TestResponse:
    return guesser.totp(wrong_totp_code(victim.authenticator.secret))


def guess_recovery_code(guesser: Guesser, _victim: Victim) -> TestResponse:
    return guesser.recovery_code("aaaa-bbbb-cccc-dddd")


def guess_email_code(guesser: Guesser, _victim: Victim) -> TestResponse:
    return guesser.email_code("123456")


GUESSES = [
    pytest.param(guess_totp, id="TOTP codes"),
    pytest.param(guess_recovery_code, id="recovery codes"),
    pytest.param(guess_email_code, id="email codes"),
]


@pytest.mark.parametrize("guess", GUESSES)
def test_every_second_factor_shares_one_back_off_per_user(
    tmp_path: Path, guess: Callable[[Guesser, Victim], TestResponse]
) -> None:
    app = attacked_app(tmp_path, second_factor={"free_attempts": 3, "base_delay": 60, "max_delay": 60})
    client_id = add_client(app)[0]
    add_user(app, "alice", PASSWORD)
    victim = Victim.enrolled(app, client_id, "alice", PASSWORD)
    codes = victim.generate_recovery_codes()
    victim.bind_email("alice@example.net", tmp_path / "instance" / "outbox")
    guesser = Guesser.at_factor_page(app, client_id, "alice", PASSWORD)
    assert statuses([guess(guesser, victim) for _ in range(5)]) == [401, 401, 401, 401, 429]
    assert guesser.send_email_code().status_code == 200, "sending is not guessing"
    right_ones = [
        guesser.totp(victim.authenticator.totp.generate_otp(int(time.time()) // 30 + 1)),
        guesser.recovery_code(codes[0]),
        guesser.email_code(newest_code(tmp_path / "instance" / "outbox")),
    ]
    assert [refusal(answer) for answer in right_ones] == [(429, "60", WAIT)] * 3, "not even looked at"
    assert guesser.browser.client.get(guesser.page.request.path).status_code == 200, "the page still shows"


# -- passkeys --------------------------------------------------------------------------------------


def test_failed_passkey_assertions_back_off_per_address(tmp_path: Path) -> None:
    app = attacked_app(tmp_path, webauthn_address={"free_attempts": 2, "base_delay": 60, "max_delay": 60})
    client_id = add_client(app)[0]
    add_user(app, "alice", PASSWORD)
    victim = Victim.enrolled(app, client_id, "alice", PASSWORD)
    key = SoftAuthenticator()
    victim.add_passkey(key)
    attacker = Browser(client_at(app, ATTACKER), client_id)
    forged = [
        passkey_assertion(attacker, attacker.authorize(), key, origin="https://login.example.net")
        for _ in range(4)
    ]
    assert statuses(forged) == [400, 400, 400, 429]
    assert forged[-1].headers.get("Retry-After") == "60"
    genuine = passkey_assertion(attacker, attacker.authorize(), key)
    assert genuine.status_code == 429, "from this address even a genuine assertion is not looked at"
    done = victim.sign_in_with_passkey(key)
    assert done.status_code == 302 and done.location.startswith(REDIRECT_URI), (
        "other addresses are not slowed"
    )


# -- client authentication ----------------------------------------------------------------------------

CLIENT_AUTH = {"client_auth": {"free_attempts": 2, "base_delay": 60, "max_delay": 60}}
BOGUS_CODE = {
    "grant_type": "authorization_code",
    "code": "no-such-code",
    "redirect_uri": REDIRECT_URI,
    "code_verifier": "v" * 43,
}


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


@pytest.fixture(scope="module")
def token_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """One provider for every client-authentication test: each registers its own clients."""
    return make_app(tmp_path_factory.mktemp("token"), throttle=CLIENT_AUTH)


Present = Callable[[FlaskClient, str, str, str], TestResponse]


def token_with_basic(client: FlaskClient, client_id: str, secret: str, _n: str) -> TestResponse:
    return client.post("/token", data=BOGUS_CODE, headers=basic(client_id, secret))


def token_with_post(client: FlaskClient, client_id: str, secret: str, _n: str) -> TestResponse:
    return client.post("/token", data={**BOGUS_CODE, "client_id": client_id, "client_secret": secret})


def revoke_with_basic(client: FlaskClient, client_id: str, secret: str, _n: str) -> TestResponse:
    return client.post("/revoke", data={"token": "anything"}, headers=basic(client_id, secret))


def introspect_with_post(client: FlaskClient, client_id: str, secret: str, _n: str) -> TestResponse:
    return client.post(
        "/introspect", data={"token": "anything", "client_id": client_id, "client_secret": secret}
    )


PRESENTATIONS = [
    pytest.param(token_with_basic, id="token endpoint, HTTP Basic"),
    pytest.param(token_with_post, id="token endpoint, client_secret_post"),
    pytest.param(revoke_with_basic, id="revocation endpoint, HTTP Basic"),
    pytest.param(introspect_with_post, id="introspection endpoint, client_secret_post"),
]


@pytest.mark.parametrize("present", PRESENTATIONS)
def test_wrong_client_secrets_back_off_per_client_and_address(token_app: Flask, present: Present) -> None:
    client_id, secret = add_client(token_app)
    other_id, other_secret = add_client(token_app)
    attacker = client_at(token_app, ATTACKER)
    guesses = [present(attacker, client_id, f"guess-{n}", str(n)) for n in range(4)]
    assert statuses(guesses) == [401, 401, 401, 429]
    assert guesses[-1].get_json()["error"] == "invalid_client"
    assert guesses[-1].headers["Retry-After"] == "60"
    assert present(attacker, client_id, secret, "right").status_code == 429, "the secret is not even checked"
    assert present(attacker, other_id, other_secret, "other").status_code != 429, "another client"
    elsewhere = client_at(token_app, VICTIM)
    assert present(elsewhere, client_id, secret, "elsewhere").status_code != 429, "the client's own server"
    failures = audit_events(token_app, "client_authentication", "failure")
    assert [event.client_id for event in failures].count(client_id) == 3


def percent_encoded(client_id: str, secret: str, n: str) -> dict[str, str]:
    """RFC 6749 2.3.1 form-encodes the id inside HTTP Basic: `%41` and `A` name the same client."""
    position = int(n)
    disguised = client_id[:position] + f"%{ord(client_id[position]):02X}" + client_id[position + 1 :]
    return {"headers": basic(disguised, secret)}  # type: ignore[dict-item]


def beside_an_unknown_client(client_id: str, secret: str, n: str) -> dict[str, Any]:
    """HTTP Basic for the target, and a client id in the form that names no client."""
    return {"headers": basic(client_id, secret), "data": {**BOGUS_CODE, "client_id": f"nobody-{n}"}}


def loosely_encoded(client_id: str, secret: str, n: str) -> dict[str, Any]:
    """Base64 with a stray character authlib skips, plus a changing id in the form."""
    encoded = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {
        "headers": {"Authorization": f"Basic {encoded[:4]}*{encoded[4:]}"},
        "data": {**BOGUS_CODE, "client_id": f"nobody-{n}"},
    }


@pytest.mark.parametrize(
    "disguise",
    [
        pytest.param(percent_encoded, id="fails to evade because the id is percent-encoded differently"),
        pytest.param(beside_an_unknown_client, id="fails to evade because an unknown client is named too"),
        pytest.param(loosely_encoded, id="fails to evade because the Basic header is loosely encoded"),
    ],
)
def test_disguised_guesses_count_against_the_client_they_authenticate_as(
    token_app: Flask, disguise: Callable[[str, str, str], dict[str, Any]]
) -> None:
    client_id, secret = add_client(token_app)
    attacker = client_at(token_app, ATTACKER)
    answers = [
        attacker.post("/token", **{"data": BOGUS_CODE, **disguise(client_id, f"g{n}", str(n))})
        for n in range(4)
    ]
    assert [answer.get_json()["error"] for answer in answers[:3]] == ["invalid_client"] * 3
    assert answers[-1].status_code == 429
    right = attacker.post("/token", **{"data": BOGUS_CODE, **disguise(client_id, secret, "9")})
    assert right.status_code == 429


def test_basic_guesses_cannot_fall_back_to_a_public_client(token_app: Flask) -> None:
    client_id, _secret = add_client(token_app)
    public = register(token_app, public=True).client.client_id
    attacker = client_at(token_app, ATTACKER)
    answers = [
        attacker.post("/token", data={**BOGUS_CODE, "client_id": public}, headers=basic(client_id, f"g{n}"))
        for n in range(4)
    ]
    assert statuses(answers) == [401, 401, 401, 429]
