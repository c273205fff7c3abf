"""The attacker's side of the in-process provider, and the victim's own devices to show they still get in.

An attacker posts guesses from any address it likes (`environ_base["REMOTE_ADDR"]`, as a botnet
would), plants cookies and collects every page the provider serves; the victim signs in with their
authenticator app or passkey. Addresses come from the documentation ranges (RFC 5737).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from idp.cli import main as idp_main
from idp.oidc.clients import NewClient, register_client
from idp.store.durable import DurableStore
from idp.store.tables import AuditEvent
from idp.web import services
from support.app import REDIRECT_URI, Browser, csrf_token, meta_csrf_token
from support.live import write_config
from support.oidc_client import SECRET, Authenticator
from support.soft_authenticator import SoftAuthenticator

ATTACKER = "203.0.113.66"
VICTIM = "198.51.100.7"
CODE_SUBJECT = re.compile(r"Your code: (\d{6})")
RECOVERY_CODE = re.compile(r"<li><code>([a-z2-7]{4}(?:-[a-z2-7]{4}){3})</code></li>")


def botnet(size: int) -> list[str]:
    """`size` distinct addresses, one per guess when an attacker spreads them out."""
    assert size < 255
    return [f"192.0.2.{host}" for host in range(1, size + 1)]


# -- guessing ------------------------------------------------------------------------------------


@dataclass
class Guesser:
    """One user agent posting guesses to the forms of one sign-in page, never following a redirect:
    401 is a refused guess, 429 a guess refused before it was looked at, 302 an accepted one."""

    browser: Browser
    page: TestResponse

    @classmethod
    def at_password_page(cls, app: Flask, client_id: str) -> Guesser:
        browser = Browser(client_at(app, ATTACKER), client_id)
        page = browser.authorize()
        assert re.fullmatch(r"/signin/[^/]+", page.request.path), page.request.path
        return cls(browser, page)

    @classmethod
    def at_factor_page(cls, app: Flask, client_id: str, username: str, password: str) -> Guesser:
        """An attacker who has the password (phished, reused) and now guesses second factors."""
        browser = Browser(client_at(app, ATTACKER), client_id)
        page = browser.submit(browser.authorize(), username=username, password=password)
        assert page.request.path.endswith("/factor"), page.request.path
        return cls(browser, page)

    @property
    def pending_id(self) -> str:
        return self.page.request.path.split("/")[2]

    def password(self, username: str, password: str, *, address: str = ATTACKER) -> TestResponse:
        return self._post("", address, username=username, password=password)

    def totp(self, code: str, *, address: str = ATTACKER) -> TestResponse:
        return self._post("factor", address, code=code)

    def recovery_code(self, code: str, *, address: str = ATTACKER) -> TestResponse:
        return self._post("recovery", address, recovery_code=code)

    def email_code(self, code: str, *, address: str = ATTACKER) -> TestResponse:
        return self._post("email", address, email_code=code)

    def send_email_code(self, *, address: str = ATTACKER) -> TestResponse:
        return self._post("email/send", address)

    def _post(self, form: str, address: str, **fields: str) -> TestResponse:
        self.browser.client.environ_base["REMOTE_ADDR"] = address
        url = f"/signin/{self.pending_id}/{form}".rstrip("/")
        return self.browser.client.post(url, data={"csrf_token": csrf_token(self.page), **fields})


def client_at(app: Flask, address: str) -> FlaskClient:
    """A test client whose requests come from `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def refusal(response: TestResponse) -> tuple[int, str | None, str]:
    """What a guesser learns from one answer: status, Retry-After and the page's error line."""
    page = response.get_data(as_text=True)
    found = re.search(r'<p class="error"(?: id="form-error")? role="alert">([^<]*)</p>', page)
    return response.status_code, response.headers.get("Retry-After"), found.group(1) if found else ""


def wrong_totp_code(secret: str) -> str:
    """A code that is certainly not right now (nor within any allowed drift)."""
    totp = pyotp.TOTP(secret)
    step = int(time.time()) // 30
    near = {totp.generate_otp(step + offset) for offset in range(-3, 4)}
    return next(code for code in (f"{n:06d}" for n in range(1_000_000)) if code not in near)


# -- the victim ----------------------------------------------------------------------------------


@dataclass
class Victim:
    """A user who enrolled an authenticator app at their first sign-in, on their own browser."""

    app: Flask
    client_id: str
    username: str
    password: str
    authenticator: Authenticator
    browser: Browser

    @classmethod
    def enrolled(
        cls, app: Flask, client_id: str, username: str, password: str, *, browser: Browser | None = None
    ) -> Victim:
        browser = browser or Browser(client_at(app, VICTIM), client_id)
        enrol = browser.submit(browser.authorize(), username=username, password=password)
        secret = SECRET.search(enrol.get_data(as_text=True))
        assert secret, "expected the TOTP enrolment page"
        authenticator = Authenticator(secret.group(1))
        done = browser.save_recovery_codes(
            browser.submit(enrol, code=authenticator.next_code(), name="phone")
        )
        assert done.status_code == 302 and done.location.startswith(REDIRECT_URI), done.location
        return cls(app, client_id, username, password, authenticator, browser)

    def new_browser(self) -> Browser:
        return Browser(client_at(self.app, VICTIM), self.client_id)

    def sign_in(self, browser: Browser | None = None) -> TestResponse:
        """Password, then a fresh code from the app (on a new browser unless given); the last response."""
        browser = browser or self.new_browser()
        factor = browser.submit(browser.authorize(), username=self.username, password=self.password)
        if not factor.request.path.endswith("/factor"):
            return factor
        return browser.submit(factor, code=self.authenticator.next_code())

    def add_passkey(self, key: SoftAuthenticator) -> None:
        """On the account page, right after signing in (so the session is fresh enough)."""
        page = self.browser.client.get("/account/passkeys/new")
        assert page.status_code == 200, page.location
        csrf = meta_csrf_token(page)
        options = self.browser.post_json("/account/passkeys/options", {}, csrf=csrf).get_json()
        added = self.browser.post_json(
            "/account/passkeys", {"credential": key.create(options), "name": "Laptop"}, csrf=csrf
        )
        assert added.status_code == 200, added.get_data(as_text=True)

    def sign_in_with_passkey(self, key: SoftAuthenticator) -> TestResponse:
        """The passkey alone, from the password page (it verifies the user); the last response."""
        browser = self.new_browser()
        answer = passkey_assertion(browser, browser.authorize(), key)
        if answer.status_code != 200:
            return answer
        return browser.follow(browser.client.get(answer.get_json()["redirect"]))

    def generate_recovery_codes(self) -> list[str]:
        page = self.browser.client.get("/account/recovery-codes/new")  # "Generate new recovery codes?"
        generated = self.browser.client.post("/account/recovery-codes", data={"csrf_token": csrf_token(page)})
        codes = RECOVERY_CODE.findall(generated.get_data(as_text=True))
        assert len(codes) == 10, generated.get_data(as_text=True)
        return codes

    def bind_email(self, address: str, outbox: Path) -> None:
        page = self.browser.client.get("/account/email/new")
        self.browser.client.post(
            "/account/email/new", data={"csrf_token": csrf_token(page), "address": address}
        )
        verify = self.browser.client.get("/account/email/verify")
        done = self.browser.client.post(
            "/account/email/verify", data={"csrf_token": csrf_token(verify), "code": newest_code(outbox)}
        )
        assert done.status_code == 302 and done.location.startswith("/account"), done.get_data(as_text=True)


def passkey_assertion(
    browser: Browser, page: TestResponse, key: SoftAuthenticator, **knobs: Any
) -> TestResponse:
    """What webauthn.js does on a sign-in page: fetch the request options, answer them (`knobs` as
    SoftAuthenticator.get takes them, to forge the answer)."""
    pending_id = page.request.path.split("/")[2]
    csrf = meta_csrf_token(page)
    options = browser.post_json(f"/signin/{pending_id}/passkey/options", {}, csrf=csrf)
    assert options.status_code == 200, options.get_data(as_text=True)
    return browser.post_json(
        f"/signin/{pending_id}/passkey", {"credential": key.get(options.get_json(), **knobs)}, csrf=csrf
    )


def newest_code(outbox: Path) -> str:
    """The code in the newest message of the outbox folder (from its subject)."""
    newest = max(outbox.glob("*.eml"), key=lambda path: path.stat().st_mtime_ns)
    message = message_from_bytes(newest.read_bytes(), policy=policy.default)
    found = CODE_SUBJECT.search(str(message["Subject"]))
    assert found, message["Subject"]
    return found.group(1)


# -- the operator --------------------------------------------------------------------------------


def idp_command(directory: Path, *args: str) -> int:
    """`idp --config ... ARGS` over the instance make_app(directory) created (same folders)."""
    config = write_config(directory, port=8000)
    return idp_main(["--config", str(config), *args])


def register(app: Flask, **registration: Any) -> NewClient:
    """A client registered with any metadata (`idp clients create` does the same)."""
    fields: dict[str, Any] = {
        "name": "Another app",
        "redirect_uris": [REDIRECT_URI],
        "public": False,
        "grant_types": [],
        "scope": "openid profile",
        **registration,
    }
    created = register_client(**fields)
    with app.app_context(), services().database.unit_of_work() as session:
        DurableStore.over(session).clients.add(created.client)
    return created


def audit_events(app: Flask, event: str, outcome: str) -> list[AuditEvent]:
    with app.app_context(), services().database.unit_of_work() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.event == event))
        return [row for row in rows if row.outcome == outcome]


# -- watching ------------------------------------------------------------------------------------


def record_every_response(app: Flask) -> list[TestResponse]:
    """Every response any test client of `app` (created from now on) gets, in order."""
    seen: list[TestResponse] = []

    class RecordingClient(FlaskClient):
        def open(self, *args: Any, **kwargs: Any) -> TestResponse:
            response: TestResponse = super().open(*args, **kwargs)
            seen.append(response)
            return response

    app.test_client_class = RecordingClient
    return seen


@dataclass
class EveryLog:
    """Every record any logger emitted, formatted with its arguments, exception and extra fields."""

    records: list[logging.LogRecord] = field(default_factory=list)

    @property
    def text(self) -> str:
        lines = []
        for record in self.records:
            lines.append(logging.Formatter().format(record))
            lines.append(repr({k: v for k, v in vars(record).items() if k != "exc_info"}))
        return "\n".join(lines)


LIBRARY_LOGGERS = ("idp", "authlib", "werkzeug", "flask", "flask_wtf", "sqlalchemy", "urllib3", "redis")


@contextmanager
def every_log(caplog: pytest.LogCaptureFixture) -> Iterator[EveryLog]:
    """The root logger at DEBUG, as an operator chasing a problem would set it, and caplog listening
    also on the library loggers that stopped propagating; the levels the app set stay as they are."""
    caplog.set_level(logging.DEBUG)
    attached = [logging.getLogger(name) for name in LIBRARY_LOGGERS if not logging.getLogger(name).propagate]
    for logger in attached:
        logger.addHandler(caplog.handler)
    seen = EveryLog()
    try:
        yield seen
    finally:
        seen.records.extend(caplog.records)
        for logger in attached:
            logger.removeHandler(caplog.handler)
