"""The browser session is read when first used, with the sign-in its page names, in one round trip;
a session started for a sign-in holds its CSRF secret from its first write.

Counted on the real stores (each store call is one round trip on Redis), and the attacker's side:
a CSRF token seen before the password step is refused after it.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from support.account import sign_in
from support.app import Browser, add_client, csrf_token, make_app
from werkzeug.test import TestResponse

from idp.store.ephemeral import EphemeralStore
from idp.web import services

PASSWORD = "a long enough password"
COOKIE = "idp_session"


@pytest.fixture(params=["redis", "embedded"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Flask:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    return make_app(tmp_path, redis={"url": redis_url})


class StoreCalls:
    """Counts the calls the app makes on its ephemeral store (each passed on to the real store)."""

    def __init__(self, store: EphemeralStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.keys: list[list[str]] = []
        for name in ("get", "get_many", "put", "take", "incr", "delete", "reserve", "refund"):
            monkeypatch.setattr(store, name, self._counted(name, getattr(store, name)))

    def _counted(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name == "get_many":
                self.keys.append(list(args[0]))
            return method(*args, **kwargs)

        return counted

    def during(self, request: Callable[[], TestResponse]) -> TestResponse:
        self.calls.clear()
        self.keys.clear()
        return request()


@pytest.fixture
def calls(app: Flask, monkeypatch: pytest.MonkeyPatch) -> StoreCalls:
    with app.app_context():
        return StoreCalls(services().ephemeral, monkeypatch)


def started(app: Flask) -> tuple[Browser, str]:
    """A fresh browser sent from /authorize to the password page of alice, who has an authenticator
    app, and that page's path."""
    client_id = add_client(app)[0]
    sign_in(app, client_id, "alice", PASSWORD)
    browser = Browser(app.test_client(), client_id)
    return browser, browser.authorize().request.path


def test_a_sign_in_page_reads_its_sign_in_with_the_session_in_one_round_trip(
    app: Flask, calls: StoreCalls
) -> None:
    browser, path = started(app)
    page = calls.during(lambda: browser.client.get(path))
    assert page.status_code == 200 and 'name="password"' in page.get_data(as_text=True)
    assert calls.calls == {"get_many": 1}, calls.calls
    [keys] = calls.keys
    assert keys[0].startswith("session:") and keys[1] == "authz:" + path.split("/")[2]
    assert COOKIE not in page.headers.get("Set-Cookie", ""), "the page rewrote the session"


def test_the_factor_page_after_the_password_writes_no_session(app: Flask, calls: StoreCalls) -> None:
    """The session started over at the password step already holds the next form's CSRF secret."""
    browser, path = started(app)
    factor = browser.client.post(
        path,
        data={"csrf_token": csrf_token(browser.client.get(path)), "username": "alice", "password": PASSWORD},
    )
    assert factor.status_code == 302, factor.status_code
    page = calls.during(lambda: browser.client.get(factor.location))
    assert page.status_code == 200 and 'name="code"' in page.get_data(as_text=True)
    assert calls.calls["put"] == 0 and COOKIE not in page.headers.get("Set-Cookie", "")


def test_a_request_that_never_uses_its_session_reads_nothing(app: Flask, calls: StoreCalls) -> None:
    browser, _path = started(app)
    assert browser.client.get_cookie(COOKIE) is not None
    stylesheet = calls.during(lambda: browser.client.get("/branding.css"))
    assert stylesheet.status_code == 200 and sum(calls.calls.values()) == 0, calls.calls


def test_a_csrf_token_seen_before_the_password_is_refused_after_it(app: Flask) -> None:
    """Whoever saw (or planted) the anonymous session's token cannot post as the signed-in user."""
    browser, path = started(app)
    before = csrf_token(browser.client.get(path))
    factor = browser.client.post(path, data={"csrf_token": before, "username": "alice", "password": PASSWORD})
    assert factor.status_code == 302, factor.status_code
    refused = browser.client.post(factor.location, data={"csrf_token": before, "code": "123456"})
    assert refused.status_code == 400 and "This form has expired" in refused.get_data(as_text=True)
    fresh = csrf_token(browser.follow(browser.client.get(factor.location)))
    assert fresh != before
