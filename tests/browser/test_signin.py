"""End to end in a real browser: Debian's Chromium signs in to the demo app through the hosted pages.

Drives the real provider (`idp serve`) and the real demo relying party (examples/demo_rp.py) over HTTP.
Screenshots of each page land in test-artifacts/screenshots/ for a human to look at.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import DESKTOP, PHONE, DemoApp, save_recovery_codes, screenshot
from support.live import LiveProvider

pytestmark = pytest.mark.browser

USERNAME = "carol"
PASSWORD = "a long enough password"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    yield context.new_page()
    context.close()


def test_signs_in_enrols_totp_and_lands_on_demo_app(
    provider: LiveProvider, demo_app: DemoApp, page: Page
) -> None:
    created = provider.idp(
        "users",
        "create",
        USERNAME,
        "--email",
        "carol@example.com",
        "--password-stdin",
        stdin=f"{PASSWORD}\n",
    )
    assert created.returncode == 0, created.stderr

    page.goto(f"{demo_app.base}/")
    page.locator("#login").click()

    expect(page.get_by_label("Username")).to_be_visible()
    assert page.url.startswith(f"{provider.issuer}/")
    screenshot(page, "signin-password-desktop")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()

    expect(page.locator(".qr svg")).to_be_visible()
    screenshot(page, "enrol-totp-desktop")
    page.set_viewport_size(PHONE)
    screenshot(page, "enrol-totp-phone")
    page.set_viewport_size(DESKTOP)
    page.get_by_text("Can't scan?").click()
    secret = page.locator("#secret")
    expect(secret).to_be_visible()
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret.inner_text().strip()).now())
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    save_recovery_codes(page)

    expect(page.locator("#signed-in")).to_be_visible()
    assert page.url == f"{demo_app.base}/"
    expect(page.locator("#acr")).to_have_text("mfa")
    expect(page.locator("#claims")).to_contain_text('"otp"')
    screenshot(page, "demo-app-signed-in-desktop")

    page.get_by_role("link", name="Sign out").click()

    expect(page.locator("#login")).to_be_visible()
    assert page.url == f"{demo_app.base}/"
