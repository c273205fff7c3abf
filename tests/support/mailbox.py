"""Where the provider's mail lands in tests: a real SMTP server on localhost, or the outbox folder.

Both are read the way a person reads their inbox: the newest message with a code, its code taken
from the subject and found again in the plain-text and HTML bodies.
"""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Protocol

from aiosmtpd.controller import Controller
from werkzeug.test import TestResponse

from idp.email_address import canonical_address
from support.app import Browser, code_from

CODE_SUBJECT = re.compile(r"Your code: (\d{6})")


def free_port() -> int:
    """A localhost port nothing listens on (until someone binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Inbox(Protocol):
    @property
    def messages(self) -> list[EmailMessage]: ...


class SmtpServer:
    """A real SMTP server (aiosmtpd) on localhost, without TLS, that keeps every message it accepts.

    It can be stopped and started again on the same port, to be unreachable for a while.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[EmailMessage] = []
        self._controller: Controller | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """The provider's [smtp] section for this server."""
        return {"host": "127.0.0.1", "port": self.port, "security": "none", "timeout": 5}

    def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def handle_DATA(self, _server: object, _session: object, envelope: Any) -> str:
        """aiosmtpd's hook: the message is accepted once it is kept here."""
        self.messages.append(_parse(envelope.content))
        return "250 Message accepted for delivery"


class Outbox:
    """The folder the provider writes .eml files to when no SMTP server is configured."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def files(self) -> list[Path]:
        found = self.directory.glob("*.eml") if self.directory.is_dir() else []
        return sorted(found, key=lambda path: (path.stat().st_mtime_ns, path.name))

    @property
    def messages(self) -> list[EmailMessage]:
        return [_parse(path.read_bytes()) for path in self.files]


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _parse(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def code_messages(inbox: Inbox) -> list[EmailMessage]:
    return [message for message in inbox.messages if CODE_SUBJECT.search(str(message["Subject"]))]


def bodies(message: EmailMessage) -> dict[str, str]:
    """The message's text parts by type, e.g. {"text/plain": ..., "text/html": ...}."""
    return {
        part.get_content_type(): str(part.get_content())
        for part in message.walk()
        if part.get_content_maintype() == "text"
    }


def latest_code(inbox: Inbox, *, to: str) -> str:
    """The code in the newest code message to `to`: in its subject and in both of its bodies."""
    mine = [message for message in code_messages(inbox) if message["To"] == to]
    assert mine, f"no code was mailed to {to}"
    message = mine[-1]
    found = CODE_SUBJECT.search(str(message["Subject"]))
    assert found is not None
    code = found.group(1)
    parts = bodies(message)
    assert set(parts) == {"text/plain", "text/html"}, parts.keys()
    assert all(code in body for body in parts.values()), "both bodies carry the code of the subject"
    return code


def submit_form(browser: Browser, page: TestResponse, action_suffix: str, **fields: str) -> TestResponse:
    """Submit the one form of a page with several (the factor page) whose action ends so."""
    actions = re.findall(r'<form method="post" action="([^"]+)"', page.get_data(as_text=True))
    (action,) = [action for action in actions if action.endswith(action_suffix)] or [None]
    assert action is not None, f"no form posts to …{action_suffix} on this page: {actions}"
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert token is not None
    return browser.follow(browser.client.post(action, data={"csrf_token": token.group(1), **fields}))


def bind_address(browser: Browser, inbox: Inbox, address: str) -> TestResponse:
    """Add an email address on the account pages, with the code mailed to it (its canonical form);
    returns /account."""
    form = browser.follow(browser.client.get("/account/email/new"))
    assert form.status_code == 200 and "Add an email address" in form.get_data(as_text=True)
    confirm = browser.submit(form, address=address)
    assert confirm.status_code == 200, confirm.get_data(as_text=True)
    assert "We sent a 6-digit code" in confirm.get_data(as_text=True)
    return browser.submit(confirm, code=latest_code(inbox, to=canonical_address(address)))


def sign_in_and_bind(browser: Browser, inbox: Inbox, *, username: str, password: str, address: str) -> None:
    """A first sign-in (enrolling TOTP), then `address` bound on the account pages."""
    code_from(browser.sign_in_with_enrolment(username, password)[0])
    overview = bind_address(browser, inbox, address)
    assert f"{canonical_address(address)} is verified." in overview.get_data(as_text=True)


# -- no network ----------------------------------------------------------------------------------

_network_forbidden: list[bool] = []


def _refuse_network(event: str, args: tuple[Any, ...]) -> None:
    if _network_forbidden and event in {"socket.connect", "socket.getaddrinfo"}:
        raise AssertionError(f"network used where none should be: {event} {args!r}")


sys.addaudithook(_refuse_network)  # audit hooks cannot be removed: this one acts only inside no_network()


@contextmanager
def no_network() -> Iterator[None]:
    """Fail any socket connection or name lookup made in the block."""
    _network_forbidden.append(True)
    try:
        yield
    finally:
        _network_forbidden.pop()
