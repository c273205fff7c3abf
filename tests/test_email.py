"""Verified email addresses and email codes: binding an address, step-up, limits, failures, the outbox.

The provider sends through a real SMTP server on localhost (aiosmtpd in this process) or, without
one, writes to its outbox folder; codes are read from the messages as a person would read them.
The code service itself is checked against both ephemeral stores (Redis and embedded).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import select
from support.app import Browser, add_client, add_user, code_from, csrf_token, make_app
from support.mailbox import (
    Inbox,
    Outbox,
    SmtpServer,
    bind_address,
    code_messages,
    free_port,
    latest_code,
    no_network,
    sign_in_and_bind,
    smtp_server,
    submit_form,
)
from werkzeug.test import TestResponse

from idp.auth.email_codes import CodeRefused, EmailCodes
from idp.store.ephemeral import EphemeralStore, RedisStore
from idp.store.tables import AuditEvent
from idp.web import services

PASSWORD = "a long enough password"
ADDRESS = "alice@mail.example"
NOT_RIGHT = "That code is not right."
DEAD = "Too many wrong codes: this one no longer works. Ask for a new one."
TOO_SOON = "A code was sent less than a minute ago."
NOT_SENT = "could not be sent"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def app(tmp_path: Path, smtp: SmtpServer) -> Flask:
    return make_app(tmp_path, smtp=smtp.settings)


@pytest.fixture
def client(app: Flask) -> tuple[str, str]:
    return add_client(app)


@pytest.fixture
def browser(app: Flask, client: tuple[str, str]) -> Browser:
    """A browser for the user alice (registered, no second factor yet)."""
    add_user(app, "alice", PASSWORD)
    return Browser(app.test_client(), client[0])


def text(page: TestResponse) -> str:
    return page.get_data(as_text=True)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


def audit_events(app: Flask) -> list[tuple[str, str, dict[str, Any]]]:
    with app.app_context(), services().database.unit_of_work() as session:
        return [(e.event, e.outcome, e.detail) for e in session.scalars(select(AuditEvent))]


def token_claims(browser: Browser, done: TestResponse, secret: str) -> dict[str, Any]:
    """The client's side: the code redeemed at /token (client_secret_basic, PKCE), the ID token read."""
    return browser.id_token_claims(browser.redeem(code_from(done), secret)["id_token"])


# -- two places a code is mailed: binding an address, and step-up at sign-in ------------------------


class Binding:
    """/account/email/new sends a code to the new address; /account/email/verify takes it back."""

    purpose = "bind"

    def __init__(self, browser: Browser, inbox: Inbox) -> None:
        self.browser, self.inbox = browser, inbox

    def start(self) -> None:
        code_from(self.browser.sign_in_with_enrolment("alice", PASSWORD)[0])
        self.form = self.browser.follow(self.browser.client.get("/account/email/new"))

    def send(self) -> TestResponse:
        sent = self.browser.submit(self.form, address=ADDRESS)
        if "We sent a 6-digit code" in text(sent):
            self.code_form = sent
        return sent

    def enter(self, code: str) -> TestResponse:
        return self.browser.submit(self.code_form, code=code)

    def succeeded(self, page: TestResponse) -> bool:
        return page.request.path == "/account" and ADDRESS in text(self.browser.client.get("/account"))


class StepUp:
    """max_age=0 on a new authorization: the factor page offers "Email me a code" beside TOTP."""

    purpose = "signin"

    def __init__(self, browser: Browser, inbox: Inbox) -> None:
        self.browser, self.inbox = browser, inbox

    def start(self) -> None:
        sign_in_and_bind(self.browser, self.inbox, username="alice", password=PASSWORD, address=ADDRESS)
        self.ask()

    def ask(self) -> None:
        """A new authorization request that wants a sign-in from this very moment."""
        self.factor = self.browser.authorize(max_age="0")

    def send(self) -> TestResponse:
        sent = submit_form(self.browser, self.factor, "/email/send")
        if "We sent a code" in text(sent):
            self.code_form = sent
        return sent

    def enter(self, code: str) -> TestResponse:
        """Into the code field as the page showed it after sending (kept open, as a browser tab is)."""
        return submit_form(self.browser, self.code_form, "/email", email_code=code)

    def succeeded(self, page: TestResponse) -> bool:
        return page.status_code == 302 and "code=" in page.location


