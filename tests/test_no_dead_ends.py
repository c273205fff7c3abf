"""No dead ends, no surprises: confirmations before what cannot be undone, a way back from every page,
and messages that say what went wrong (a wrong or expired code; reuse only when it was reused)."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from support.account import Account, error, factor_kinds, text
from support.app import Browser, code_from, csrf_token
from support.attack import wrong_totp_code
from werkzeug.test import TestResponse

CONFIRMATIONS = [
    pytest.param("/account/recovery-codes/new", "Generate new codes", id="new recovery codes"),
    pytest.param("/account/sessions/end-others", "End all other sessions", id="ending all other sessions"),
]


@pytest.mark.parametrize(("path", "button"), CONFIRMATIONS)
def test_a_change_that_cannot_be_undone_asks_first(account: Account, path: str, button: str) -> None:
    page = account.get(path)

    assert page.status_code == 200 and f'<button type="submit">{button}</button>' in text(page)
    assert '<a href="/account">Cancel</a>' in text(page)


def test_removing_a_sign_in_method_asks_first_and_changes_nothing_until_confirmed(
    app: Flask, account: Account
) -> None:
    (factor_id,) = account.factors().values()
    before = factor_kinds(app)

    overview = text(account.get("/account"))
    confirm = account.get(f"/account/factors/{factor_id}/remove")

    assert f'href="/account/factors/{factor_id}/remove"' in overview, "a link to the question, not a form"
    assert "<h1>Remove phone?</h1>" in text(confirm) and "no longer be able to sign in with phone" in text(
        confirm
    )
    assert factor_kinds(app) == before
    assert (
        error(account.get("/account/factors/no-such-factor/remove"))
        == "That sign-in method no longer exists."
    )


def test_sign_out_has_a_cancel_and_signed_out_links_to_the_account(account: Account) -> None:
    asked = account.browser.client.get("/logout")
    assert '<a href="/">Cancel and stay signed in</a>' in text(asked)

    signed_out = account.browser.submit(asked)

    assert '<a href="/account">Sign in to your account</a>' in text(signed_out)
    assert 'href="/account"' in text(account.browser.client.get("/"))


@pytest.mark.parametrize("path", ["/no-such-page", "/signin/unknown/factor"])
def test_error_pages_are_the_providers_with_a_way_back(account: Account, path: str) -> None:
    page = account.browser.client.get(path)

    assert page.status_code in (400, 404) and '<link rel="stylesheet" href="/static/idp.css">' in text(page)
    assert '<a href="/">Go to the start page</a>' in text(page)


def factor_page_of(app: Flask, client_id: str, account: Account) -> tuple[Browser, TestResponse]:
    browser = Browser(app.test_client(), client_id)
    return browser, browser.submit(browser.authorize(), username=account.username, password=account.password)


def test_a_wrong_code_is_called_wrong_or_expired_and_a_reused_one_reused(
    app: Flask, client_id: str, account: Account
) -> None:
    browser, page = factor_page_of(app, client_id, account)
    wrong = browser.submit(page, code=wrong_totp_code(account.authenticator.secret))
    assert wrong.status_code == 401 and "That code is wrong or has expired." in text(wrong)
    assert "used already" not in text(wrong), "nobody used it: no blame for reuse"

    code = account.authenticator.code()
    code_from(browser.submit(wrong, code=code))
    again, again_page = factor_page_of(app, client_id, account)
    reused = again.submit(again_page, code=code)

    assert reused.status_code == 401 and "That code was used already." in text(reused)


def test_the_recovery_code_section_stays_open_after_a_wrong_code(
    app: Flask, client_id: str, account: Account
) -> None:
    browser, page = factor_page_of(app, client_id, account)
    action = re.search(r'action="([^"]+/recovery)"', text(page))
    assert action is not None
    assert '<details class="method">' in text(page), "closed at first"

    refused = browser.client.post(
        action.group(1), data={"csrf_token": csrf_token(page), "recovery_code": "not-a-code"}
    )

    assert refused.status_code == 401 and '<details class="method" open>' in text(refused)
