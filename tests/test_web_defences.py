"""Web defences: security headers on every page, nothing secret cached, no open redirect, no session
fixation, bounded request bodies, and no secret in any log line."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select
from support.app import REDIRECT_URI, Browser, add_client, add_user, code_from, csrf_token, make_app
from support.attack import (
    ATTACKER,
    VICTIM,
    Victim,
    client_at,
    every_log,
    newest_code,
    record_every_response,
    register,
    wrong_totp_code,
)
from werkzeug.test import TestResponse

from idp.store.tables import Factor, User
from idp.web import services

PASSWORD = "a long enough password"
EVIL = "https://evil.example/callback"
SIGNED_OUT = "http://localhost:9999/signed-out"
OVER_THE_LIMIT = "x" * (64 * 1024 + 1)


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path, factors={"email": {"sign_in": True}})


@pytest.fixture
def client_id(app: Flask) -> str:
    return add_client(app)[0]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    """One provider for the tables that change nothing an other row would see."""
    return make_app(tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="module")
def shared_client_id(shared: Flask) -> str:
    return add_client(shared)[0]


def enrolled_victim(app: Flask, client_id: str) -> Victim:
    add_user(app, "alice", PASSWORD)
    return Victim.enrolled(app, client_id, "alice", PASSWORD)


def outbox_of(tmp_path: Path) -> Path:
    return tmp_path / "instance" / "outbox"


# -- headers on every page ----------------------------------------------------------------------------


def csp_directives(response: TestResponse) -> dict[str, list[str]]:
    policy = response.headers.get("Content-Security-Policy", "")
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def header_problems(response: TestResponse) -> list[str]:
    """Why this HTML page could be framed, sniffed, leak its URL, or run injected script."""
    csp = csp_directives(response)
    scripts = csp.get("script-src", csp.get("default-src", ["*"]))
    problems = [
        f"script-src allows {source}"
        for source in scripts
        if source in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:")
    ]
    problems += [
        f"{directive} is not 'none'"
        for directive in ("frame-ancestors", "object-src", "base-uri")
        if csp.get(directive) != ["'none'"]
    ]
    if response.headers.get("X-Content-Type-Options") != "nosniff":
        problems.append("no X-Content-Type-Options: nosniff")
    if response.headers.get("Referrer-Policy") != "no-referrer":
        problems.append("no Referrer-Policy: no-referrer")
    body = response.get_data(as_text=True)
    if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", body):
        problems.append("an inline <script> (it would need 'unsafe-inline')")
    if re.search(r"\son[a-z]+\s*=|javascript:", body, re.IGNORECASE):
        problems.append("an inline event handler or javascript: URL")
    return problems


def walk_every_page(app: Flask, client_id: str, tmp_path: Path) -> None:
    """Every kind of page a person or an attacker can reach: sign-in, account, logout and errors."""
    victim = enrolled_victim(app, client_id)
    own = victim.browser.client
    for path in ("/", "/account", "/account/sessions", "/account/history", "/account/recovery-codes"):
        own.get(path)
    for path in ("/account/totp/new", "/account/passkeys/new", "/account/password"):
        own.get(path)
    victim.generate_recovery_codes()
    victim.bind_email("alice@example.net", outbox_of(tmp_path))
    Browser(own, client_id).authorize(response_mode="form_post")
    stranger = Browser(client_at(app, ATTACKER), client_id)
    page = stranger.authorize()
    factor = stranger.submit(page, username="alice", password=PASSWORD)
    stranger.submit(factor, code=wrong_totp_code(victim.authenticator.secret))
    stranger.client.post(factor.request.path.replace("/factor", "/recovery"), data={"csrf_token": "x"})
    stranger.authorize(redirect_uri=EVIL)
    stranger.client.get("/authorize/resume/no-such-sign-in")
    stranger.client.get("/logout")
    stranger.client.post("/logout/confirm", data={"csrf_token": csrf_token(stranger.client.get("/logout"))})
    stranger.client.get("/no-such-page")
    stranger.client.get("/logout/confirm")  # a form's address, asked with GET: 405
    stranger.client.post(page.request.path, data={"csrf_token": "x", "password": OVER_THE_LIMIT})


def test_every_html_page_carries_the_security_headers(app: Flask, client_id: str, tmp_path: Path) -> None:
    seen = record_every_response(app)
    walk_every_page(app, client_id, tmp_path)
    pages = [response for response in seen if response.mimetype == "text/html"]
    statuses = {response.status_code for response in pages}
    assert len(pages) > 30 and {200, 400, 401, 404, 405, 413} <= statuses, "the walk reached every kind"
    problems = {
        f"{page.request.method} {page.request.path} {page.status_code}": header_problems(page)
        for page in pages
    }
    assert {page: found for page, found in problems.items() if found} == {}


@pytest.mark.parametrize(
    ("issuer", "hsts"),
    [
        ("http://localhost:8000", None),
        ("https://login.example.com", "max-age=31536000; includeSubDomains"),
    ],
    ids=["no HSTS: the issuer is plain HTTP (local development)", "HSTS for a year: the issuer is HTTPS"],
)
def test_strict_transport_security_only_when_the_issuer_is_https(
    tmp_path: Path, issuer: str, hsts: str | None
) -> None:
    client = make_app(tmp_path, issuer=issuer).test_client()
    for path in ("/", "/.well-known/openid-configuration", "/no-such-page"):
        assert client.get(path).headers.get("Strict-Transport-Security") == hsts, path


# -- nothing secret is stored by caches -----------------------------------------------------------------


def post_token(client: FlaskClient, client_id: str, secret: str, **form: str) -> TestResponse:
    return client.post("/token", data=form, auth=(client_id, secret))


def exchange(browser: Browser, secret: str, done: TestResponse) -> TestResponse:
    return post_token(
        browser.client,
        browser.client_id,
        secret,
        grant_type="authorization_code",
        code=code_from(done),
        redirect_uri=REDIRECT_URI,
        code_verifier=browser.code_verifier,
    )


def test_token_responses_and_token_answers_are_never_cached(app: Flask) -> None:
    client_id, secret = add_client(app)
    victim = enrolled_victim(app, client_id)
    browser = victim.new_browser()
    done = victim.sign_in(browser)
    issued = exchange(browser, secret, done)
    tokens = issued.get_json()
    client = browser.client
    answers = {
        "tokens for a code": issued,
        "tokens for a refresh token": post_token(
            client, client_id, secret, grant_type="refresh_token", refresh_token=tokens["refresh_token"]
        ),
        "an introspection": client.post(
            "/introspect", data={"token": tokens["access_token"]}, auth=(client_id, secret)
        ),
        "userinfo": client.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}),
        "a refused code": exchange(browser, secret, done),
    }
    assert [answer.status_code for answer in answers.values()] == [200, 200, 200, 200, 400]
    assert {name: answer.headers.get("Cache-Control") for name, answer in answers.items()} == dict.fromkeys(
        answers, "no-store"
    )


def enrolment_at_sign_in(app: Flask, client_id: str, _victim: Victim) -> TestResponse:
    add_user(app, "bob", PASSWORD)
    browser = Browser(app.test_client(), client_id)
    return browser.submit(browser.authorize(), username="bob", password=PASSWORD)


def enrolment_on_the_account_page(_app: Flask, _client_id: str, victim: Victim) -> TestResponse:
    return victim.browser.client.get("/account/totp/new")


def fresh_recovery_codes(_app: Flask, _client_id: str, victim: Victim) -> TestResponse:
    client = victim.browser.client
    return client.post("/account/recovery-codes", data={"csrf_token": csrf_token(client.get("/account"))})


def recovery_codes_as_a_file(app: Flask, client_id: str, victim: Victim) -> TestResponse:
    fresh_recovery_codes(app, client_id, victim)
    return victim.browser.client.get("/account/recovery-codes.txt")


@pytest.mark.parametrize(
    "show",
    [
        pytest.param(enrolment_at_sign_in, id="a TOTP secret being enrolled at sign-in"),
        pytest.param(enrolment_on_the_account_page, id="a TOTP secret being enrolled on the account page"),
        pytest.param(fresh_recovery_codes, id="fresh recovery codes"),
        pytest.param(recovery_codes_as_a_file, id="recovery codes downloaded"),
    ],
)
def test_pages_that_show_a_secret_are_never_cached(
    app: Flask, client_id: str, show: Callable[[Flask, str, Victim], TestResponse]
) -> None:
    page = show(app, client_id, enrolled_victim(app, client_id))
    assert page.status_code == 200 and re.search(r"[A-Z2-7]{32}|[a-z2-7]{4}-[a-z2-7]{4}", page.text)
    assert page.headers["Cache-Control"] == "no-store"


# -- open redirects ---------------------------------------------------------------------------------


def assert_sends_nowhere(response: TestResponse) -> None:
    assert response.status_code == 400, response.status_code
    assert "Location" not in response.headers
    assert "evil.example" not in " ".join(re.findall(r'(?:action|href)="([^"]*)"', response.text))


@pytest.mark.parametrize(
    "params",
    [
        {"redirect_uri": EVIL},
        {"redirect_uri": REDIRECT_URI + "/../../evil"},
        {"redirect_uri": REDIRECT_URI + "?next=https://evil.example/"},
        {"redirect_uri": "http://localhost:9999@evil.example/callback"},
        {"redirect_uri": EVIL, "scope": "openid"},
        {"redirect_uri": EVIL, "response_type": "token"},
        {"redirect_uri": EVIL, "response_mode": "form_post"},
        {"redirect_uri": EVIL, "prompt": "none"},
        {"redirect_uri": EVIL, "code_challenge": ""},
        {"redirect_uri": EVIL, "client_id": "no-such-client"},
    ],
    ids=[
        "fails because the redirect URI is not registered",
        "fails because a path was added to the registered one",
        "fails because a query was added to the registered one",
        "fails because the host is hidden behind userinfo",
        "fails even for a request that is otherwise fine",
        "fails though the error (unsupported response type) would be sent back",
        "fails though form_post would carry the answer there",
        "fails though prompt=none would answer login_required there",
        "fails though the missing PKCE error would be sent back",
        "fails because the client is unknown",
    ],
)
def test_an_unregistered_redirect_uri_is_never_redirected_to(
    shared: Flask, shared_client_id: str, params: dict[str, str]
) -> None:
    browser = Browser(shared.test_client(), shared_client_id)
    assert_sends_nowhere(browser.authorize(**params))


@pytest.fixture(scope="module")
def rp(shared: Flask) -> str:
    """A client that registered SIGNED_OUT as where to return after logout."""
    return register(shared, post_logout_redirect_uris=[SIGNED_OUT]).client.client_id


def forged_id_token(audience: str) -> str:
    key = RSAKey.generate_key(2048)
    claims = {"iss": "http://localhost:8000", "aud": audience, "sub": "alice"}
    return jwt.encode({"alg": "RS256", "kid": "forged"}, claims, key)


@pytest.mark.parametrize(
    "params",
    [
        {"post_logout_redirect_uri": EVIL, "client_id": "{rp}"},
        {"post_logout_redirect_uri": SIGNED_OUT, "client_id": "{other}"},
        {"post_logout_redirect_uri": SIGNED_OUT},
        {"post_logout_redirect_uri": SIGNED_OUT + "/../evil", "client_id": "{rp}"},
        {"post_logout_redirect_uri": "http://localhost:9999@evil.example/signed-out", "client_id": "{rp}"},
        {"post_logout_redirect_uri": EVIL, "id_token_hint": "{forged}"},
    ],
    ids=[
        "fails because the address is not registered",
        "fails because it is another client's address",
        "fails because no client is named to check it against",
        "fails because a path was added to the registered one",
        "fails because the host is hidden behind userinfo",
        "fails because the ID token hint is forged",
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_logout_never_redirects_to_an_unregistered_address(
    shared: Flask, rp: str, shared_client_id: str, params: dict[str, str], method: str
) -> None:
    filled = {
        name: value.format(rp=rp, other=shared_client_id, forged=forged_id_token(rp))
        for name, value in params.items()
    }
    client = shared.test_client()
    sent = {"query_string": filled} if method == "GET" else {"data": filled}
    answer = client.open("/logout", method=method, **sent)
    assert_sends_nowhere(answer)


def test_logout_confirmation_checks_the_address_again(shared: Flask, rp: str) -> None:
    client = shared.test_client()
    asked = client.get("/logout", query_string={"client_id": rp, "post_logout_redirect_uri": SIGNED_OUT})
    assert asked.status_code == 200, "a registered address: the user is asked to confirm"
    form = {"csrf_token": csrf_token(asked), "client_id": rp, "state": "s"}
    assert_sends_nowhere(client.post("/logout/confirm", data={**form, "post_logout_redirect_uri": EVIL}))
    confirmed = client.post("/logout/confirm", data={**form, "post_logout_redirect_uri": SIGNED_OUT})
    assert confirmed.status_code == 302 and confirmed.location == SIGNED_OUT + "?state=s"


def test_an_account_step_up_returns_only_to_the_providers_own_page(app: Flask, client_id: str) -> None:
    seen = record_every_response(app)
    victim = enrolled_victim(app, client_id)
    browser = victim.new_browser()
    lure = {"next": EVIL, "return_to": EVIL, "redirect_uri": EVIL}
    resume = browser.client.get("/account/sessions", query_string=lure)
    assert resume.status_code == 302 and resume.location.startswith("/authorize/resume/")
    page = browser.follow(browser.client.get(resume.location, query_string=lure))
    factor = browser.submit(page, username="alice", password=PASSWORD)
    back = browser.submit(factor, code=victim.authenticator.next_code())
    assert back.status_code == 200 and back.request.path == "/account/sessions"
    assert not [r.location for r in seen if r.location and "evil" in r.location]


# -- session fixation -------------------------------------------------------------------------------


def chosen_by_the_attacker(_app: Flask) -> str:
    return "attacker-chosen-session-id"


def issued_to_the_attacker(app: Flask) -> str:
    """A real session the attacker opened on the provider (visiting a sign-in page gives one)."""
    attacker = Browser(client_at(app, ATTACKER), add_client(app)[0])
    attacker.authorize()
    cookie = attacker.client.get_cookie("idp_session")
    assert cookie is not None
    return cookie.value


@pytest.mark.parametrize(
    "plant",
    [
        pytest.param(chosen_by_the_attacker, id="an id the provider never issued"),
        pytest.param(issued_to_the_attacker, id="an id the provider issued to the attacker"),
    ],
)
def test_a_session_id_planted_before_sign_in_is_not_signed_in(
    app: Flask, client_id: str, plant: Callable[[Flask], str]
) -> None:
    planted = plant(app)
    browser = Browser(client_at(app, VICTIM), client_id)
    browser.client.set_cookie("idp_session", planted)
    add_user(app, "alice", PASSWORD)
    Victim.enrolled(app, client_id, "alice", PASSWORD, browser=browser)
    own = browser.client.get_cookie("idp_session")
    assert own is not None and own.value != planted
    assert browser.client.get("/account").status_code == 200, "the victim is signed in"
    attacker = client_at(app, ATTACKER)
    attacker.set_cookie("idp_session", planted)
    answer = attacker.get("/account")
    assert answer.status_code == 302 and answer.location.startswith("/authorize/resume/"), "not signed in"


# -- request bodies ----------------------------------------------------------------------------------


def password_page(app: Flask, client_id: str) -> tuple[Browser, str, str]:
    browser = Browser(app.test_client(), client_id)
    page = browser.authorize()
    return browser, page.request.path, csrf_token(page)


BIG_REQUESTS: list[Any] = [
    pytest.param(
        "/token", {"data": {"grant_type": "client_credentials", "pad": OVER_THE_LIMIT}}, id="/token"
    ),
    pytest.param("/revoke", {"data": {"token": OVER_THE_LIMIT}}, id="/revoke"),
    pytest.param("/introspect", {"data": {"token": OVER_THE_LIMIT}}, id="/introspect"),
    pytest.param("/authorize", {"data": {"pad": OVER_THE_LIMIT}}, id="/authorize"),
    pytest.param(
        "{page}", {"data": {"csrf_token": "{csrf}", "password": OVER_THE_LIMIT}}, id="the password page"
    ),
    pytest.param("{page}/passkey", {"json": {"credential": {"id": OVER_THE_LIMIT}}}, id="a passkey answer"),
    pytest.param("/logout", {"data": {"state": OVER_THE_LIMIT}}, id="/logout"),
    pytest.param("/userinfo", {"data": {"pad": OVER_THE_LIMIT}}, id="/userinfo"),
    pytest.param("/token", {"data": OVER_THE_LIMIT, "content_type": "text/plain"}, id="/token, not a form"),
]


@pytest.mark.parametrize(("path", "request_args"), BIG_REQUESTS)
def test_a_body_over_64_kib_is_refused_with_413(
    shared: Flask, shared_client_id: str, path: str, request_args: dict[str, Any]
) -> None:
    browser, page, csrf = password_page(shared, shared_client_id)
    data = request_args.get("data")
    if isinstance(data, dict):
        request_args = {**request_args, "data": {k: v.format(csrf=csrf) for k, v in data.items()}}
    answer = browser.client.post(path.format(page=page), **request_args)
    assert answer.status_code == 413


def test_a_body_just_under_the_limit_is_read(shared: Flask) -> None:
    client_id, secret = add_client(shared)
    padding = {f"pad{n}": "x" * 1000 for n in range(60)}
    answer = shared.test_client().post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "nope", **padding},
        auth=(client_id, secret),
    )
    assert answer.status_code == 400 and answer.get_json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"\xff\xfe:secret").decode(),
        "Basic " + base64.b64encode(b"client-without-a-secret").decode(),
        "Basic !!!",
        "Basic",
    ],
    ids=[
        "fails because the credentials are not UTF-8",
        "fails because there is no colon",
        "fails because it is not base64",
        "fails because it is empty",
    ],
)
def test_malformed_basic_credentials_are_refused_without_a_server_error(
    shared: Flask, authorization: str
) -> None:
    client = shared.test_client()
    form = {"grant_type": "client_credentials", "token": "t"}
    answers = {
        path: client.post(path, data=form, headers={"Authorization": authorization})
        for path in ("/token", "/revoke", "/introspect")
    }
    assert {path: answer.status_code for path, answer in answers.items()} == dict.fromkeys(answers, 401)
    assert {answer.get_json()["error"] for answer in answers.values()} == {"invalid_client"}


# -- logs -----------------------------------------------------------------------------------------------


def sign_in_with_totp(victim: Victim) -> tuple[Browser, TestResponse]:
    browser = victim.new_browser()
    return browser, victim.sign_in(browser)


def sign_in_with_email_code(victim: Victim, outbox: Path) -> tuple[Browser, TestResponse]:
    browser = victim.new_browser()
    factor = browser.submit(browser.authorize(), username=victim.username, password=victim.password)
    base = factor.request.path.removesuffix("/factor")
    browser.client.post(f"{base}/email/send", data={"csrf_token": csrf_token(factor)})
    answer = browser.client.post(
        f"{base}/email", data={"csrf_token": csrf_token(factor), "email_code": newest_code(outbox)}
    )
    return browser, browser.follow(answer)


def sign_in_with_recovery_code(victim: Victim, code: str) -> tuple[Browser, TestResponse]:
    browser = victim.new_browser()
    factor = browser.submit(browser.authorize(), username=victim.username, password=victim.password)
    base = factor.request.path.removesuffix("/factor")
    used = browser.client.post(
        f"{base}/recovery", data={"csrf_token": csrf_token(factor), "recovery_code": code}
    )
    onward = re.search(r'href="([^"]+)" id="continue"', used.text)
    assert onward, used.text
    return browser, browser.follow(browser.client.get(onward.group(1)))


def stored_secrets(app: Flask) -> dict[str, str]:
    """What the database holds for a user: the password hash, the sealed TOTP secret."""
    with app.app_context(), services().database.unit_of_work() as session:
        (user,) = session.scalars(select(User))
        (totp,) = session.scalars(select(Factor).where(Factor.kind == "totp"))
        assert totp.secret is not None
        return {"password hash": user.password_hash, "sealed TOTP secret": totp.secret.decode()}


def codes_in(outbox: Path) -> list[str]:
    return re.findall(r"Your code: (\d{6})", "".join(path.read_text() for path in outbox.glob("*.eml")))


def test_no_secret_reaches_any_log(app: Flask, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client_id, client_secret = add_client(app)
    add_user(app, "alice", PASSWORD)
    outbox = outbox_of(tmp_path)
    secrets: dict[str, str] = {"password": PASSWORD, "mistyped password": PASSWORD[:-1] + "e"}
    with every_log(caplog) as logs:
        Browser(app.test_client(), client_id).submit(
            Browser(app.test_client(), client_id).authorize(),
            username="alice",
            password=secrets["mistyped password"],
        )
        victim = Victim.enrolled(app, client_id, "alice", PASSWORD)
        recovery = victim.generate_recovery_codes()
        victim.browser.client.get("/account/recovery-codes.txt")
        victim.bind_email("alice@example.net", outbox)
        sessions = []
        for number, (browser, done) in enumerate(
            [
                sign_in_with_totp(victim),
                sign_in_with_email_code(victim, outbox),
                sign_in_with_recovery_code(victim, recovery[0]),
            ]
        ):
            secrets[f"authorization code {number}"] = code_from(done)
            tokens = exchange(browser, client_secret, done).get_json()
            refreshed = post_token(
                browser.client,
                client_id,
                client_secret,
                grant_type="refresh_token",
                refresh_token=tokens["refresh_token"],
            ).get_json()
            for name, value in [*tokens.items(), *refreshed.items()]:
                if name.endswith("_token"):
                    secrets[f"{name} {number} {value[-8:]}"] = value
            browser.client.post(
                "/introspect", data={"token": refreshed["access_token"]}, auth=(client_id, client_secret)
            )
            browser.client.get("/userinfo", headers={"Authorization": f"Bearer {refreshed['access_token']}"})
            browser.client.post(
                "/revoke", data={"token": refreshed["refresh_token"]}, auth=(client_id, client_secret)
            )
            cookie = browser.client.get_cookie("idp_session")
            assert cookie is not None
            sessions.append(cookie.value)
        post_token(app.test_client(), client_id, "a wrong client secret", grant_type="client_credentials")
    secrets |= {"client secret": client_secret, "wrong client secret": "a wrong client secret"}
    secrets |= {"TOTP secret": victim.authenticator.secret}
    secrets |= {
        f"TOTP code {step}": victim.authenticator.totp.generate_otp(step)
        for step in victim.authenticator.used
    }
    secrets |= {f"recovery code {n}": code for n, code in enumerate(recovery)}
    secrets |= {f"email code {n}": code for n, code in enumerate(codes_in(outbox))}
    secrets |= {f"session id {n}": session for n, session in enumerate(sessions)}
    secrets |= stored_secrets(app)
    assert len(codes_in(outbox)) == 2 and len(logs.records) > 0
    text = logs.text
    leaked = {
        name for name, value in secrets.items() if re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text)
    }
    assert leaked == set()