Flow = Callable[[Browser, Inbox], Binding | StepUp]
FLOWS = pytest.mark.parametrize("flow", [Binding, StepUp], ids=["binding an address", "step-up at sign-in"])


# -- binding an address ---------------------------------------------------------------------------


def test_a_signed_in_user_binds_an_address_with_the_code_mailed_to_it(
    browser: Browser, smtp: SmtpServer
) -> None:
    code_from(browser.sign_in_with_enrolment("alice", PASSWORD)[0])
    overview = bind_address(browser, smtp, ADDRESS)
    assert overview.request.path == "/account" and f"{ADDRESS} is verified." in text(overview)
    (sent,) = code_messages(smtp)
    assert sent["To"] == ADDRESS and sent["From"] == "idp@localhost"
    listed = text(browser.client.get("/account"))
    assert "Email address" in listed and ADDRESS in listed
    notices = [m for m in smtp.messages if m["Subject"] == "A change to your account"]
    assert [m["To"] for m in notices] == [ADDRESS], "the change is told to the addresses on the account"


def test_an_address_is_not_bound_until_its_code_comes_back(browser: Browser, smtp: SmtpServer) -> None:
    binding = Binding(browser, smtp)
    binding.start()
    assert "We sent a 6-digit code" in text(binding.send())
    assert ADDRESS not in text(browser.client.get("/account"))


# -- step-up --------------------------------------------------------------------------------------


def test_max_age_0_is_met_by_an_emailed_code_with_amr_email_at_acr_mfa(
    browser: Browser, client: tuple[str, str], smtp: SmtpServer
) -> None:
    step_up = StepUp(browser, smtp)
    step_up.start()
    offered = text(step_up.factor)
    assert "Code from your authenticator app" in offered and "Email me a code" in offered
    requested_at = int(time.time())
    assert "We sent a code to a***@mail.example." in text(step_up.send())
    done = step_up.enter(latest_code(smtp, to=ADDRESS))
    claims = token_claims(browser, done, client[1])
    assert claims["acr"] == "mfa"
    assert set(claims["amr"]) == {"pwd", "otp", "email", "mfa"}, "the code refreshed password + TOTP"
    assert claims["auth_time"] >= requested_at


def test_a_code_counts_only_for_the_sign_in_it_was_sent_for(browser: Browser, smtp: SmtpServer) -> None:
    step_up = StepUp(browser, smtp)
    step_up.start()
    step_up.send()
    used = latest_code(smtp, to=ADDRESS)
    code_from(step_up.enter(used))
    step_up.ask()
    step_up.send()
    refused = step_up.enter(used)
    assert refused.status_code == 401 and NOT_RIGHT in text(refused)
    assert step_up.succeeded(step_up.enter(latest_code(smtp, to=ADDRESS)))


def test_by_default_an_email_code_is_not_the_second_factor_of_a_sign_in(
    app: Flask, browser: Browser, smtp: SmtpServer
) -> None:
    sign_in_and_bind(browser, smtp, username="alice", password=PASSWORD, address=ADDRESS)
    fresh = Browser(app.test_client(), browser.client_id)
    factor = fresh.submit(fresh.authorize(), username="alice", password=PASSWORD)
    assert "Code from your authenticator app" in text(factor) and "Email me a code" not in text(factor)
    pending_id = factor.request.path.split("/")[2]
    fresh.client.post(f"/signin/{pending_id}/email/send", data={"csrf_token": csrf_token(factor)})
    assert len(code_messages(smtp)) == 1, "a send posted without the offer is not acted on"


