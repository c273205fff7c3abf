"""Forgot password in Chromium: the link from the mail, a code from the authenticator app, a new
password, and the sign-in at the demo app goes on with it (its ID token claims the typed password)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import DESKTOP, DemoApp, save_recovery_codes, screenshot
from support.live import LiveProvider

pytestmark = pytest.mark.browser

USERNAME = "dora"
ADDRESS = "dora@example.com"
PASSWORD = "a long enough password"
NEW_PASSWORD = "seven quiet harbours at dusk"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    yield context.new_page()
    context.close()


def reset_link(outbox: Path) -> str:
    messages = [message_from_bytes(path.read_bytes(), policy=policy.default) for path in outbox.glob("*.eml")]
    (message,) = [
        m for m in messages if isinstance(m, EmailMessage) and m["Subject"] == "Reset your password"
    ]
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    found = re.search(r"http://\S+/password/reset/\S+", str(body.get_content()))
    assert found is not None
    return found.group(0)


def enrol_authenticator(page: Page) -> pyotp.TOTP:
    page.get_by_text("Can't scan?").click()
    totp = pyotp.TOTP(page.locator("#secret").inner_text().strip())
    page.get_by_label("Code from the app").fill(totp.now())
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    save_recovery_codes(page)
    return totp


def test_forgot_password_with_a_second_factor(provider: LiveProvider, demo_app: DemoApp, page: Page) -> None:
    created = provider.idp(
        "users",
        "create",
        USERNAME,
        "--email",
        ADDRESS,
        "--email-verified",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    page.goto(f"{demo_app.base}/")
    page.locator("#login").click()
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    totp = enrol_authenticator(page)
    expect(page.locator("#signed-in")).to_be_visible()
    page.get_by_role("link", name="Sign out").click()
    page.locator("#login").click()

    page.get_by_role("link", name="Forgot password?").click()
    page.get_by_label("Username or email address").fill(ADDRESS)
    page.get_by_role("button", name="Email me a link").click()
    expect(page.get_by_role("status")).to_contain_text("we sent a link to its verified email address")
    screenshot(page, "forgot-password-sent-desktop")

    page.goto(reset_link(provider.config.parent / "instance" / "outbox"))
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    expect(page.locator(".lead")).to_contain_text("reset your password")
    page.get_by_label("Code from your authenticator app").fill(totp.at(time.time() + 30))  # the next step
    page.get_by_role("button", name="Verify").click()
    page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    screenshot(page, "new-password-desktop")
    page.get_by_role("button", name="Set new password").click()

    expect(page.get_by_role("status")).to_have_text("Your password was changed.")
    expect(page.get_by_label("Username")).to_have_value(USERNAME)
    page.get_by_label("Password").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Continue").click()

    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#claims")).to_contain_text('"pwd"')
    expect(page.locator("#claims")).to_contain_text('"otp"')
