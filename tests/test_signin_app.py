"""The hosted sign-in in process: uniform refusals, rehashing, secrets at rest, sessions, CSRF, audit."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from flask import Flask
from sqlalchemy import select
from support.app import Browser, add_client, add_user, code_from, csrf_token, make_app

from idp.store.tables import AuditEvent, Factor, User
from idp.web import services

PASSWORD = "a long enough password"


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


@pytest.fixture
def browser(app: Flask) -> Browser:
    client_id, _secret = add_client(app)
    return Browser(app.test_client(), client_id)


def rows(app: Flask, model: type) -> list:  # type: ignore[type-arg]
    with app.app_context(), services().database.unit_of_work() as session:
        return list(session.scalars(select(model)))


@pytest.mark.parametrize(
    ("username", "password"),
    [("nobody", PASSWORD), ("disabled", PASSWORD), ("alice", "not the password")],
    ids=["unknown user", "disabled user", "wrong password"],
)
def test_refusals_read_the_same_whatever_failed(
    app: Flask, browser: Browser, username: str, password: str
) -> None:
    add_user(app, "alice", PASSWORD)
    add_user(app, "disabled", PASSWORD, disabled=True)
    refused = browser.submit(browser.authorize(), username=username, password=password)
    assert refused.status_code == 401
    assert "The username or password is not right." in refused.get_data(as_text=True)


def test_password_hash_is_upgraded_at_sign_in_when_parameters_change(tmp_path: Path) -> None:
    weak = make_app(tmp_path)
    add_user(weak, "alice", PASSWORD)
    stronger = make_app(tmp_path, passwords={"memory_cost": 9216, "time_cost": 2})
    browser = Browser(stronger.test_client(), add_client(stronger)[0])
    browser.submit(browser.authorize(), username="alice", password=PASSWORD)
    (user,) = rows(stronger, User)
    parameters = PasswordHasher(memory_cost=9216, time_cost=2, parallelism=1)
    assert not parameters.check_needs_rehash(user.password_hash)


def test_totp_secret_is_encrypted_at_rest(app: Flask, browser: Browser) -> None:
    add_user(app, "alice", PASSWORD)
    _done, secret = browser.sign_in_with_enrolment("alice", PASSWORD)
    (factor,) = [row for row in rows(app, Factor) if row.kind == "totp"]
    assert secret.encode() not in factor.secret
    with app.app_context():
        assert services().secret_box.open(factor.secret) == secret.encode()


def test_no_factor_is_stored_before_the_enrolment_code_is_confirmed(app: Flask, browser: Browser) -> None:
    add_user(app, "alice", PASSWORD)
    enrol = browser.submit(browser.authorize(), username="alice", password=PASSWORD)
    refused = browser.submit(enrol, code="000000", name="phone")
    assert refused.status_code == 401
    assert rows(app, Factor) == []


def test_session_cookie_is_http_only_lax_and_renewed_at_sign_in(app: Flask, browser: Browser) -> None:
    add_user(app, "alice", PASSWORD)
    page = browser.authorize()
    before = browser.client.get_cookie("idp_session")
    assert before is not None, "the password page's CSRF token lives in a session"
    browser.client.post(
        page.request.path, data={"csrf_token": csrf_token(page), "username": "alice", "password": PASSWORD}
    )
    after = browser.client.get_cookie("idp_session")
    assert after is not None and after.value != before.value
    assert after.http_only and after.same_site == "Lax" and not after.secure


def test_cookie_is_secure_when_the_issuer_is_https(tmp_path: Path) -> None:
    app = make_app(tmp_path, issuer="https://login.example.com")
    browser = Browser(app.test_client(), add_client(app)[0])
    browser.authorize()
    cookie = browser.client.get_cookie("idp_session")
    assert cookie is not None and cookie.secure


def test_a_form_without_its_csrf_token_is_refused(app: Flask, browser: Browser) -> None:
    add_user(app, "alice", PASSWORD)
    page = browser.authorize()
    forged = browser.client.post(page.request.path, data={"username": "alice", "password": PASSWORD})
    assert forged.status_code == 400
    assert browser.client.get(page.request.path).status_code == 200, "still on the password page"


def test_every_attempt_is_audited_without_secrets(app: Flask, browser: Browser) -> None:
    add_user(app, "alice", PASSWORD)
    browser.submit(browser.authorize(), username="alice", password="wrong password!")
    done, secret = browser.sign_in_with_enrolment("alice", PASSWORD)
    code_from(done)
    events = [(e.event, e.outcome, e.detail.get("step"), e.detail.get("acr")) for e in rows(app, AuditEvent)]
    assert ("sign_in", "failure", "password", None) in events
    assert ("factor_enrolment", "success", None, None) in events
    assert ("sign_in", "success", None, "mfa") in events
    success = next(e for e in rows(app, AuditEvent) if e.event == "sign_in" and e.outcome == "success")
    assert success.detail["amr"] == ["pwd", "otp", "mfa"] and success.detail["auth_time"] > 0
    assert success.client_id == browser.client_id and success.user_id and success.ip and success.user_agent
    recorded = repr([(e.detail, e.user_agent) for e in rows(app, AuditEvent)])
    assert PASSWORD not in recorded and secret not in recorded


def test_security_headers_on_pages(app: Flask, browser: Browser) -> None:
    page = browser.authorize()
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.mimetype == "text/html"