def test_with_sign_in_enabled_password_and_an_email_code_reach_mfa(tmp_path: Path, smtp: SmtpServer) -> None:
    app = make_app(tmp_path, smtp=smtp.settings, factors={"email": {"sign_in": True}})
    client_id, secret = add_client(app)
    add_user(app, "alice", PASSWORD)
    sign_in_and_bind(
        Browser(app.test_client(), client_id), smtp, username="alice", password=PASSWORD, address=ADDRESS
    )
    fresh = Browser(app.test_client(), client_id)
    factor = fresh.submit(fresh.authorize(), username="alice", password=PASSWORD)
    assert "Email me a code" in text(factor)
    sent = submit_form(fresh, factor, "/email/send")
    done = submit_form(fresh, sent, "/email", email_code=latest_code(smtp, to=ADDRESS))
    claims = token_claims(fresh, done, secret)
    assert claims["acr"] == "mfa" and claims["amr"] == ["pwd", "email", "mfa"]


# -- wrong codes, single use, resending ---------------------------------------------------------


@FLOWS
def test_five_wrong_codes_kill_the_code(flow: Flow, tmp_path: Path, smtp: SmtpServer) -> None:
    """The code's own rule, seen with the second-factor back-off at sign-in moved out of the way."""
    app = make_app(tmp_path, smtp=smtp.settings, throttle={"second_factor": {"free_attempts": 10}})
    browser = Browser(app.test_client(), add_client(app)[0])
    add_user(app, "alice", PASSWORD)
    where = flow(browser, smtp)
    where.start()
    where.send()
    code = latest_code(smtp, to=ADDRESS)
    for _attempt in range(4):
        assert NOT_RIGHT in text(where.enter(wrong(code)))
    assert DEAD in text(where.enter(wrong(code)))
    too_late = where.enter(code)
    assert not where.succeeded(too_late), "not even the right code revives it"
    assert too_late.status_code in {400, 401} and "Ask for a new one." in text(too_late)


@pytest.mark.parametrize(
    "after", ["mistyped", "resent too soon"], ids=["after a mistyped code", "after a refused resend"]
)
def test_while_a_code_is_pending_the_factor_page_asks_for_it(
    after: str, browser: Browser, smtp: SmtpServer
) -> None:
    step_up = StepUp(browser, smtp)
    step_up.start()
    step_up.send()
    page = step_up.enter(wrong(latest_code(smtp, to=ADDRESS))) if after == "mistyped" else step_up.send()
    assert page.status_code in {401, 429}
    assert 'name="email_code"' in text(page), "the code in the inbox can still be typed in"


@FLOWS
def test_a_code_works_once(flow: Flow, browser: Browser, smtp: SmtpServer) -> None:
    where = flow(browser, smtp)
    where.start()
    where.send()
    code = latest_code(smtp, to=ADDRESS)
    assert where.succeeded(where.enter(code))
    assert not where.succeeded(where.enter(code))


@FLOWS
def test_a_second_code_within_a_minute_is_refused_clearly(
    flow: Flow, browser: Browser, smtp: SmtpServer
) -> None:
    where = flow(browser, smtp)
    where.start()
    before = len(code_messages(smtp))
    where.send()
    again = where.send()
    assert again.status_code == 429 and TOO_SOON in text(again)
    assert len(code_messages(smtp)) == before + 1


# -- how many accounts may share an address -----------------------------------------------------


def _bind_as(app: Flask, client_id: str, smtp: SmtpServer, username: str) -> Browser:
    add_user(app, username, PASSWORD)
    browser = Browser(app.test_client(), client_id)
    sign_in_and_bind(browser, smtp, username=username, password=PASSWORD, address=ADDRESS)
    return browser


def _new_address_form(browser: Browser, username: str) -> TestResponse:
    code_from(browser.sign_in_with_enrolment(username, PASSWORD)[0])
    return browser.follow(browser.client.get("/account/email/new"))


def test_the_sixth_account_cannot_bind_an_address_five_already_use(
    app: Flask, client: tuple[str, str], smtp: SmtpServer
) -> None:
    for number in range(5):
        _bind_as(app, client[0], smtp, f"user{number}")
    add_user(app, "sixth", PASSWORD)
    sixth = Browser(app.test_client(), client[0])
    refused = sixth.submit(_new_address_form(sixth, "sixth"), address=ADDRESS.upper())
    assert refused.status_code == 400
    assert "This address is already used by 5 accounts, the most allowed." in text(refused)
    assert len(code_messages(smtp)) == 5, "no code goes to an address that cannot be bound"


