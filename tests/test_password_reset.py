"""Forgot password: a single-use link to a verified address, a second factor, then a new password; the
reset ends the other sessions and grants, is mailed and audited, and never stands for a password in a
token (the new password is typed before one is issued).

Against a live provider (PostgreSQL, Redis), each browser with its own cookie jar. The attacker's
moves: a link used twice, used by two browsers at once, taken to another browser, a new password
posted without the second factor, a reset asked for an account to learn whether it exists.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import requests
from flask import Flask
from support.app import add_client, make_app
from support.attack import client_at
from support.live import LiveProvider, provider_on_real_stores
from support.mailbox import Outbox, bodies
from support.oidc_client import (
    TIMEOUT,
    Account,
    Attempt,
    Browser,
    Client,
    OpenIdProvider,
    forms_of,
    is_factor_page,
    is_password_page,
    path_of,
)
from support.step_up import cli_client

from idp.auth.reset_links import ResetLinks
from idp.store.ephemeral import EphemeralStore
from idp.web import services

NEW_PASSWORD = "seven quiet harbours at dusk"
SENT = "If an account matches, we sent a link to its verified email address."
EXPIRED = "This password reset link has expired or was used already."
CHANGED = "Your password was changed."
LINK = re.compile(r"(http://\S+/password/reset/[A-Za-z0-9_-]+)")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    with provider_on_real_stores(tmp_path_factory.mktemp("reset"), database_prefix="idp_reset_") as provider:
        yield provider


@pytest.fixture(scope="module")
def client(live: LiveProvider) -> Client:
    return cli_client(live, "reset-app")


@pytest.fixture(scope="module")
def outbox(live: LiveProvider) -> Outbox:
    return Outbox(live.config.parent / "instance" / "outbox")


def create_user(live: LiveProvider, username: str, *, verified: bool = True) -> Account:
    account = Account(f"{username}-{time.time_ns() % 10**9}", "the first password of them all")
    options = ("--email-verified",) if verified else ()
    done = live.idp(
        "users",
        "create",
        account.username,
        "--email",
        address_of(account),
        *options,
        "--password-stdin",
        stdin=account.password + "\n",
    )
    assert done.returncode == 0, done.stderr
    return account


def address_of(account: Account) -> str:
    return f"{account.username}@example.test"


@pytest.fixture
def user(live: LiveProvider, op: OpenIdProvider, client: Client) -> Account:
    """A user who signed in once (enrolling an authenticator app): they have a second factor."""
    account = create_user(live, "forgetful")
    Browser(op).sign_in(client, account)
    return account


def ask_for_link(browser: Browser, client: Client, who: str) -> requests.Response:
    """From a new sign-in at the client: "Forgot password?", then the form."""
    return ask_during(browser, browser.authorize(client), who)


def ask_during(browser: Browser, attempt: Attempt, who: str) -> requests.Response:
    password_page = attempt.page
    (forgot,) = re.findall(r'href="([^"]+/forgot)"', password_page.text)
    form = browser.visit(browser.provider.issuer + forgot)
    return browser.submit(form, who=who)


def reset_messages(outbox: Outbox, to: str) -> list[EmailMessage]:
    return [m for m in outbox.messages if m["To"] == to and m["Subject"] == "Reset your password"]


def link_in(message: EmailMessage) -> str:
    """The link, in both the plain-text and the HTML part."""
    parts = bodies(message)
    assert set(parts) == {"text/plain", "text/html"}
    found = LINK.search(parts["text/plain"])
    assert found is not None, parts["text/plain"]
    assert found.group(1) in parts["text/html"]
    return found.group(1)


def mailed_link(
    browser: Browser, client: Client, outbox: Outbox, account: Account, attempt: Attempt | None = None
) -> str:
    """The link mailed after asking during `attempt` (by default a new sign-in at `client`)."""
    before = len(reset_messages(outbox, address_of(account)))
    answer = ask_during(browser, attempt or browser.authorize(client), account.username)
    assert SENT in answer.text
    messages = reset_messages(outbox, address_of(account))
    assert len(messages) == before + 1, "one link was mailed to the verified address"
    return link_in(messages[-1])


def open_link(browser: Browser, link: str) -> requests.Response:
    """The link's page (a GET spends nothing), then its one button."""
    page = browser.visit(link)
    assert page.status_code == 200, page.text
    return browser.submit(page)


