"""For step-up tests: members who hold a passkey, sessions that age, and passkey ceremonies over HTTP.

In process (a Flask test client driving the hosted pages, as webauthn.js would) and against a live
provider (requests + the software authenticator), plus what a resource server needs to be tested:
access tokens forged with the provider's own key, and a provider restart after a key rotation.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import jwt
import requests
from flask import Flask
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey
from joserfc.jws import JWSRegistry
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.test import TestResponse

from idp.oidc.keys import KeyRing
from idp.web import services
from support import oidc_client
from support.account import Authenticator
from support.app import REDIRECT_URI, Browser, add_user, code_from, meta_csrf_token
from support.hostile import b64url
from support.live import LiveProvider
from support.mailbox import Inbox, latest_code
from support.soft_authenticator import SoftAuthenticator

PASSWORD = "a long enough password"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PASSKEY_BUTTON = 'data-passkey="authenticate"'


# -- in process: the provider, its clients and its members ------------------------------------------


@dataclass(frozen=True)
class RelyingParty:
    """One registered client of an in-process provider."""

    app: Flask
    client_id: str
    secret: str

    def browser(self) -> Browser:
        """A fresh user agent: its own cookies, no session."""
        return Browser(self.app.test_client(), self.client_id)

    def on(self, browser: Browser) -> Browser:
        """The same user agent (its cookies, its session) sending this client's requests."""
        return Browser(browser.client, self.client_id)

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662 as a resource server holding this client's credentials asks."""
        response = self.app.test_client().post(
            "/introspect", data={"token": token}, auth=(self.client_id, self.secret)
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        answer: dict[str, Any] = response.get_json()
        return answer

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        response = self.app.test_client().post(
            "/token",
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(self.client_id, self.secret),
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        tokens: dict[str, Any] = response.get_json()
        return tokens

    def rows(self, model: type) -> list[Any]:
        with self.app.app_context(), services().database.unit_of_work() as session:
            return list(session.scalars(select(model)))


@dataclass
class Member:
    """A user signed in with password + TOTP in `browser`, holding `passkey` when they added one."""

    relying_party: RelyingParty
    browser: Browser
    username: str
    totp: Authenticator
    passkey: SoftAuthenticator | None = None

    def authorize(self, relying_party: RelyingParty | None = None, **params: str) -> TestResponse:
        """This member's user agent sends an authorization request (by default for the first client)."""
        self.browser = (relying_party or self.relying_party).on(self.browser)
        return self.browser.authorize(**params)

    def tokens(self, done: TestResponse, relying_party: RelyingParty | None = None) -> dict[str, Any]:
        """The client's redirect turned into tokens (code + PKCE verifier at the token endpoint)."""
        return self.browser.redeem(code_from(done), (relying_party or self.relying_party).secret)

    def id_token(self, done: TestResponse, relying_party: RelyingParty | None = None) -> dict[str, Any]:
        return self.browser.id_token_claims(self.tokens(done, relying_party)["id_token"])

    def silently(self, **params: str) -> dict[str, Any]:
        """A prompt=none request the session must answer by itself: the ID token it yields."""
        return self.id_token(self.authorize(None, prompt="none", **params))

    def enter_code(self, factor_page: TestResponse) -> TestResponse:
        return self.browser.submit(factor_page, code=self.totp.code())

    def use_passkey(self, factor_page: TestResponse) -> TestResponse:
        """Press the page's passkey button: options, the authenticator's assertion, then the redirect."""
        assert self.passkey is not None, "this member has no passkey"
        options = passkey_options(self.browser, factor_page)
        answer = send_assertion(self.browser, factor_page, self.passkey.get(options))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return self.browser.follow(self.browser.client.get(answer.get_json()["redirect"]))


def member(relying_party: RelyingParty, username: str, *, passkey: SoftAuthenticator | None = None) -> Member:
    """A new user's first sign-in (password, TOTP enrolled on the way), then the passkey if given."""
    add_user(relying_party.app, username, PASSWORD)
    browser = relying_party.browser()
    done, secret = browser.sign_in_with_enrolment(username, PASSWORD)
    code_from(done)
    totp = Authenticator(secret)
    totp.spent_now()
    joined = Member(relying_party, browser, username, totp)
    if passkey is not None:
        add_passkey_on_account_page(browser, passkey)
        joined.passkey = passkey
    return joined


def add_passkey_on_account_page(browser: Browser, authenticator: SoftAuthenticator) -> None:
    page = browser.client.get("/account/passkeys/new")
    assert page.status_code == 200, page.location
    csrf = meta_csrf_token(page)
    options = browser.post_json("/account/passkeys/options", {}, csrf=csrf)
    assert options.status_code == 200, options.get_data(as_text=True)
    credential = authenticator.create(options.get_json())
    added = browser.post_json("/account/passkeys", {"credential": credential, "name": "Laptop"}, csrf=csrf)
    assert added.status_code == 200, added.get_data(as_text=True)


def age_proofs(browser: Browser, *, seconds: int) -> None:
    """Make everything the session proved older, as if it had happened `seconds` ago."""
    with browser.client.session_transaction() as session:
        state = session["auth"]
        for proof in state["proofs"]:
            proof["at"] -= seconds
        session["auth"] = state


def registration_options(browser: Browser) -> tuple[dict[str, Any], str]:
    """What webauthn.js does first on /account/passkeys/new: fetch the creation options."""
    page = browser.client.get("/account/passkeys/new")
    assert page.status_code == 200, page.location
    csrf = meta_csrf_token(page)
    options = browser.post_json("/account/passkeys/options", {}, csrf=csrf)
    assert options.status_code == 200, options.get_data(as_text=True)
    return options.get_json(), csrf


def pending_id(page: TestResponse) -> str:
    return page.request.path.split("/")[2]


def passkey_options(browser: Browser, page: TestResponse) -> dict[str, Any]:
    response = browser.post_json(
        f"/signin/{pending_id(page)}/passkey/options", {}, csrf=meta_csrf_token(page)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    options: dict[str, Any] = response.get_json()
    return options


def send_assertion(browser: Browser, page: TestResponse, credential: dict[str, Any]) -> TestResponse:
    return browser.post_json(
        f"/signin/{pending_id(page)}/passkey", {"credential": credential}, csrf=meta_csrf_token(page)
    )


# -- what a page offers, what a client got back -----------------------------------------------------


def is_password_page(page: TestResponse) -> bool:
    return page.status_code == 200 and page.request.path.count("/") == 2 and 'name="password"' in page.text


def is_factor_page(page: TestResponse) -> bool:
    return page.status_code == 200 and page.request.path.endswith("/factor")


def offered(page: TestResponse | requests.Response) -> set[str]:
    """The ways a hosted page offers to go on: password, passkey, totp, email_code, recovery_code."""
    text = page.text
    found = {
        "password": 'name="password"' in text,
        "passkey": PASSKEY_BUTTON in text,
        "totp": 'name="code"' in text,
        "email_code": "/email/send" in text or 'name="email_code"' in text,
        "recovery_code": 'name="recovery_code"' in text,
    }
    return {name for name, present in found.items() if present}


def lead(page: TestResponse | requests.Response) -> str:
    """The page's lead paragraph as text: why the user is asked."""
    found = re.search(r'<p class="lead">(.*?)</p>', page.text, re.S)
    assert found, "the page has no lead paragraph"
    return " ".join(re.sub(r"<[^>]+>", "", found.group(1)).split())


def callback_params(response: TestResponse) -> dict[str, str]:
    """The parameters of a redirect to the client's redirect URI."""
    assert response.status_code == 302 and response.location.startswith(REDIRECT_URI), (
        response.status_code,
        response.location,
    )
    return dict(parse_qsl(urlsplit(response.location).query))


def header_of(token: str) -> dict[str, Any]:
    header: dict[str, Any] = jwt.get_unverified_header(token)
    return header


# -- against a live provider: the CLI, passkeys over HTTP ---------------------------------------------


def cli_client(
    live: LiveProvider, name: str, *options: str, redirect_uri: str | None = None
) -> oidc_client.Client:
    """`idp clients create --json`; a client with a redirect URI unless it is a machine client."""
    machine = "client_credentials" in options
    uri = "" if machine else redirect_uri or f"http://127.0.0.1/{name}/callback"
    uri_option = () if machine else ("--redirect-uri", uri)
    done = live.idp("clients", "create", "--name", name, *uri_option, "--json", *options)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    return oidc_client.Client(created["client_id"], uri, created.get("client_secret"))


def exchanged(
    op: oidc_client.OpenIdProvider, attempt: oidc_client.Attempt, response: requests.Response
) -> dict[str, Any]:
    """The client's half: check state and iss on the callback, then redeem the code."""
    callback = attempt.callback(response)
    assert callback.get("state") == attempt.state and callback.get("iss") == op.issuer, callback
    answer = op.exchange(attempt, callback["code"])
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


def page_csrf(page: requests.Response) -> str:
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert found, f"no csrf-token meta element at {page.url}"
    return found.group(1)


def post_json(
    browser: oidc_client.Browser, url: str, body: dict[str, Any], *, csrf: str
) -> requests.Response:
    """What webauthn.js sends: JSON, with the page's CSRF token in X-CSRFToken."""
    return browser.http.post(
        url, json=body, headers={"X-CSRFToken": csrf}, allow_redirects=False, timeout=oidc_client.TIMEOUT
    )


def add_passkey_over_http(browser: oidc_client.Browser, authenticator: SoftAuthenticator) -> None:
    issuer = browser.provider.issuer
    page = browser.visit(f"{issuer}/account/passkeys/new")
    assert page.status_code == 200 and 'data-passkey="register"' in page.text, page.url
    csrf = page_csrf(page)
    options = post_json(browser, f"{issuer}/account/passkeys/options", {}, csrf=csrf)
    assert options.status_code == 200, options.text
    credential = authenticator.create(options.json())
    added = post_json(
        browser, f"{issuer}/account/passkeys", {"credential": credential, "name": "Key"}, csrf=csrf
    )
    assert added.status_code == 200, added.text


def bind_email_over_http(browser: oidc_client.Browser, inbox: Inbox, address: str) -> None:
    """Add `address` on the account pages with the code mailed to it (needs a fresh sign-in)."""
    form = browser.visit(f"{browser.provider.issuer}/account/email/new")
    assert form.status_code == 200 and 'name="address"' in form.text, form.url
    sent = browser.submit(form, address=address)
    assert "We sent a 6-digit code" in sent.text, sent.text
    bound = browser.submit(sent, code=latest_code(inbox, to=address))
    assert f"{address} is verified." in bound.text, bound.text


def use_passkey_over_http(
    browser: oidc_client.Browser, page: requests.Response, authenticator: SoftAuthenticator
) -> requests.Response:
    """Answer a sign-in page's passkey button; returns where the provider then sends the user agent."""
    base = page.url.split("?")[0].removesuffix("/factor")
    csrf = page_csrf(page)
    options = post_json(browser, f"{base}/passkey/options", {}, csrf=csrf)
    assert options.status_code == 200, options.text
    answer = post_json(
        browser, f"{base}/passkey", {"credential": authenticator.get(options.json())}, csrf=csrf
    )
    assert answer.status_code == 200, answer.text
    return browser.visit(urljoin(page.url, answer.json()["redirect"]))


@dataclass
class LiveMember:
    """A user of a live provider: password + TOTP in `browser`, a passkey once added."""

    account: oidc_client.Account
    browser: oidc_client.Browser
    passkey: SoftAuthenticator

    def sign_in(self, client: oidc_client.Client) -> dict[str, Any]:
        """The first sign-in (password, TOTP enrolled on the way): tokens at mfa."""
        attempt = self.browser.authorize(client)
        return exchanged(self.browser.provider, attempt, self.first_sign_in(attempt.page))

    def first_sign_in(self, page: requests.Response) -> requests.Response:
        """From the password page: the password, then TOTP enrolment; returns the redirect to the client."""
        assert oidc_client.is_password_page(page), page.text
        enrolment = self.browser.submit(page, username=self.account.username, password=self.account.password)
        assert oidc_client.is_enrolment_page(enrolment), enrolment.text
        self.account.authenticator = oidc_client.Authenticator(oidc_client.enrolment_secret(enrolment))
        return self.browser.submit(enrolment, code=self.account.authenticator.next_code())

    def step_up(self, client: oidc_client.Client, **params: str) -> dict[str, Any]:
        """A request the session cannot meet without the passkey: the factor page, the passkey, tokens."""
        attempt = self.browser.authorize(client, **params)
        assert offered(attempt.page) == {"passkey"}, attempt.page.text
        return exchanged(
            self.browser.provider, attempt, use_passkey_over_http(self.browser, attempt.page, self.passkey)
        )


def live_member(live: LiveProvider, op: oidc_client.OpenIdProvider, role: str) -> LiveMember:
    """A new account (`idp users create`), its own user agent, and a passkey for the live origin."""
    return LiveMember(
        oidc_client.create_account(live, role), oidc_client.Browser(op), SoftAuthenticator(origin=live.issuer)
    )


def restart(provider: LiveProvider) -> LiveProvider:
    """Stop `idp serve` and start it again on the same port and settings (it reloads its keys)."""
    provider.stop()
    port = str(urlsplit(provider.issuer).port)
    log = (provider.config.parent / "idp-serve.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "idp", "--config", str(provider.config), "serve", "--port", port],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    restarted = LiveProvider(issuer=provider.issuer, config=provider.config, process=process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "idp serve exited after the restart"
        try:
            if requests.get(f"{provider.issuer}/health", timeout=1).status_code == 200:
                return restarted
        except requests.RequestException:
            time.sleep(0.2)
    restarted.stop()
    raise AssertionError("idp serve did not come back within 30 s")


def provider_key(keys_directory: Path) -> ECKey:
    """The provider's active ES256 signing key, read from its keys directory."""
    key = KeyRing.load(keys_directory).signing_key("ES256")
    assert isinstance(key, ECKey)
    return key


def forge_access_token(key: ECKey, claims: dict[str, Any], **header: str) -> str:
    """A JWT signed with `key` that says exactly what we choose (typ at+jwt unless told otherwise)."""
    fields = {"typ": "at+jwt", "alg": "ES256", "kid": key.kid or "", **header}
    return jose_jwt.encode(fields, claims, key, algorithms=["ES256"])


def sign_compact(key: ECKey, header: bytes, payload: bytes) -> str:
    """A compact JWS (RFC 7515 7.1) over exactly these bytes, signed ES256 with `key`: JOSE libraries
    refuse to sign a malformed header, yet a resource server must refuse one that is signed."""
    signing_input = f"{b64url(header)}.{b64url(payload)}"
    return f"{signing_input}.{b64url(JWSRegistry.algorithms['ES256'].sign(signing_input.encode(), key))}"


def unverified_claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


# -- the examples: imported with their environment, served on a real port -----------------------------


def load_example(name: str, **environ: str) -> ModuleType:
    """examples/<name>.py as a fresh module; it reads its settings from the environment at import, and
    imports its neighbours (redacted_log) as when run as a script, with examples/ on the path."""
    spec = importlib.util.spec_from_file_location(f"{name}_{uuid.uuid4().hex[:8]}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = {key: os.environ.get(key) for key in environ}
    os.environ.update(environ)
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return module


@contextmanager
def serving(app: Any, port: int) -> Iterator[str]:
    """A WSGI app on 127.0.0.1:`port` in a thread, for the duration of the block."""
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