def test_the_limit_holds_for_codes_sent_before_it_was_reached(tmp_path: Path, smtp: SmtpServer) -> None:
    app = make_app(tmp_path, smtp=smtp.settings, factors={"email": {"max_users_per_email": 1}})
    client_id, _secret = add_client(app)
    confirm_pages = []
    for username in ("first", "second"):
        add_user(app, username, PASSWORD)
        browser = Browser(app.test_client(), client_id)
        confirm_pages.append((browser, browser.submit(_new_address_form(browser, username), address=ADDRESS)))
    (first, first_page), (second, second_page) = confirm_pages
    first_code, second_code = (str(m["Subject"])[-6:] for m in code_messages(smtp))
    assert "is verified" in text(first.submit(first_page, code=first_code))
    refused = second.submit(second_page, code=second_code)
    assert refused.status_code == 400 and "already used by 1 accounts" in text(refused)
    assert ADDRESS not in text(second.client.get("/account"))


NOT_ADDRESSES = [
    pytest.param("alice@localhost", id="fails because the domain has no dot"),
    pytest.param("alice@exa_mple.com", id="fails because IDNA forbids an underscore in a domain"),
    pytest.param(f"alice@{'a.' * 160}example", id="fails because it is over 320 characters (not cut to fit)"),
]


@pytest.mark.parametrize("typed", NOT_ADDRESSES)
def test_what_is_not_an_address_is_refused_and_nothing_is_sent(
    browser: Browser, smtp: SmtpServer, typed: str
) -> None:
    refused = browser.submit(_new_address_form(browser, "alice"), address=typed)
    assert refused.status_code == 400
    assert "Enter an email address like name@example.com." in text(refused)
    assert code_messages(smtp) == []


SPELLINGS = [
    pytest.param("alice@mail.example", "ALICE@Mail.EXAMPLE", id="fails because case makes no new address"),
    pytest.param("alice@mail.example", "alice@mail.example.", id="fails because the root's dot makes none"),
    pytest.param("alice@bücher.example", "alice@xn--bcher-kva.example", id="fails because IDNA makes none"),
    pytest.param(
        "alice@XN--BCHER-KVA.example", " Alice@Bücher.Example. ", id="fails because nor do all at once"
    ),
]


@pytest.mark.parametrize(("bound", "typed"), SPELLINGS)
def test_another_spelling_of_an_address_is_the_same_address_for_the_limit(
    tmp_path: Path, smtp: SmtpServer, bound: str, typed: str
) -> None:
    app = make_app(tmp_path, smtp=smtp.settings, factors={"email": {"max_users_per_email": 1}})
    client_id = add_client(app)[0]
    add_user(app, "first", PASSWORD)
    sign_in_and_bind(
        Browser(app.test_client(), client_id), smtp, username="first", password=PASSWORD, address=bound
    )
    add_user(app, "second", PASSWORD)
    second = Browser(app.test_client(), client_id)
    refused = second.submit(_new_address_form(second, "second"), address=typed)
    assert refused.status_code == 400 and "already used by 1 accounts" in text(refused)
    assert len(code_messages(smtp)) == 1, "no code goes to the address in its other spelling"