def prove_code(browser: Browser, page: requests.Response, account: Account) -> requests.Response:
    assert is_factor_page(page), (path_of(page), page.text)
    assert account.authenticator is not None
    return browser.submit_to(page, "/factor", code=account.authenticator.next_code())


def signs_in_with(op: OpenIdProvider, client: Client, username: str, password: str) -> bool:
    browser = Browser(op)
    return is_factor_page(
        browser.submit(browser.authorize(client).page, username=username, password=password)
    )


def test_a_link_and_a_code_set_a_new_password_then_the_sign_in_goes_on_with_it(
    live: LiveProvider, op: OpenIdProvider, client: Client, outbox: Outbox, user: Account
) -> None:
    elsewhere = Browser(op)
    attempt, callback = elsewhere.sign_in(client, user)
    kept = op.exchange(attempt, callback["code"]).json()
    browser = Browser(op)
    attempt = browser.authorize(client)
    link = mailed_link(browser, client, outbox, user, attempt)

    factor_page = open_link(browser, link)
    form = prove_code(browser, factor_page, user)
    assert path_of(form).endswith("/new-password"), path_of(form)
    password_page = browser.submit(form, password=NEW_PASSWORD, repeat=NEW_PASSWORD)

    assert is_password_page(password_page) and CHANGED in password_page.text
    assert f'value="{user.username}"' in password_page.text
    done = browser.submit(password_page, username=user.username, password=NEW_PASSWORD)
    tokens = op.exchange(attempt, attempt.callback(done)["code"]).json()
    claims = op.verify_id_token(
        tokens["id_token"], expected_audience=client.client_id, expected_nonce=attempt.nonce
    )
    assert set(claims["amr"]) == {"pwd", "otp", "mfa"}, "the new password was typed: a real pwd"
    assert op.refresh(client, kept["refresh_token"]).json()["error"] == "invalid_grant"
    assert is_password_page(elsewhere.visit(op.issuer + "/account")), "the other session ended"
    assert not signs_in_with(op, client, user.username, user.password)
    (notice,) = [m for m in outbox.messages if m["To"] == address_of(user) and "change" in m["Subject"]]
    assert "password reset" in bodies(notice)["text/plain"]
    steps = [event.detail["step"] for event in live.audit_events("password_reset") if event.detail]
    assert {"link sent", "link opened"} <= set(steps)


def test_the_same_answer_whether_or_not_an_account_matches(
    live: LiveProvider, op: OpenIdProvider, client: Client, outbox: Outbox, user: Account
) -> None:
    unverified = create_user(live, "unverified", verified=False)
    answers = {
        who: ask_for_link(Browser(op), client, who)
        for who in ("nobody-by-that-name", "nobody@example.test", unverified.username, address_of(user))
    }

    pages = {
        (
            answer.status_code,
            re.sub(r"(/|%2F)signin\1[\w-]+", "/signin/ID", answer.text),
        )  # in the switcher too
        for answer in answers.values()
    }
    assert len(pages) == 1, "every answer is the same page"
    assert reset_messages(outbox, address_of(unverified)) == [], "never to an address nobody verified"
    assert len(reset_messages(outbox, address_of(user))) == 1, "by address as well as by username"


def test_a_link_works_once(op: OpenIdProvider, client: Client, outbox: Outbox, user: Account) -> None:
    browser = Browser(op)
    link = mailed_link(browser, client, outbox, user)
    factor_page = open_link(browser, link)
    (csrf,) = {fields["csrf_token"] for _action, fields in forms_of(factor_page)}

    again = browser.visit(link)
    replayed = browser.http.post(link, data={"csrf_token": csrf}, timeout=TIMEOUT, allow_redirects=False)

    assert again.status_code == 400 and EXPIRED in again.text
    assert replayed.status_code == 400 and EXPIRED in replayed.text


