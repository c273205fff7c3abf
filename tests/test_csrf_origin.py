"""CSRF under TLS: real browsers send no Referer (no-referrer), so the Origin header is what is checked."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from support.app import Browser, add_client, add_user, make_app

ISSUER = "https://id.example.test"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    """Behind a TLS-terminating proxy on this machine: requests arrive as https."""
    return make_app(tmp_path, issuer=ISSUER, server={"trusted_proxies": ("127.0.0.1/32",)})


def browser_over_tls(app: Flask, *, origin: str | None) -> Browser:
    """A browser on https with no Referer (as under no-referrer), sending `origin` with every request."""
    client = app.test_client()
    client.environ_base.update(
        {
            "HTTP_X_FORWARDED_FOR": "192.0.2.1",
            "HTTP_X_FORWARDED_PROTO": "https",
            "HTTP_X_FORWARDED_HOST": "id.example.test",
        }
    )
    if origin is not None:
        client.environ_base["HTTP_ORIGIN"] = origin
    client_id, _secret = add_client(app)
    return Browser(client, client_id)


@pytest.mark.parametrize("origin", [ISSUER, "null", None], ids=["our origin", "opaque (no-referrer)", "none"])
def test_a_browser_over_https_without_referer_signs_in(app: Flask, origin: str | None) -> None:
    add_user(app, "alice", PASSWORD)
    browser = browser_over_tls(app, origin=origin)
    enrol = browser.submit(browser.authorize(), username="alice", password=PASSWORD)
    assert enrol.status_code == 200 and 'id="secret"' in enrol.get_data(as_text=True)


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "http://id.example.test", "https://id.example.test:8443"]
)
def test_a_form_posted_from_another_origin_is_refused(app: Flask, origin: str) -> None:
    add_user(app, "alice", PASSWORD)
    browser = browser_over_tls(app, origin=origin)
    refused = browser.submit(browser.authorize(), username="alice", password=PASSWORD)
    assert refused.status_code == 400