def test_an_address_the_operator_gave_an_account_counts_toward_the_limit(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    app = make_app(tmp_path, smtp=smtp.settings, factors={"email": {"max_users_per_email": 1}})
    client_id = add_client(app)[0]
    add_user(app, "carol", PASSWORD)  # as `idp users create carol --email carol@example.com` would
    add_user(app, "dave", PASSWORD)
    dave = Browser(app.test_client(), client_id)
    refused = dave.submit(_new_address_form(dave, "dave"), address="Carol@Example.com")
    assert refused.status_code == 400 and "already used by 1 accounts" in text(refused)
    assert code_messages(smtp) == []


def test_the_email_claim_is_verified_once_the_user_proved_the_address(app: Flask, smtp: SmtpServer) -> None:
    client_id, client_secret = add_client(app, scope="openid email")
    add_user(app, "alice", PASSWORD)  # the operator gave alice@example.com, which nobody proved
    browser = Browser(app.test_client(), client_id)
    done, _secret = browser.sign_in_with_enrolment("alice", PASSWORD, scope="openid email")
    claims = token_claims(browser, done, client_secret)
    assert (claims["email"], claims["email_verified"]) == ("alice@example.com", False)

    bind_address(browser, smtp, "Alice@Mail.Example.")

    tokens = browser.redeem(code_from(browser.authorize(scope="openid email")), client_secret)
    claims = browser.id_token_claims(tokens["id_token"])
    assert (claims["email"], claims["email_verified"]) == (ADDRESS, True), "the proven address replaces it"
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    userinfo = browser.client.get("/userinfo", headers=bearer).get_json()
    assert (userinfo["email"], userinfo["email_verified"]) == (ADDRESS, True)


# -- delivery failure -----------------------------------------------------------------------------


@contextmanager
def mail_server_down(flow: Flow, tmp_path: Path) -> Iterator[tuple[Flask, Binding | StepUp, SmtpServer]]:
    """`flow` started while its mail server was up; then the server stops and its port is closed."""
    server = SmtpServer(free_port())
    server.start()
    try:
        app = make_app(tmp_path, smtp=server.settings)
        browser = Browser(app.test_client(), add_client(app)[0])
        add_user(app, "alice", PASSWORD)
        where = flow(browser, server)
        where.start()
        server.stop()
        yield app, where, server
    finally:
        server.stop()


@FLOWS
def test_when_the_mail_server_is_down_the_page_says_so_and_a_retry_may_follow_at_once(
    flow: Flow, tmp_path: Path
) -> None:
    with mail_server_down(flow, tmp_path) as (_app, where, server):
        failed = where.send()
        assert failed.status_code == 502 and NOT_SENT in text(failed)
        assert "We sent" not in text(failed)
        server.start()
        retried = where.send()
        assert retried.status_code == 200 and "We sent" in text(retried), "no minute's wait after a failure"
        assert where.succeeded(where.enter(latest_code(server, to=ADDRESS)))


@FLOWS
def test_a_failed_send_is_audited(flow: Flow, tmp_path: Path) -> None:
    with mail_server_down(flow, tmp_path) as (app, where, _server):
        assert where.send().status_code == 502
    assert ("email_code", "failure", {"purpose": where.purpose}) in audit_events(app)


# -- without an SMTP server -------------------------------------------------------------------------


def test_without_an_smtp_host_mail_goes_to_the_outbox_and_no_network_is_needed(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    client_id, secret = add_client(app)
    add_user(app, "alice", PASSWORD)
    outbox = Outbox(tmp_path / "instance" / "outbox")
    browser = Browser(app.test_client(), client_id)
    with no_network():
        step_up = StepUp(browser, outbox)
        step_up.start()
        step_up.send()
        done = step_up.enter(latest_code(outbox, to=ADDRESS))
    claims = token_claims(browser, done, secret)
    assert claims["acr"] == "mfa" and "email" in claims["amr"]
    assert len(code_messages(outbox)) == 2 and all(path.suffix == ".eml" for path in outbox.files)


# -- logs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mailer", "logged_line"),
    [("smtp", None), ("outbox", "mail to @mail.example written to")],
    ids=["through SMTP", "to the outbox"],
)
def test_no_code_and_no_full_address_reaches_the_logs(
    mailer: str, logged_line: str | None, tmp_path: Path, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(tmp_path, **({"smtp": smtp.settings} if mailer == "smtp" else {}))
    inbox: Inbox = smtp if mailer == "smtp" else Outbox(tmp_path / "instance" / "outbox")
    browser = Browser(app.test_client(), add_client(app)[0])
    add_user(app, "alice", PASSWORD)
    step_up = StepUp(browser, inbox)
    step_up.start()
    step_up.send()
    code = latest_code(inbox, to=ADDRESS)
    step_up.enter(wrong(code))
    code_from(step_up.enter(code))
    codes = [str(m["Subject"])[-6:] for m in code_messages(inbox)]
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]  # not aiosmtpd's own
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in ours)
    assert not [c for c in codes if c in logged]
    assert "alice@" not in logged
    assert logged_line is None or logged_line in logged