def test_of_many_browsers_using_one_link_at_once_one_gets_it(
    op: OpenIdProvider, client: Client, outbox: Outbox, user: Account
) -> None:
    link = mailed_link(Browser(op), client, outbox, user)
    browsers = [Browser(op) for _ in range(6)]
    pages = [browser.visit(link) for browser in browsers]
    answers: list[requests.Response] = []
    start = threading.Barrier(len(browsers))

    def use(browser: Browser, page: requests.Response) -> None:
        start.wait()
        answers.append(browser.submit(page))

    threads = [threading.Thread(target=use, args=pair) for pair in zip(browsers, pages, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(is_factor_page(answer) for answer in answers) == [False] * 5 + [True]
    assert all(EXPIRED in answer.text for answer in answers if not is_factor_page(answer))


def test_an_opened_link_is_no_use_in_another_browser(
    op: OpenIdProvider, client: Client, outbox: Outbox, user: Account
) -> None:
    mine = Browser(op)
    link = mailed_link(mine, client, outbox, user)
    factor_page = open_link(mine, link)
    other = Browser(op)

    assert EXPIRED in other.visit(link).text
    taken = other.visit(factor_page.url)
    assert taken.status_code == 400 and "Sign-in expired" in taken.text
    new_password_url = factor_page.url.removesuffix("/factor") + "/new-password"
    assert other.visit(new_password_url).status_code == 400


def test_no_new_password_without_the_second_factor(
    op: OpenIdProvider, client: Client, outbox: Outbox, user: Account
) -> None:
    browser = Browser(op)
    link = mailed_link(browser, client, outbox, user)
    factor_page = open_link(browser, link)
    (csrf,) = {fields["csrf_token"] for _action, fields in forms_of(factor_page)}

    forged = browser.http.post(
        factor_page.url.removesuffix("/factor") + "/new-password",
        data={"csrf_token": csrf, "password": NEW_PASSWORD, "repeat": NEW_PASSWORD},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    account_page = browser.visit(op.issuer + "/account")

    assert forged.status_code == 302 and "/authorize/resume/" in forged.headers["Location"]
    assert is_password_page(account_page), "the link alone signs nobody in"
    assert signs_in_with(op, client, user.username, user.password), "the password is unchanged"


def test_an_administrator_prints_a_link_from_the_cli(
    live: LiveProvider, op: OpenIdProvider, client: Client, user: Account
) -> None:
    printed = live.idp("users", "reset-link", user.username)
    assert printed.returncode == 0, printed.stderr
    link = printed.stdout.strip()
    browser = Browser(op)

    form = prove_code(browser, open_link(browser, link), user)
    signed_out = browser.submit(form, password=NEW_PASSWORD, repeat=NEW_PASSWORD)

    assert is_password_page(signed_out) and CHANGED in signed_out.text
    overview = browser.submit(signed_out, username=user.username, password=NEW_PASSWORD)
    assert path_of(overview) == "/account", "the reset from the CLI ends on the account page"
    missing = live.idp("users", "reset-link", "nobody-by-that-name")
    assert missing.returncode == 2 and "no user named" in missing.stderr


def test_a_link_expires(ephemeral_store: EphemeralStore) -> None:
    links = ResetLinks(ephemeral=ephemeral_store, lifetime=1)
    token = links.issue(user_id="u1")

    time.sleep(2.1)

    assert not links.is_live(token) and links.redeem(token) is None


@pytest.fixture
def small_quota_app(tmp_path: Path) -> Flask:
    return make_app(tmp_path, address_limits={"password_resets": 2})


def test_asking_is_throttled_per_network_and_per_account(small_quota_app: Flask) -> None:
    """Per client address: a 429 once past the quota (whoever is asked for). Per account: three links
    an hour, then silence with the same answer."""
    client_id = add_client(small_quota_app)[0]

    def ask(address: str, who: str) -> int:
        browser = client_at(small_quota_app, address)
        page = browser.get(
            "/authorize",
            query_string={"response_type": "code", "client_id": client_id, "scope": "openid"}
            | {"redirect_uri": "http://localhost:9999/callback", "code_challenge": "x" * 43}
            | {"code_challenge_method": "S256", "state": "s"},
        )
        sign_in = page.location.rsplit("/", 1)[1]
        form = browser.get(f"/signin/{sign_in}/forgot").get_data(as_text=True)
        (csrf,) = re.findall(r'name="csrf_token" value="([^"]+)"', form)
        return browser.post(f"/signin/{sign_in}/forgot", data={"csrf_token": csrf, "who": who}).status_code

    assert [ask("203.0.113.7", f"user{n}") for n in range(3)] == [200, 200, 429]
    assert ask("203.0.113.8", "user0") == 200, "another network is not held back"
    with small_quota_app.app_context():
        links = services().reset_links
        assert [links.may_send(user_id="u1") for _ in range(4)] == [True, True, True, False]
