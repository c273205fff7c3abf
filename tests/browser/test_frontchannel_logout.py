"""Front-Channel Logout 1.0 in Chromium: the signed-out page really loads the client's logout page in
its hidden iframe (the page's CSP lets it frame that origin), then continues to the client."""

from __future__ import annotations

import queue
from collections.abc import Iterator

import pytest
from flask import Flask, request
from playwright.sync_api import Browser, Page
from support.live import LiveProvider, free_port
from support.oidc_client import Browser as Http
from support.oidc_client import OpenIdProvider, create_account
from support.step_up import cli_client, serving, unverified_claims


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


def test_the_signed_out_page_loads_the_front_channel_uri_in_chromium_then_returns(
    provider: LiveProvider, page: Page
) -> None:
    framed: queue.Queue[dict[str, str]] = queue.Queue()
    app = Flask(__name__)

    @app.get("/frontchannel-logout")
    def frontchannel_logout() -> str:
        framed.put(dict(request.args))
        return "<!doctype html><title>signed out of the app</title>"

    @app.get("/bye")
    def bye() -> str:
        return "<!doctype html><title>bye</title><p id='bye'>Back at the app</p>"

    with serving(app, free_port()) as base:
        client = cli_client(
            provider,
            "framed",
            "--frontchannel-logout-uri",
            f"{base}/frontchannel-logout",
            "--frontchannel-logout-session-required",
            "--post-logout-redirect-uri",
            f"{base}/bye",
        )
        op = OpenIdProvider(provider.issuer)
        signed_in = Http(op)
        attempt, callback = signed_in.sign_in(client, create_account(provider, "framed"))
        id_token = op.exchange(attempt, callback["code"]).json()["id_token"]
        page.context.add_cookies(
            [{"name": c.name, "value": c.value or "", "url": provider.issuer} for c in signed_in.http.cookies]
        )

        page.goto(
            f"{op.endpoint('end_session')}?id_token_hint={id_token}&post_logout_redirect_uri={base}/bye"
        )

        page.wait_for_url(f"{base}/bye", timeout=15_000)
        loaded = framed.get(timeout=5)
        assert loaded == {"iss": provider.issuer, "sid": unverified_claims(id_token)["sid"]}
