"""End to end (issue 17): an administrator signs in through /authorize with an attested key to `phrh`
for a client allowed scope `admin`, calls the admin API with the access token, and once [admin] max_age
has passed gets the RFC 9470 challenge that says what would do. A live provider on PostgreSQL and Redis;
the clock is not moved: [admin] max_age is short here instead."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support.administrator import attestation_settings, create_administrator, sign_in_administrator
from support.live import LiveProvider, provider_on_real_stores
from support.logout_receiver import Receiver, running_receiver
from support.oidc_client import TIMEOUT, Browser, OpenIdProvider, register_client
from support.step_up import unverified_claims
from test_logout_channels import back_channel_client, signed_in, verified_logout_token

ADMIN_MAX_AGE = 15


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    directory = tmp_path_factory.mktemp("admin-e2e")
    extra = attestation_settings(directory) + f"[admin]\nmax_age = {ADMIN_MAX_AGE}\n"
    with provider_on_real_stores(
        directory, database_prefix="idp_admin_e2e_", extra=extra, host="localhost"
    ) as provider:
        yield provider


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as found:
        yield found


def call_admin_api(live: LiveProvider, access_token: str) -> requests.Response:
    return requests.get(
        f"{live.issuer}/admin/api/v1/users",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=TIMEOUT,
    )


def administrator_tokens(live: LiveProvider, op: OpenIdProvider, username: str) -> dict[str, Any]:
    """A new administrator signs in through /authorize with their attested key for a client allowed
    scope admin; the client's tokens."""
    password = secrets.token_urlsafe(15)
    key = create_administrator(live, username, password)
    console = register_client(live, f"admin-console-{username}", "--scope", "openid admin")
    browser = Browser(op)
    attempt = browser.authorize(console, scope="openid admin", acr_values="phrh")
    redirect = sign_in_administrator(browser, attempt.page, username=username, password=password, key=key)
    tokens = op.exchange(attempt, attempt.callback(redirect)["code"])
    assert tokens.status_code == 200, tokens.text
    found: dict[str, Any] = tokens.json()
    return found


def test_an_administrators_token_works_until_the_admin_max_age_then_asks_for_a_fresh_sign_in(
    live: LiveProvider, op: OpenIdProvider
) -> None:
    tokens = administrator_tokens(live, op, "root")
    access_token = tokens["access_token"]
    claims = unverified_claims(tokens["id_token"])
    assert (claims["acr"], claims["amr"]) == ("phrh", ["pwd", "hwk", "user", "mfa"])

    fresh = call_admin_api(live, access_token)
    assert fresh.status_code == 200, fresh.text
    assert "root" in [user["username"] for user in fresh.json()["users"]]

    time.sleep(max(0.0, claims["auth_time"] + ADMIN_MAX_AGE + 1 - time.time()))
    stale = call_admin_api(live, access_token)

    assert stale.status_code == 401
    challenge = stale.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'error="insufficient_user_authentication"' in challenge
    assert f"max_age={ADMIN_MAX_AGE}" in challenge and 'acr_values="phrh"' in challenge
    refusals = [e for e in live.audit_events("admin_api") if e.outcome == "refused"]
    assert "insufficient_user_authentication" in [e.detail["error"] for e in refusals]


def test_sessions_ended_through_the_admin_api_are_told_to_their_clients(
    live: LiveProvider, op: OpenIdProvider, receiver: Receiver
) -> None:
    app = back_channel_client(live, receiver, "app-of-ivy")
    ivy = signed_in(live, op, "ivy", app)
    session = ivy.id_token(app)
    access_token = administrator_tokens(live, op, "deputy")["access_token"]

    ended = requests.delete(
        f"{live.issuer}/admin/api/v1/users/{session['sub']}/sessions",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=TIMEOUT,
    )

    assert ended.status_code == 200 and ended.json() == {"count": 1}, ended.text
    _, claims = verified_logout_token(op, receiver.next_token("app-of-ivy"), app)
    assert (claims["sub"], claims["sid"]) == (session["sub"], session["sid"])
    assert op.refresh(app, ivy.tokens[app.client_id]["refresh_token"]).status_code == 400
