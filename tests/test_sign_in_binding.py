"""A sign-in belongs to the browser that started it, and what a session proved is tied to its id.

Each test is the attacker's move: another cookie jar finishing a victim's sign-in, an old step-up
resumed at an unattended browser, a session id captured before the second factor.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pyotp
import pytest
from flask import Flask
from support.account import (
    Account,
    secret_on,
    sign_in,
    text,
)
from support.app import REDIRECT_URI, Browser, add_user, csrf_token
from werkzeug.test import TestResponse

COOKIE = "idp_session"
EXPIRED = "Sign-in expired"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """Move the provider's clock forward (every `time.time()` in the process)."""
    real = time.time
    offset = 0.0

    def advance(seconds: float) -> None:
        nonlocal offset
        offset += seconds

    monkeypatch.setattr(time, "time", lambda: real() + offset)
    return advance


def sign_in_path(page: TestResponse) -> str:
    assert page.request.path.startswith("/signin/"), page.request.path
    return page.request.path


# -- a sign-in in progress belongs to one browser -------------------------------------------------


def test_another_browser_cannot_finish_a_victims_sign_in_with_its_own_identity(
    app: Flask, client_id: str
) -> None:
    """Login CSRF / account injection: the code would carry the victim's state, nonce and PKCE."""
    add_user(app, "mallory", "mallory's long password")
    victim = Browser(app.test_client(), client_id)
    victim_page = victim.authorize()
    leaked = sign_in_path(victim_page)

    attacker = Browser(app.test_client(), client_id)
    attacker_page = attacker.follow(attacker.client.get(leaked))
    assert attacker_page.status_code == 400 and EXPIRED in text(attacker_page)
    posted = attacker.client.post(leaked, data={"username": "mallory", "password": "mallory's long password"})
    assert posted.status_code in (400, 404) and REDIRECT_URI not in (posted.location or "")

    # The leaked sign-in is spent: not even its own browser can go on with it.
    again = victim.follow(victim.client.get(leaked))
    assert again.status_code == 400 and EXPIRED in text(again)


def test_a_sign_in_goes_on_in_the_browser_that_started_it(app: Flask, client_id: str) -> None:
    add_user(app, "alice", "a long enough password")
    browser = Browser(app.test_client(), client_id)
    enrol = browser.submit(browser.authorize(), username="alice", password="a long enough password")
    assert enrol.request.path.endswith("/enrol/totp"), enrol.request.path


# -- freshness for the account pages comes from a proof made for them ------------------------------


def test_an_old_account_step_up_resumed_later_proves_nothing_now(
    app: Flask, client_id: str, clock: Callable[[float], None]
) -> None:
    """An attacker at an unattended browser resumes a step-up the victim never finished."""
    account = sign_in(app, client_id)
    clock(400)  # the sign-in is older than the reauthentication age (300 s)
    first = account.browser.client.get("/account/email/new")
    second = account.browser.client.get("/account/totp/new")  # another tab, never finished
    assert "/authorize/resume/" in first.location and "/authorize/resume/" in second.location
    factor_page = account.get(first.location)
    fresh_page = account.browser.submit(factor_page, code=account.authenticator.code())
    assert fresh_page.request.path == "/account/email/new", fresh_page.request.path

    clock(600)  # the victim walked away; within the sign-in lifetime, past the grace
    account.get(second.location)
    email_page = account.browser.client.get("/account/email/new")
    assert email_page.status_code == 302 and "/authorize/resume/" in email_page.location


def test_a_step_up_keeps_the_account_pages_fresh_for_the_reauthentication_age(
    account: Account, clock: Callable[[float], None]
) -> None:
    clock(400)
    step_up = account.browser.client.get("/account/email/new")
    page = account.browser.submit(account.get(step_up.location), code=account.authenticator.code())
    assert page.request.path == "/account/email/new" and "<form" in text(page)
    clock(200)
    assert account.browser.client.get("/account/email/new").status_code == 200
    clock(200)
    assert account.browser.client.get("/account/email/new").status_code == 302


# -- the session id changes whenever the level rises ----------------------------------------------


def test_the_session_id_changes_at_the_second_factor_and_the_old_one_is_worthless(
    app: Flask, client_id: str
) -> None:
    add_user(app, "alice", "a long enough password")
    browser = Browser(app.test_client(), client_id)
    browser.authorize()
    before_password = browser.client.get_cookie(COOKIE)
    enrol = browser.submit(browser.authorize(), username="alice", password="a long enough password")
    after_password = browser.client.get_cookie(COOKIE)
    browser.submit(enrol, code=pyotp.TOTP(secret_on(enrol)).now(), name="phone")
    after_factor = browser.client.get_cookie(COOKIE)
    assert before_password and after_password and after_factor
    values = {before_password.value, after_password.value, after_factor.value}
    assert len(values) == 3, "each proof must give the session a new id"

    assert browser.client.get("/account").status_code == 200
    fixated = app.test_client()
    fixated.set_cookie(COOKIE, after_password.value)
    assert fixated.get("/account").status_code == 302, "an id from before the second factor signs no one in"


def test_the_session_index_follows_the_new_id(account: Account, clock: Callable[[float], None]) -> None:
    """Ending a session from another browser still ends it after its id changed at a step-up."""
    clock(400)
    step_up = account.browser.client.get("/account/email/new")
    account.browser.submit(account.get(step_up.location), code=account.authenticator.code())
    assert account.browser.client.get("/account").status_code == 200

    elsewhere = Browser(account.app.test_client(), account.browser.client_id)
    account.sign_in_again(elsewhere)
    form = elsewhere.client.get("/account/sessions")
    elsewhere.client.post("/account/sessions/end-others", data={"csrf_token": csrf_token(form)})
    assert account.browser.client.get("/account").status_code == 302
