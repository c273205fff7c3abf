"""The admin console in Chromium against a live `idp serve` (issue 17, point 4).

The administrator signs in over HTTP with an attested test key (Chromium's virtual authenticator
cannot attest with the test vendor's CA) and the session's cookie is handed to Chromium, which then
uses the console as a person would: search a user, open them, reset their MFA, disable them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from support.administrator import attestation_settings, create_administrator, sign_in_administrator
from support.browser import DESKTOP, screenshot
from support.live import LiveProvider, start_provider
from support.oidc_client import Browser as HttpBrowser
from support.oidc_client import OpenIdProvider, create_account, register_client


@pytest.fixture
def console_provider(tmp_path: Path) -> Iterator[LiveProvider]:
    provider = start_provider(tmp_path, host="localhost", extra=attestation_settings(tmp_path))
    try:
        yield provider
    finally:
        provider.stop()


def test_an_administrator_searches_a_user_resets_their_mfa_and_disables_them(
    console_provider: LiveProvider, browser: Browser
) -> None:
    live = console_provider
    op = OpenIdProvider(live.issuer)
    member = create_account(live, "carol")
    HttpBrowser(op).sign_in(register_client(live, "app"), member)  # carol enrols an authenticator app
    password = secrets.token_urlsafe(15)
    key = create_administrator(live, "root", password)
    http = HttpBrowser(op)
    users = sign_in_administrator(
        http, http.visit(f"{live.issuer}/admin/users"), username="root", password=password, key=key
    )
    assert users.status_code == 200 and users.url.endswith("/admin/users"), users.url

    context = browser.new_context(viewport=DESKTOP)
    context.add_cookies(
        [{"name": c.name, "value": c.value or "", "url": live.issuer} for c in http.http.cookies]
    )
    page = context.new_page()
    page.goto(f"{live.issuer}/admin/users")
    page.get_by_label("Name or email address").fill(member.username[:6].upper())
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=member.username).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(member.username)
    expect(page.locator(".factor")).to_have_count(1)  # the app; its ten recovery codes are counted apart
    expect(page.get_by_text("Recovery codes left: 10")).to_be_visible()

    page.get_by_role("button", name="Reset MFA").click()
    expect(page.get_by_role("status")).to_have_text(
        f"Every second factor of {member.username} removed (11 with the recovery codes): "
        "they set one up at their next sign-in."
    )
    expect(page.locator(".factor")).to_have_count(0)
    page.get_by_role("button", name=f"Disable {member.username}").click()
    expect(page.get_by_role("status")).to_have_text(f"{member.username} is disabled.")
    screenshot(page, "admin-console-user")
    context.close()

    (disabled,) = live.audit_events("user_disabled")
    (root_created,) = [e for e in live.audit_events("user_created") if e.detail.get("admin")]
    assert disabled.detail == {"by": root_created.user_id, "via": "console"}
