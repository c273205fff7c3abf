"""End to end in a real browser: enrol a passkey on the account page, then sign in with it alone.

Debian's Chromium answers WebAuthn with a virtual authenticator (CDP WebAuthn domain: CTAP2, internal
transport, resident key, user verification). The provider (`idp serve`) runs on http://localhost:PORT
because a WebAuthn RP ID cannot be an IP address. Screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request, expect
from support.browser import (
    DESKTOP,
    DemoApp,
    VirtualAuthenticator,
    password_then_new_totp,
    screenshot,
)
from support.live import LiveProvider
from support.oidc_client import Client, OpenIdProvider, Pkce

pytestmark = pytest.mark.browser

USERNAME = "dana"
PASSWORD = "a long enough password"
PASSKEY_NAME = "Laptop passkey"
CANCELLED = "The passkey request was cancelled or timed out."


@dataclass(frozen=True)
class PasskeyKind:
    """How the virtual authenticator backs up its credentials, and what the provider makes of that."""

    name: str
    backup_eligible: bool
    account_label: str
    amr: str


KINDS = [
    # No operator trust anchor: a device-bound key's flags alone never make it hwk.
    PasskeyKind("device-bound", backup_eligible=False, account_label="Passkey", amr="swk"),
    PasskeyKind("synced", backup_eligible=True, account_label="Passkey", amr="swk"),
]


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=DESKTOP)
    try:
        yield context
    finally:
        context.close()


# -- steps --------------------------------------------------------------------------------------


def sign_in_with_password_and_new_totp(page: Page, demo_app: DemoApp) -> dict[str, Any]:
    """The first sign-in through the demo app: password, then the mandatory TOTP enrolment."""
    page.goto(f"{demo_app.base}/")
    page.locator("#login").click()
    password_then_new_totp(page, USERNAME, PASSWORD)
    expect(page.locator("#signed-in")).to_be_visible()
    claims: dict[str, Any] = json.loads(page.locator("#claims").inner_text())
    return claims


def enrol_passkey(page: Page, issuer: str, kind: PasskeyKind) -> None:
    """From the account page; the sign-in a moment ago is fresh enough, so no "Confirm it is you"."""
    page.goto(f"{issuer}/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.get_by_role("link", name="Add a passkey or security key").click()
    expect(page).to_have_url(f"{issuer}/account/passkeys/new")
    register = page.locator("#passkey-register")
    expect(register).to_be_visible()
    screenshot(page, f"passkey-new-{kind.name}-desktop")
    page.locator("#passkey-name").fill(PASSKEY_NAME)
    register.click()

    expect(page).to_have_url(re.compile("^" + re.escape(f"{issuer}/account") + r"(\?.*)?$"))
    passkey = page.locator("li.factor").filter(has_text=PASSKEY_NAME)
    expect(passkey).to_have_count(1)
    expect(passkey.locator(".kind")).to_have_text(kind.account_label)
    expect(passkey).to_contain_text("never used")
    screenshot(page, f"account-passkey-{kind.name}-desktop")


@dataclass(frozen=True)
class AuthorizationRequest:
    """What the client remembers of the request it sent (OIDC Core 3.1.2.1 with PKCE)."""

    client: Client
    state: str
    nonce: str
    pkce: Pkce

    def url(self, op: OpenIdProvider, **extra: str) -> str:
        params = {
            "response_type": "code",
            "client_id": self.client.client_id,
            "redirect_uri": self.client.redirect_uri,
            "scope": "openid profile",
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.pkce.challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return f"{op.endpoint('authorization')}?{urlencode(params)}"


def redirected_to(request: Request, uri: str) -> bool:
    return request.is_navigation_request() and request.url.startswith(f"{uri}?")


# -- the test -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_enrols_a_passkey_then_signs_in_with_it_alone_at_phr(
    provider: LiveProvider,
    demo_app: DemoApp,
    context: BrowserContext,
    kind: PasskeyKind,
) -> None:
    created = provider.idp("users", "create", USERNAME, "--password-stdin", stdin=f"{PASSWORD}\n")
    assert created.returncode == 0, created.stderr
    page = context.new_page()
    authenticator = VirtualAuthenticator.attach(context, page, backup_eligible=kind.backup_eligible)

    first = sign_in_with_password_and_new_totp(page, demo_app)
    enrol_passkey(page, provider.issuer, kind)
    assert len(authenticator.credentials()) == 1
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="You are signed out")).to_be_visible()

    op = OpenIdProvider(provider.issuer)
    client = Client(demo_app.client_id, demo_app.redirect_uri)
    authorization = AuthorizationRequest(
        client, state=secrets.token_urlsafe(12), nonce=secrets.token_urlsafe(12), pkce=Pkce.new()
    )
    page.goto(authorization.url(op, acr_values="phr"))
    sign_in = page.locator("#passkey-sign-in")
    expect(sign_in).to_be_visible()
    screenshot(page, f"signin-password-passkey-{kind.name}-desktop")

    # The user fails the authenticator's check: the page explains, and the button works again.
    authenticator.set_user_verified(False)
    sign_in.click()
    expect(page.locator("#passkey-error")).to_have_text(CANCELLED)
    expect(sign_in).to_be_enabled()
    assert urlsplit(page.url).path.startswith("/signin/")
    screenshot(page, f"signin-passkey-cancelled-{kind.name}-desktop")

    authenticator.set_user_verified(True)
    # Playwright cannot route a redirect's target, so the code is read off the request the browser
    # makes; the demo app did not start this request and refuses it (state mismatch) unspent.
    with page.expect_request(lambda sent: redirected_to(sent, client.redirect_uri)) as callback:
        sign_in.click()
    answer = dict(parse_qsl(urlsplit(callback.value.url).query))
    assert answer["state"] == authorization.state
    assert answer["iss"] == provider.issuer

    tokens = op.token(
        client,
        grant_type="authorization_code",
        code=answer["code"],
        redirect_uri=client.redirect_uri,
        code_verifier=authorization.pkce.verifier,
    )
    assert tokens.status_code == 200, tokens.text
    claims = op.verify_id_token(
        tokens.json()["id_token"], expected_audience=client.client_id, expected_nonce=authorization.nonce
    )
    assert claims["sub"] == first["sub"], "the passkey alone found the account that enrolled it"
    assert claims["acr"] == "phr"
    assert {"user", "mfa", kind.amr} <= set(claims["amr"])
    assert not {"pwd", "otp"} & set(claims["amr"]), claims["amr"]
