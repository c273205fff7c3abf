"""Token boundaries, end to end with Authlib's client (`OAuth2Session`) against a live provider.

Who gets which scopes (client credentials, refresh), who learns that a token is active
(introspection), where codes may be sent (native apps: private-use schemes, loopback ports), and how
long a refresh token lives: as long as the browser session it came from, unless the user granted
offline_access, which lasts until it is revoked on the account page.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from support.app import add_client, make_app
from support.live import LiveProvider, free_port, provider_on_real_stores
from support.oauth_session import code_flow, introspect, oauth_session
from support.oidc_client import TIMEOUT, Account, Browser, Client, OpenIdProvider, create_account, forms_of
from support.step_up import RelyingParty, cli_client, member, unverified_claims

LOOPBACK = "http://127.0.0.1/native/callback"
LOOPBACK_V6 = "http://[::1]/native/callback"
PRIVATE_USE = "com.example.app:/oauth2redirect"


# -- the provider and its clients ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    with provider_on_real_stores(
        tmp_path_factory.mktemp("tokens"), database_prefix="idp_tokens_"
    ) as provider:
        yield provider


@dataclass(frozen=True)
class Apps:
    app: Client  # a web app: code and refresh, registered for openid profile email
    other: Client  # another web app
    offline: Client  # registered for offline_access
    loopback: Client  # a native app (public) on 127.0.0.1, no port registered
    loopback_v6: Client  # the same on [::1]
    mobile: Client  # a native app (public) with a private-use scheme
    machine: Client  # client credentials, registered for reports:read
    api: Client  # a resource server for `app`'s tokens
    other_api: Client  # a resource server for `other`'s tokens


@pytest.fixture(scope="module")
def apps(live: LiveProvider) -> Apps:
    def resource_server(name: str, audience: Client) -> Client:
        return cli_client(
            live, name, "--grant-type", "client_credentials", "--introspect", audience.client_id
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        app = pool.submit(cli_client, live, "app")
        other = pool.submit(cli_client, live, "other")
        offline = pool.submit(
            cli_client, live, "offline", *("--scope", "openid", "--scope", "offline_access")
        )
        loopback = pool.submit(cli_client, live, "loopback", "--public", redirect_uri=LOOPBACK)
        loopback_v6 = pool.submit(cli_client, live, "loopback-v6", "--public", redirect_uri=LOOPBACK_V6)
        mobile = pool.submit(cli_client, live, "mobile", "--public", redirect_uri=PRIVATE_USE)
        machine = pool.submit(
            cli_client, live, "machine", *("--grant-type", "client_credentials", "--scope", "reports:read")
        )
        api = pool.submit(resource_server, "api", app.result())
        other_api = pool.submit(resource_server, "other-api", other.result())
        return Apps(
            app=app.result(),
            other=other.result(),
            offline=offline.result(),
            loopback=loopback.result(),
            loopback_v6=loopback_v6.result(),
            mobile=mobile.result(),
            machine=machine.result(),
            api=api.result(),
            other_api=other_api.result(),
        )


@dataclass
class Grant:
    """A user who signed in to a client in their own browser, and what Authlib's client got for it."""

    account: Account
    browser: Browser
    session: OAuth2Session
    token: dict[str, Any]

    def refresh(self, **params: str) -> dict[str, Any]:
        """Authlib's refresh: the newest refresh token, and the scope first asked for unless given."""
        refreshed: dict[str, Any] = self.session.refresh_token(
            self.session.metadata["token_endpoint"], **params
        )
        return refreshed

    def refresh_error(self, **params: str) -> str:
        with pytest.raises(OAuthError) as refused:
            self.refresh(**params)
        return str(refused.value.error)

    def sign_out(self, op: OpenIdProvider) -> None:
        """RP-Initiated Logout with the ID token of this sign-in: the browser's session ends."""
        page = self.browser.visit(
            op.endpoint("end_session"), params={"id_token_hint": self.token["id_token"]}
        )
        assert page.status_code == 200 and "signed out" in page.text.lower(), page.text


def signed_in(live: LiveProvider, op: OpenIdProvider, client: Client, role: str, *, scope: str) -> Grant:
    """A new user's first sign-in to `client` (enrolling TOTP), asking for `scope`."""
    account = create_account(live, role)
    browser = Browser(op)
    session = oauth_session(op, client, scope=scope)
    return Grant(account, browser, session, code_flow(session, browser, account=account))


