"""Plain words on the hosted pages: levels by their configured title, the app and its reason on the
step-up page, "Cancel and go back" (access_denied to the client, with state and iss), and activity
and sessions told as people say them: methods, browser and OS, the time as a <time> element."""

from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from support.account import Account, history_rows, session_rows, sign_in, text
from support.app import REDIRECT_URI, Browser, add_client, code_from, make_app
from support.step_up import callback_params, lead

from idp.store.tables import AuditEvent
from idp.views.plain_words import activity, device, listed, one_row_per_action

ISSUER = "http://localhost:8000"
PAYMENTS = "payments:write"
FIREFOX_ON_UBUNTU = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
SAFARI_ON_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
PROTOCOL_WORDS = re.compile(r"\b(phr|phrh|amr|acr|pwd|otp|hwk|swk)\b")


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(
        tmp_path,
        issuer=ISSUER,
        scopes={PAYMENTS: {"acr": "mfa", "max_age": 0, "description": "approve a payment"}},
    )


@pytest.fixture
def client_id(app: Flask) -> str:
    return add_client(app, name="Shop", scope=f"openid profile {PAYMENTS}")[0]


def visible(page_text: str) -> str:
    without_scripts = re.sub(r"<(script|style)\b.*?</\1>", " ", page_text, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", without_scripts))


def test_the_step_up_page_names_the_app_what_it_asks_for_and_why(account: Account) -> None:
    page = account.browser.authorize(scope=f"openid {PAYMENTS}")

    assert lead(page) == "Shop asks for a second factor to approve a payment."
    assert "Your password and a second factor" in text(page), "the level's sentence from config"


def test_a_level_is_named_by_the_title_the_operator_configured(tmp_path: Path) -> None:
    mfa = {
        "satisfied_by": [["pwd", "otp"], ["hwk", "user"], ["swk", "user"]],
        "ttl": 43200,
        "title": "your second step",
        "sentence": "The code your phone shows.",
    }
    configured = make_app(tmp_path, assurance={"minimum": "mfa", "levels": {"mfa": mfa}})
    account = sign_in(configured, add_client(configured, name="Shop")[0])

    page = account.browser.authorize(max_age="0")

    assert lead(page) == "Shop asks for your second step."
    assert "The code your phone shows." in text(page)


def test_cancel_and_go_back_answers_access_denied_with_state_and_iss(account: Account) -> None:
    page = account.browser.authorize(scope=f"openid {PAYMENTS}")
    (cancel,) = re.findall(r'action="([^"]+/cancel)"', text(page))
    (csrf,) = set(re.findall(r'name="csrf_token" value="([^"]+)"', text(page)))

    answer = account.browser.client.post(cancel, data={"csrf_token": csrf})

    assert answer.status_code == 302 and answer.location.startswith(REDIRECT_URI)
    params = callback_params(answer)
    assert params["error"] == "access_denied" and params["state"] == "xyz" and params["iss"] == ISSUER
    again = account.browser.client.post(cancel, data={"csrf_token": csrf})
    assert again.status_code == 400, "the sign-in was spent"


def test_a_cancel_from_another_browser_tells_the_client_nothing(
    app: Flask, client_id: str, account: Account
) -> None:
    """A cancel posted by someone else's browser is refused and spends the sign-in: no access_denied
    with the owner's state reaches the client."""
    page = account.browser.authorize(scope=f"openid {PAYMENTS}")
    (cancel,) = re.findall(r'action="([^"]+/cancel)"', text(page))
    intruder = Browser(app.test_client(), client_id)
    (csrf,) = set(re.findall(r'name="csrf_token" value="([^"]+)"', text(intruder.authorize())))

    refused = intruder.client.post(cancel, data={"csrf_token": csrf})

    assert refused.status_code == 400 and refused.location is None
    assert account.browser.client.get(page.request.path).status_code == 400, "the sign-in was spent"


def test_cancel_on_the_account_pages_goes_back_to_the_start_page(app: Flask, client_id: str) -> None:
    browser = Browser(app.test_client(), client_id)
    password_page = browser.follow(browser.client.get("/account"))
    sign_in_id = password_page.request.path.rsplit("/", 1)[1]
    (csrf,) = set(re.findall(r'name="csrf_token" value="([^"]+)"', text(password_page)))

    answer = browser.client.post(f"/signin/{sign_in_id}/cancel", data={"csrf_token": csrf})

    assert answer.status_code == 302 and urlsplit(answer.location).path == "/"


def test_no_page_shows_a_level_an_amr_value_or_a_factor_id(account: Account) -> None:
    factor_page = account.browser.authorize(scope=f"openid {PAYMENTS}")
    code_from(account.browser.submit(factor_page, code=account.authenticator.code()))
    factor_ids = list(account.factors().values())
    pages = [text(factor_page)] + [
        text(account.get(path)) for path in ("/account", "/account/sessions", "/account/history", "/")
    ]

    for page in pages:
        words = visible(page)
        assert not PROTOCOL_WORDS.search(words), PROTOCOL_WORDS.search(words)
        assert not any(factor_id in words for factor_id in factor_ids)


def test_sessions_and_history_name_the_browser_and_os_and_carry_the_time(app: Flask, client_id: str) -> None:
    account = sign_in(app, client_id)
    laptop = Browser(app.test_client(), client_id)
    laptop.client.environ_base["HTTP_USER_AGENT"] = FIREFOX_ON_UBUNTU
    code_from(account.sign_in_again(laptop))

    sessions = session_rows(account.get("/account/sessions"))
    history = history_rows(account.get("/account/history"))
    page = text(account.get("/account/sessions"))

    assert any(row.startswith("Firefox on Ubuntu Signed in") for row in sessions.values()), sessions
    assert '>End<span class="visually-hidden"> the session on Firefox on Ubuntu, signed in ' in page
    assert re.search(
        r'<time datetime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" data-local-time>[^<]+ UTC</time>', page
    )
    assert any(
        "Signed in to Shop with password and authenticator app Firefox on Ubuntu" in row for row in history
    ), history


def test_a_method_added_on_the_account_pages_is_one_row(account: Account) -> None:
    account.add_totp("tablet")

    history = history_rows(account.get("/account/history"))

    assert "Authenticator app 'tablet' added" in history[0]
    assert "Set up" not in history[1], "the enrolment behind the change is not a row of its own"


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        pytest.param(FIREFOX_ON_UBUNTU, "Firefox on Ubuntu", id="a desktop browser"),
        pytest.param(SAFARI_ON_IPHONE, "Mobile Safari on iOS", id="a phone"),
        pytest.param("python-requests/2.32.3", "Python Requests", id="a script names itself"),
        pytest.param("", "Unknown browser", id="no header"),
        pytest.param(None, "Unknown browser", id="never recorded"),
        pytest.param("\x00" * 400, "Unknown browser", id="garbage"),
    ],
)
def test_a_device_is_named_from_its_user_agent(user_agent: str | None, expected: str) -> None:
    assert device(user_agent) == expected


@pytest.mark.parametrize(
    ("items", "expected"),
    [([], ""), (["password"], "password"), (["a", "b"], "a and b"), (["a", "b", "c"], "a, b, and c")],
)  # as Unicode CLDR lists things in English (tests/test_languages.py: in Chinese)
def test_lists_read_as_a_sentence(items: list[str], expected: str) -> None:
    assert listed(items) == expected


def test_older_sign_ins_without_methods_are_told_from_their_amr() -> None:
    event = AuditEvent(
        at=1, event="sign_in", outcome="success", client_id="c", detail={"amr": ["pwd", "otp", "mfa"]}
    )

    assert activity(event, {"c": "Shop"}) == "Signed in to Shop with password and one-time code"


def test_an_enrolment_followed_by_its_account_change_is_one_action() -> None:
    change = AuditEvent(at=101, event="account_change", outcome="success", detail={"change": "passkey added"})
    enrolment = AuditEvent(at=100, event="factor_enrolment", outcome="success", detail={"kind": "webauthn"})
    first_sign_in = AuditEvent(at=50, event="factor_enrolment", outcome="success", detail={"kind": "totp"})

    assert one_row_per_action([change, enrolment, first_sign_in]) == [change, first_sign_in]
