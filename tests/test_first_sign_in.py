"""The first sign-in: a passkey offered before the authenticator app, then recovery codes shown once
and confirmed as saved before the sign-in goes on. In process, through the hosted pages."""

from __future__ import annotations

import re

import pyotp
from flask import Flask
from support.account import text
from support.app import Browser, add_user, code_from, csrf_token
from werkzeug.test import TestResponse

PASSWORD = "a long enough password"


def enrolment_page(app: Flask, client_id: str, username: str = "alice") -> tuple[Browser, TestResponse]:
    add_user(app, username, PASSWORD)
    browser = Browser(app.test_client(), client_id)
    page = browser.submit(browser.authorize(), username=username, password=PASSWORD)
    assert page.request.path.endswith("/enrol/totp"), page.request.path
    return browser, page


def enrol_app(app: Flask, client_id: str) -> tuple[Browser, TestResponse]:
    """The authenticator app set up from the enrolment page; returns the page that follows."""
    browser, page = enrolment_page(app, client_id)
    secret = re.search(r'id="secret">([A-Z2-7]+)<', text(page))
    assert secret is not None
    return browser, browser.submit(page, code=pyotp.TOTP(secret.group(1)).now())


def codes_on(page: str) -> list[str]:
    return re.findall(r"<li><code>([a-z2-7-]+)</code></li>", page)


def test_a_passkey_is_offered_before_the_app_where_the_browser_can_make_one(
    app: Flask, client_id: str
) -> None:
    page = text(enrolment_page(app, client_id)[1])

    passkey, authenticator_app = page.index("Create a passkey"), page.index("An authenticator app")
    assert passkey < authenticator_app
    assert re.search(r"<section [^>]*data-needs-webauthn hidden", page), "shown only where WebAuthn exists"
    assert 'data-options="/signin/' in page and "/enrol/passkey/options" in page


def test_on_a_phone_the_app_opens_from_a_link_and_the_key_is_grouped(app: Flask, client_id: str) -> None:
    page = text(enrolment_page(app, client_id)[1])
    secret = re.search(r'id="secret">([A-Z2-7]+)<', page)
    assert secret is not None

    assert re.search(r'<p class="phone-only"><a class="action" href="otpauth://totp/[^"]+">', page)
    groups = re.findall(r"<span>([A-Z2-7]{1,4})</span>", page)
    assert "".join(groups) == secret.group(1) and {len(group) for group in groups[:-1]} == {4}


def test_recovery_codes_are_shown_after_the_first_factor_until_saved(app: Flask, client_id: str) -> None:
    browser, shown = enrol_app(app, client_id)

    codes = codes_on(text(shown))
    assert shown.request.path.endswith("/recovery-codes") and len(codes) == 10
    assert shown.headers["Cache-Control"] == "no-store"
    again = browser.client.get(shown.request.path)
    assert codes_on(text(again)) == codes, "a reload shows them again until they are confirmed"
    refused = browser.client.post(shown.request.path, data={"csrf_token": csrf_token(shown)})
    assert refused.status_code == 400 and "Tick the box" in text(refused) and codes_on(text(refused)) == codes

    done = browser.submit(shown, saved="yes")

    code_from(done)
    later = browser.client.get(shown.request.path)
    assert later.status_code in (302, 400) and not codes_on(text(later)), "shown once"


def test_the_codes_page_belongs_to_the_browser_that_enrolled(app: Flask, client_id: str) -> None:
    _browser, shown = enrol_app(app, client_id)
    other = Browser(app.test_client(), client_id)

    taken = other.client.get(shown.request.path)

    assert taken.status_code == 400 and not codes_on(text(taken))


def test_the_codes_download_once_and_then_work_as_recovery_codes(app: Flask, client_id: str) -> None:
    browser, shown = enrol_app(app, client_id)
    codes = codes_on(text(shown))

    downloaded = browser.client.get(shown.request.path + ".txt")
    second = browser.client.get(shown.request.path + ".txt")
    code_from(browser.submit(shown, saved="yes"))

    assert downloaded.headers["Content-Disposition"] == "attachment; filename=recovery-codes.txt"
    assert re.findall(r"^[a-z2-7-]{19}$", downloaded.get_data(as_text=True), re.M) == codes
    assert second.status_code == 302, "downloaded once"
    later = Browser(app.test_client(), client_id)
    factor = later.submit(later.authorize(), username="alice", password=PASSWORD)
    used = later.client.post(
        factor.request.path.removesuffix("/factor") + "/recovery",
        data={"csrf_token": csrf_token(factor), "recovery_code": codes[3]},
    )
    assert used.status_code == 200 and "9" in text(used)
