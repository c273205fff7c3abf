"""The demo app (examples/demo_rp.py) as a back-channel logout receiver, against a live provider.

Two demo apps share one browser's single sign-on: signing out of one ends the other's session
through the provider's logout_token, and that app's refresh token stops working. The receiver
refuses what an attacker could post to it: tokens signed by another key, for another app, passing an
ID token off as a logout token, replays.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient
from joserfc.jwk import ECKey
from support.live import LiveProvider, free_port, provider_on_real_stores
from support.oidc_client import Account, Browser, Client, OpenIdProvider, create_account, location
from support.step_up import cli_client, forge_access_token, load_example, provider_key, serving

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    with provider_on_real_stores(
        tmp_path_factory.mktemp("demo-logout"), database_prefix="idp_demo_logout_"
    ) as provider:
        yield provider


@dataclass
class DemoApp:
    """One demo app: registered with the CLI, served on its port (where the provider POSTs), and
    used by the test as the user's browser uses it (its cookie jar)."""

    client: Client
    module: ModuleType
    browser: FlaskClient

    def sign_in(self, user: Browser, account: Account) -> None:
        page = user.visit(self.browser.get("/login").location)
        done = page if page.is_redirect else user.pass_sign_in(page, account)
        callback = urlsplit(location(done) or "")
        assert callback.path == "/callback", done.text
        assert self.browser.get(f"/callback?{callback.query}").location == "/"
        assert self.signed_in()

    def signed_in(self) -> bool:
        return 'id="signed-in"' in self.browser.get("/").text

    def session(self) -> dict[str, Any]:
        with self.browser.session_transaction() as session:
            return dict(session)


@pytest.fixture
def demo_apps(live: LiveProvider) -> Iterator[tuple[DemoApp, DemoApp]]:
    apps = []
    servers = []
    for name in ("console", "reports"):
        port = free_port()
        base = f"http://localhost:{port}"
        client = cli_client(
            live,
            f"demo-{name}",
            "--public",
            "--post-logout-redirect-uri",
            f"{base}/",
            "--backchannel-logout-uri",
            f"{base}/backchannel-logout",
            "--backchannel-logout-session-required",
            redirect_uri=f"{base}/callback",
        )
        module = load_example(
            "demo_rp", DEMO_ISSUER=live.issuer, DEMO_CLIENT_ID=client.client_id, DEMO_PORT=str(port)
        )
        servers.append(serving(module.app, port))
        servers[-1].__enter__()
        apps.append(DemoApp(client, module, module.app.test_client()))
    try:
        yield apps[0], apps[1]
    finally:
        for server in servers:
            server.__exit__(None, None, None)


def test_signing_out_of_one_demo_app_ends_the_session_in_the_other_and_its_refresh_token_stops(
    live: LiveProvider, op: OpenIdProvider, demo_apps: tuple[DemoApp, DemoApp]
) -> None:
    console, reports = demo_apps
    user, account = Browser(op), create_account(live, "demo-user")
    console.sign_in(user, account)
    reports.sign_in(user, account)  # single sign-on: no password asked
    refresh_token = reports.session()["refresh_token"]
    assert op.refresh(reports.client, refresh_token).status_code == 200
    refresh_token = reports.session()["refresh_token"]

    leaving = console.browser.get("/logout")
    back = user.http.get(leaving.location, allow_redirects=False)
    assert back.status_code == 302 and back.headers["Location"] == f"{console.module.BASE}/"

    deadline = time.monotonic() + 20
    while reports.signed_in():
        assert time.monotonic() < deadline, "the reports app hears of the sign-out through its back channel"
        time.sleep(0.2)
    assert "refresh_token" not in reports.session(), "its local session is gone"
    refused = op.refresh(reports.client, refresh_token)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


# -- what the demo receiver refuses ------------------------------------------------------------------


def logout_claims(issuer: str, client_id: str, sid: str, sub: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + 120,
        "jti": uuid.uuid4().hex,
        "sub": sub,
        "sid": sid,
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }


def _without(name: str) -> Any:
    return lambda claims: {key: value for key, value in claims.items() if key != name}


FORGERIES = [
    pytest.param("other-key", lambda c: c, id="fails because another key signed it"),
    pytest.param("typ:JWT", lambda c: c, id="fails because its typ says it is no logout token"),
    pytest.param("provider", lambda c: c | {"aud": "another-app"}, id="fails because it is for another app"),
    pytest.param(
        "provider", lambda c: c | {"iss": "https://evil.example"}, id="fails because another issuer"
    ),
    pytest.param(
        "provider", lambda c: c | {"nonce": "n"}, id="fails because it carries a nonce (an ID token)"
    ),
    pytest.param("provider", _without("events"), id="fails because it has no events member"),
    pytest.param(
        "provider", lambda c: c | {"events": {"urn:other": {}}}, id="fails because its event is not logout"
    ),
    pytest.param("provider", lambda c: c | {"exp": c["iat"] - 60}, id="fails because it expired"),
    pytest.param("provider", _without("jti"), id="fails because it has no jti"),
    pytest.param(
        "provider",
        lambda c: _without("sid")(_without("sub")(c)),
        id="fails because it names no session or user",
    ),
]


@pytest.mark.parametrize(("signer", "edit"), FORGERIES)
def test_the_demo_receiver_refuses_a_forged_logout_token_and_the_session_survives(
    live: LiveProvider, op: OpenIdProvider, demo_apps: tuple[DemoApp, DemoApp], signer: str, edit: Any
) -> None:
    console, _ = demo_apps
    console.sign_in(Browser(op), create_account(live, "forged-at"))
    claims = console.session()["claims"]
    key = provider_key(Path(live.config).parent / "keys")
    other = ECKey.generate_key("P-256", parameters={"kid": key.kid}, private=True)
    header = {"typ": "JWT"} if signer == "typ:JWT" else {"typ": "logout+jwt"}
    forged = forge_access_token(
        other if signer == "other-key" else key,
        edit(logout_claims(live.issuer, console.client.client_id, claims["sid"], claims["sub"])),
        **header,
    )

    refused = console.browser.post("/backchannel-logout", data={"logout_token": forged})

    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_request"
    assert console.signed_in()


def test_the_demo_receiver_accepts_a_logout_token_once(
    live: LiveProvider, op: OpenIdProvider, demo_apps: tuple[DemoApp, DemoApp]
) -> None:
    console, _ = demo_apps
    console.sign_in(Browser(op), create_account(live, "replayed-at"))
    claims = console.session()["claims"]
    key = provider_key(Path(live.config).parent / "keys")
    token = forge_access_token(
        key,
        logout_claims(live.issuer, console.client.client_id, claims["sid"], claims["sub"]),
        typ="logout+jwt",
    )

    assert console.browser.post("/backchannel-logout", data={"logout_token": token}).status_code == 200
    assert not console.signed_in()
    replayed = console.browser.post("/backchannel-logout", data={"logout_token": token})
    assert replayed.status_code == 400 and "used before" in replayed.get_json()["error_description"]
