"""For the account pages in process: a signed-in user with their authenticator app, and their mail."""

from __future__ import annotations

import email
import email.policy
import html
import re
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pyotp
from flask import Flask
from sqlalchemy import select
from werkzeug.test import TestResponse

from idp.store.tables import AuditEvent, Factor, User
from idp.web import services
from support.app import Browser, add_user, code_from, csrf_token

STEP = 30


@dataclass
class Authenticator:
    """An authenticator app that never repeats a time step: the provider accepts each step once."""

    secret: str
    used: set[int] = field(default_factory=set)

    def code(self) -> str:
        """A code for the earliest step within one step of drift (drift_steps = 1) that is later than
        every step used (the provider refuses a spent step and any before it); when none is left, wait
        for the next step to begin, as a person would."""
        while True:
            if time.time() % STEP > STEP - 1:
                time.sleep(1.1)  # not at a step boundary: the provider must see the same step
            now = int(time.time()) // STEP
            for step in (now - 1, now, now + 1):
                if step > max(self.used, default=step - 1):
                    self.used.add(step)
                    return pyotp.TOTP(self.secret).at(step * STEP)
            time.sleep(STEP - time.time() % STEP + 0.1)

    def spent_now(self) -> None:
        """The code of this moment was just used (by a sign-in outside this helper)."""
        self.used |= {int(time.time()) // STEP, int(time.time() - 1) // STEP}


@dataclass
class Account:
    """A user signed in through the hosted pages, driving /account with one test client."""

    app: Flask
    browser: Browser
    username: str
    password: str
    authenticator: Authenticator

    def get(self, path: str) -> TestResponse:
        return self.browser.follow(self.browser.client.get(path))

    def post(self, action: str, *, follow: bool = True, **fields: str) -> TestResponse:
        """Submit the form whose action is `action`, with a CSRF token from the account page."""
        token = csrf_token(self.browser.client.get("/account"))
        response = self.browser.client.post(action, data={"csrf_token": token, **fields})
        return self.browser.follow(response) if follow else response

    def reauthenticate(self, path: str) -> TestResponse:
        """Open a page that has everything proven again (the password page): the current password,
        then a code; returns the page itself."""
        password_page = self.get(path)
        assert re.fullmatch(r"/signin/[^/]+", password_page.request.path), password_page.request.path
        factor_page = self.browser.submit(password_page, username=self.username, password=self.password)
        page = self.browser.submit(factor_page, code=self.authenticator.code())
        assert page.request.path == path, page.request.path
        return page

    def change_password(self, new: str, repeat: str | None = None, **fields: str) -> TestResponse:
        """The password page, reauthenticated, then its form posted."""
        self.reauthenticate("/account/password")
        return self.post(
            "/account/password", password=new, repeat=new if repeat is None else repeat, **fields
        )

    def sign_in_again(self, browser: Browser) -> TestResponse:
        """Another browser signs in as this user with password and a code; returns the client's redirect."""
        factor_page = browser.submit(browser.authorize(), username=self.username, password=self.password)
        return browser.submit(factor_page, code=self.authenticator.code())

    def add_totp(self, name: str) -> tuple[TestResponse, Authenticator]:
        form = self.get("/account/totp/new")
        added = Authenticator(secret_on(form))
        return self.post("/account/totp/new", name=name, code=added.code()), added

    def factors(self) -> dict[str, str]:
        """The overview's sign-in methods: name -> factor id."""
        listed = re.findall(
            r'data-factor-id="([^"]+)">\s*<div>\s*<strong>([^<]*)</strong>', text(self.get("/account"))
        )
        return {html.unescape(name): factor_id for factor_id, name in listed}

    def generate_recovery_codes(self) -> list[str]:
        shown = self.post("/account/recovery-codes")
        return re.findall(r"<li><code>([^<]+)</code></li>", text(shown))

    def bind_email(self, address: str, outbox: Outbox) -> TestResponse:
        self.post("/account/email/new", address=address)
        (message,) = outbox.new_messages()
        return self.post("/account/email/verify", code=code_in(message))

    def user(self) -> User:
        (found,) = rows(self.app, User)
        return found


def sign_in(app: Flask, client_id: str, username: str = "alice", password: str = "") -> Account:
    """A new user who signs in (enrolling TOTP on the way) and so holds a fresh MFA session."""
    password = password or "a long enough password"
    add_user(app, username, password)
    browser = Browser(app.test_client(), client_id)
    done, secret = browser.sign_in_with_enrolment(username, password)
    code_from(done)
    authenticator = Authenticator(secret)
    authenticator.spent_now()
    return Account(app, browser, username, password, authenticator)


def secret_on(page: TestResponse) -> str:
    found = re.search(r'id="secret">([A-Z2-7]+)<', text(page))
    assert found, "expected a page with a TOTP key"
    return found.group(1)


def text(page: TestResponse) -> str:
    return page.get_data(as_text=True)


def notice(page: TestResponse) -> str:
    found = re.search(r'<p class="notice" role="status">([^<]*)</p>', text(page))
    return html.unescape(found.group(1)) if found else ""


def error(page: TestResponse) -> str:
    found = re.search(r'<p class="error"(?: id="form-error")? role="alert">([^<]*)</p>', text(page))
    return html.unescape(found.group(1)) if found else ""


def rows(app: Flask, model: type[Any]) -> list[Any]:
    with app.app_context(), services().database.unit_of_work() as session:
        found = list(session.scalars(select(model)))
        session.expunge_all()
        return found


def audit_events(app: Flask, event: str) -> list[AuditEvent]:
    return [row for row in rows(app, AuditEvent) if row.event == event]


def factor_kinds(app: Flask) -> list[str]:
    return sorted(factor.kind for factor in rows(app, Factor))


@dataclass
class Outbox:
    """The .eml files the provider writes when no SMTP server is configured."""

    directory: Path
    seen: set[Path] = field(default_factory=set)

    @classmethod
    def of(cls, app: Flask) -> Outbox:
        with app.app_context():
            return cls(services().settings.outbox)

    def new_messages(self) -> list[EmailMessage]:
        """Messages written since the last call, oldest first."""
        found = sorted(
            set(self.directory.glob("*.eml")) - self.seen, key=lambda path: path.stat().st_mtime_ns
        )
        self.seen |= set(found)
        return [
            email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for path in found
        ]


def code_in(message: EmailMessage) -> str:
    found = re.search(r"Your code is (\d{6})", body_of(message))
    assert found, "expected a message with a code"
    return found.group(1)


def body_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def history_rows(page: TestResponse) -> list[str]:
    """The history table's rows as text, one string a row with single spaces."""
    found = re.findall(r'<tr class="event">(.*?)</tr>', text(page), re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split()) for row in found]


def session_rows(page: TestResponse) -> dict[str, str]:
    """The sessions page: sid -> the row's text."""
    found = re.findall(r'<li class="session" data-sid="([^"]+)">(.*?)</li>', text(page), re.S)
    return {sid: " ".join(html.unescape(re.sub(r"<[^>]+>", " ", row)).split()) for sid, row in found}