def account_page(op: OpenIdProvider, account: Account, path: str) -> tuple[Browser, Any]:
    """Another browser of the same user opens an account page, signing in on the way."""
    browser = Browser(op)
    page = browser.pass_sign_in(browser.visit(f"{op.issuer}{path}"), account)
    assert page.status_code == 200 and page.url == f"{op.issuer}{path}", page.url
    return browser, page


def post_form(browser: Browser, page: Any, action_suffix: str) -> Any:
    """Press the button of the page's form whose action ends with `action_suffix`."""
    [(action, fields)] = [
        (action, fields) for action, fields in forms_of(page) if action.endswith(action_suffix)
    ]
    return browser.settle(browser.http.post(action, data=fields, allow_redirects=False, timeout=TIMEOUT))


# -- client credentials: the scopes a machine registered ------------------------------------------------


def test_client_credentials_give_a_machine_a_scope_it_registered(op: OpenIdProvider, apps: Apps) -> None:
    session = oauth_session(op, apps.machine, scope="reports:read")

    token = session.fetch_token(grant_type="client_credentials")

    assert token["scope"] == "reports:read"
    assert introspect(session, op, token["access_token"])["scope"] == "reports:read"


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param("reports:read reports:write", id="fails because one scope was never registered"),
        pytest.param("openid", id="fails because the machine did not register openid"),
    ],
)
def test_client_credentials_refuse_a_scope_the_machine_did_not_register(
    op: OpenIdProvider, apps: Apps, scope: str
) -> None:
    session = oauth_session(op, apps.machine, scope=scope)

    with pytest.raises(OAuthError) as refused:
        session.fetch_token(grant_type="client_credentials")

    assert refused.value.error == "invalid_scope"


# -- introspection: only the token's client and its resource servers -------------------------------------


@pytest.fixture(scope="module")
def reader(live: LiveProvider, op: OpenIdProvider, apps: Apps) -> Grant:
    return signed_in(live, op, apps.app, "reader", scope="openid profile")


@pytest.mark.parametrize(
    ("asker", "kind", "active"),
    [
        pytest.param("app", "access_token", True, id="the client it was issued to"),
        pytest.param("api", "access_token", True, id="a resource server registered for its audience"),
        pytest.param("other", "access_token", False, id="fails because another client is not its audience"),
        pytest.param(
            "other_api",
            "access_token",
            False,
            id="fails because that resource server serves another audience",
        ),
        pytest.param("app", "refresh_token", True, id="the client holding the refresh token"),
        pytest.param(
            "api", "refresh_token", False, id="fails because a refresh token is never a resource server's"
        ),
    ],
)
def test_introspection_says_active_only_to_the_tokens_client_and_its_resource_servers(
    op: OpenIdProvider, apps: Apps, reader: Grant, asker: str, kind: str, active: bool
) -> None:
    session = oauth_session(op, getattr(apps, asker))

    answer = introspect(session, op, reader.token[kind])

    if active:
        assert answer["active"] is True and answer["client_id"] == apps.app.client_id
    else:
        assert answer == {"active": False}


# -- native apps: private-use schemes and loopback ports (RFC 8252) ---------------------------------------


def test_a_native_app_gets_its_code_at_its_private_use_scheme(
    live: LiveProvider, op: OpenIdProvider, apps: Apps
) -> None:
    session = oauth_session(op, apps.mobile)

    token = code_flow(session, Browser(op), account=create_account(live, "mobile"))

    assert token["access_token"] and token["refresh_token"]


@pytest.mark.parametrize(
    ("name", "host"),
    [pytest.param("loopback", "127.0.0.1", id="IPv4"), pytest.param("loopback_v6", "[::1]", id="IPv6")],
)
def test_a_loopback_redirect_uri_registered_without_a_port_matches_the_port_the_app_listens_on(
    live: LiveProvider, op: OpenIdProvider, apps: Apps, name: str, host: str
) -> None:
    session = oauth_session(
        op, getattr(apps, name), redirect_uri=f"http://{host}:{free_port()}/native/callback"
    )

    token = code_flow(session, Browser(op), account=create_account(live, "cli"))

    assert token["access_token"] and token["refresh_token"]