# -- the code service against each ephemeral store -----------------------------------------------


def stored_bytes(store: EphemeralStore, request: pytest.FixtureRequest, tmp_path: Path) -> bytes:
    """Everything the store holds, raw."""
    if isinstance(store, RedisStore):
        with redis.Redis.from_url(request.getfixturevalue("redis_url")) as raw:
            return b"".join(key + (raw.get(key) or b"") for key in raw.scan_iter())
    return b"".join(path.read_bytes() for path in tmp_path.glob("ephemeral.sqlite3*"))


def test_codes_are_six_digits_and_kept_only_as_hashes(
    ephemeral_store: EphemeralStore, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    codes = EmailCodes(ephemeral=ephemeral_store, lifetime=600)
    issued = [codes.issue(purpose=f"p{n}", user_id=f"u{n}", address=f"a{n}@x.example") for n in range(5)]
    assert all(len(code) == 6 and code.isdigit() for code in issued)
    held = stored_bytes(ephemeral_store, request, tmp_path)
    assert not [code for code in issued if code.encode() in held]


def test_a_code_works_once_for_its_purpose(ephemeral_store: EphemeralStore) -> None:
    codes = EmailCodes(ephemeral=ephemeral_store, lifetime=600)
    code = codes.issue(purpose="signin:a", user_id="u", address="A@x.example")
    with pytest.raises(CodeRefused, match="expired or was used"):
        codes.verify(purpose="signin:b", code=code)
    assert codes.verify(purpose="signin:a", code=f" {code[:3]} {code[3:]} ") == "A@x.example"
    with pytest.raises(CodeRefused, match="expired or was used"):
        codes.verify(purpose="signin:a", code=code)
    assert codes.pending_address(purpose="signin:a") is None


@pytest.mark.parametrize(
    ("wrong_tries", "then"),
    [(4, "accepted"), (5, "Ask for a new one")],
    ids=["four wrong tries leave the code alive", "the fifth wrong try kills it"],
)
def test_wrong_tries(ephemeral_store: EphemeralStore, wrong_tries: int, then: str) -> None:
    codes = EmailCodes(ephemeral=ephemeral_store, lifetime=600)
    code = codes.issue(purpose="p", user_id="u", address="a@x.example")
    for attempt in range(1, wrong_tries + 1):
        with pytest.raises(CodeRefused) as refused:
            codes.verify(purpose="p", code=wrong(code))
        assert str(refused.value) == (DEAD if attempt == 5 else NOT_RIGHT)
    if then == "accepted":
        assert codes.verify(purpose="p", code=code) == "a@x.example"
    else:
        with pytest.raises(CodeRefused, match=then):
            codes.verify(purpose="p", code=code)


def test_guesses_in_flight_count_before_any_is_weighed(ephemeral_store: EphemeralStore) -> None:
    """Ten wrong guesses arrive together (each one trip into the store); the right one after them
    must not be weighed: a burst of parallel requests gets no more tries than a sequence."""
    store = InFlight(ephemeral_store)
    codes = EmailCodes(ephemeral=store, lifetime=600)
    code = codes.issue(purpose="p", user_id="u", address="a@x.example")

    def guess(candidate: str) -> str:
        try:
            return codes.verify(purpose="p", code=candidate)
        except CodeRefused as refused:
            return str(refused)

    with ThreadPoolExecutor(max_workers=10) as pool:
        guesses = [pool.submit(guess, f"{(int(code) + n) % 1_000_000:06d}") for n in range(1, 11)]
        store.wait_until_held(10)
        try:
            with pytest.raises(CodeRefused, match="Ask for a new one"):
                codes.verify(purpose="p", code=code)
        finally:
            store.release()
        assert all(g.result() != "a@x.example" for g in guesses)


class InFlight:
    """A real store, except that calls from worker threads make one trip and then wait for release():
    requests that have arrived and not yet finished, as under a burst at several workers."""

    def __init__(self, store: EphemeralStore) -> None:
        self._store = store
        self._trips: dict[int, int] = {}
        self._lock = threading.Lock()
        self._held = threading.Semaphore(0)
        self._released = threading.Event()
        self._main = threading.get_ident()

    def wait_until_held(self, count: int) -> None:
        for _ in range(count):
            assert self._held.acquire(timeout=10), "a guess never reached the store"

    def release(self) -> None:
        self._released.set()

    def _trip(self) -> None:
        me = threading.get_ident()
        if me == self._main:
            return
        with self._lock:
            self._trips[me] = self._trips.get(me, 0) + 1
            second = self._trips[me] == 2
        if second:
            self._held.release()
            self._released.wait(timeout=10)

    def put(self, key: str, value: bytes, *, ttl: int) -> None:
        self._trip()
        self._store.put(key, value, ttl=ttl)

    def get(self, key: str) -> bytes | None:
        self._trip()
        return self._store.get(key)

    def take(self, key: str) -> bytes | None:
        self._trip()
        return self._store.take(key)

    def incr(self, key: str, *, ttl: int) -> int:
        self._trip()
        return self._store.incr(key, ttl=ttl)

    def get_many(self, keys: list[str]) -> list[bytes | None]:
        self._trip()
        return self._store.get_many(keys)

    def delete(self, *keys: str) -> None:
        self._trip()
        self._store.delete(*keys)

    def ping(self) -> None:
        self._store.ping()


Send = tuple[str, str, str]  # purpose, user, address


@pytest.mark.parametrize(
    ("sends", "refused"),
    [
        ([("p", "u", "a@x")] * 2, TOO_SOON),
        ([("p", "u", "a@x"), ("q", "u", "a@x")], None),
        ([(f"p{n}", "u", f"a{n}@x") for n in range(10)], None),
        ([(f"p{n}", "u", f"a{n}@x") for n in range(11)], "Too many codes were sent in the last hour."),
        ([(f"p{n}", f"u{n}", "a@x" if n % 2 else "A@X") for n in range(11)], "Too many codes were sent"),
    ],
    ids=[
        "fails because the same purpose had a code less than a minute ago",
        "another purpose is not held up by the first",
        "ten codes an hour for one user are allowed",
        "fails because an eleventh code within the hour for one user",
        "fails because an eleventh code within the hour to one address (in any case)",
    ],
)
def test_throttles(ephemeral_store: EphemeralStore, sends: list[Send], refused: str | None) -> None:
    codes = EmailCodes(ephemeral=ephemeral_store, lifetime=600)
    *allowed, last = sends
    for purpose, user, address in allowed:
        codes.issue(purpose=purpose, user_id=user, address=address)
    purpose, user, address = last
    if refused is None:
        codes.issue(purpose=purpose, user_id=user, address=address)
    else:
        with pytest.raises(CodeRefused, match=refused):
            codes.issue(purpose=purpose, user_id=user, address=address)


def test_a_withdrawn_code_is_dead_and_a_new_one_may_be_sent_at_once(ephemeral_store: EphemeralStore) -> None:
    codes = EmailCodes(ephemeral=ephemeral_store, lifetime=600)
    undelivered = codes.issue(purpose="p", user_id="u", address="a@x")
    codes.withdraw(purpose="p")
    fresh = codes.issue(purpose="p", user_id="u", address="a@x")
    if fresh != undelivered:
        with pytest.raises(CodeRefused):
            codes.verify(purpose="p", code=undelivered)
    assert codes.verify(purpose="p", code=fresh) == "a@x"


def test_a_code_expires_after_its_lifetime(ephemeral_store: EphemeralStore) -> None:
    codes = EmailCodes(ephemeral=ephemeral_store, lifetime=1)
    code = codes.issue(purpose="p", user_id="u", address="a@x")
    time.sleep(1.5)
    assert codes.pending_address(purpose="p") is None
    with pytest.raises(CodeRefused, match="expired"):
        codes.verify(purpose="p", code=code)