@pytest.mark.parametrize(
    "redirect_uri",
    [
        pytest.param(
            "http://localhost:{port}/native/callback", id="fails because localhost was not registered"
        ),
        pytest.param("http://127.0.0.1:{port}/native/other", id="fails because the path differs"),
        pytest.param("http://127.0.0.1:{port}/native/callback?x=1", id="fails because a query was added"),
        pytest.param("https://127.0.0.1:{port}/native/callback", id="fails because the scheme differs"),
        pytest.param(
            "http://127.0.0.1:{port}@evil.example/native/callback",
            id="fails because the host is evil.example",
        ),
    ],
)
def test_a_loopback_redirect_uri_matches_any_port_and_nothing_else(
    op: OpenIdProvider, apps: Apps, redirect_uri: str
) -> None:
    browser = Browser(op)

    attempt = browser.authorize(apps.loopback, redirect_uri=redirect_uri.format(port=free_port()))

    assert attempt.page.status_code == 400 and "Location" not in attempt.page.headers


# -- refresh tokens: bound to the browser session, unless offline_access ------------------------------------


def test_a_refresh_token_stops_working_when_its_browser_signs_out(
    live: LiveProvider, op: OpenIdProvider, apps: Apps
) -> None:
    user = signed_in(live, op, apps.app, "leaving", scope="openid profile")
    refreshed = user.refresh()

    user.sign_out(op)

    assert user.refresh_error() == "invalid_grant"
    assert introspect(user.session, op, refreshed["refresh_token"]) == {"active": False}


def test_a_refresh_token_stops_working_when_its_session_is_ended_from_another_browser(
    live: LiveProvider, op: OpenIdProvider, apps: Apps
) -> None:
    laptop = signed_in(live, op, apps.app, "two-devices", scope="openid profile")
    laptop_sid = unverified_claims(laptop.token["id_token"])["sid"]
    phone, sessions = account_page(op, laptop.account, "/account/sessions")

    ended = post_form(phone, sessions, f"/sessions/{laptop_sid}/end")

    assert "1 session(s) ended." in ended.text
    assert laptop.refresh_error() == "invalid_grant"


def test_offline_access_survives_sign_out_until_it_is_revoked_on_the_account_page(
    live: LiveProvider, op: OpenIdProvider, apps: Apps
) -> None:
    user = signed_in(live, op, apps.offline, "offline", scope="openid offline_access")
    assert user.token["scope"] == "openid offline_access"
    user.sign_out(op)
    assert user.refresh()["scope"] == "openid offline_access", "offline access outlives the session"

    browser, listed = account_page(op, user.account, "/account/offline-access")
    assert "<strong>offline</strong>" in listed.text
    revoked = post_form(browser, listed, "/revoke")

    assert "offline no longer has offline access." in revoked.text
    assert user.refresh_error() == "invalid_grant"
    assert introspect(user.session, op, user.session.token["access_token"]) == {"active": False}
    assert forms_of(revoked) == [], "nothing left to revoke"


def test_the_token_scope_is_what_was_granted_and_a_refresh_may_repeat_what_was_asked(
    live: LiveProvider, op: OpenIdProvider, apps: Apps
) -> None:
    user = signed_in(live, op, apps.app, "asks-offline", scope="openid profile offline_access")
    assert user.token["scope"] == "openid profile", "app did not register offline_access"

    refreshed = user.refresh()  # Authlib resends the scope it first asked for, offline_access included
    again = user.refresh()  # with the refresh token the first refresh gave

    assert refreshed["scope"] == again["scope"] == "openid profile"
    user.sign_out(op)
    assert user.refresh_error() == "invalid_grant", "without offline_access, the token ends with the session"


def test_a_refresh_token_keeps_the_grants_scope_when_an_access_token_is_asked_for_less(
    live: LiveProvider, op: OpenIdProvider, apps: Apps
) -> None:
    user = signed_in(live, op, apps.app, "narrow", scope="openid profile")

    assert user.refresh(scope="openid")["scope"] == "openid"

    assert user.refresh(scope="openid profile")["scope"] == "openid profile", "RFC 6749 6"
    assert user.refresh_error(scope="openid profile email") == "invalid_scope", "email was never granted"


# -- in process: a session that expires ---------------------------------------------------------------------

SHORT_SESSION = 10


def test_a_refresh_token_stops_working_when_its_session_expires(tmp_path: Path) -> None:
    app = make_app(tmp_path, sessions={"lifetime": SHORT_SESSION})
    relying_party = RelyingParty(app, *add_client(app))
    started = time.time()
    joined = member(relying_party, "alice")
    tokens = relying_party.refresh(joined.tokens(joined.authorize())["refresh_token"])

    time.sleep(max(0.0, started + SHORT_SESSION + 1 - time.time()))

    response = app.test_client().post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(relying_party.client_id, relying_party.secret),
    )
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
