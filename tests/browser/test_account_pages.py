"""End to end in a real browser: every account page, driven through Debian's Chromium.

The real provider (`idp serve`) and the demo relying party run over HTTP; the user is created with
the CLI. Each page is photographed at desktop and phone widths into test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support.account import Authenticator
from support.browser import DESKTOP, PHONE, DemoApp, save_recovery_codes, screenshot
from support.live import LiveProvider

pytestmark = pytest.mark.browser

USERNAME = "erin"
PASSWORD = "a long enough password"
LAST_FACTOR = "This is your last second factor: add another one before removing it."


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    """Two browsers of one user: each its own cookies, so its own session."""
    opened = [browser.new_context(viewport=DESKTOP, accept_downloads=True) for _ in range(2)]
    try:
        yield opened
    finally:
        for context in opened:
            context.close()


def photograph(page: Page, name: str) -> None:
    """The page at desktop and phone widths; a phone page must not scroll sideways."""
    screenshot(page, f"{name}-desktop")
    page.set_viewport_size(PHONE)
    try:
        screenshot(page, f"{name}-phone")
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} is {overflow}px wider than a phone"
    finally:
        page.set_viewport_size(DESKTOP)


def password_step(page: Page, demo_app: DemoApp, password: str = PASSWORD) -> None:
    page.goto(f"{demo_app.base}/")
    page.locator("#login").click()
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()


def sign_in_enrolling_totp(page: Page, demo_app: DemoApp) -> Authenticator:
    password_step(page, demo_app)
    page.get_by_text("Can't scan?").click()
    authenticator = Authenticator(page.locator("#secret").inner_text().strip())
    page.get_by_label("Code from the app").fill(authenticator.code())
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    save_recovery_codes(page)
    expect(page.locator("#signed-in")).to_be_visible()
    return authenticator


def notice(page: Page) -> str:
    """The message after a change: a status for what was done, an alert for what was refused."""
    return page.locator(".account-nav ~ [role=status], .account-nav ~ [role=alert]").first.inner_text()


def test_every_account_page_in_a_browser(
    provider: LiveProvider, demo_app: DemoApp, contexts: list[BrowserContext]
) -> None:
    created = provider.idp("users", "create", USERNAME, "--password-stdin", stdin=f"{PASSWORD}\n")
    assert created.returncode == 0, created.stderr
    account = f"{provider.issuer}/account"
    page, elsewhere = (context.new_page() for context in contexts)
    phone = sign_in_enrolling_totp(page, demo_app)

    page.goto(account)
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    photograph(page, "account-overview")

    # Another authenticator app, then remove it again.
    page.get_by_role("link", name="Add an authenticator app").click()
    expect(page.locator(".qr svg")).to_be_visible()
    photograph(page, "account-totp-new")
    page.get_by_text("Can't scan?").click()
    tablet = Authenticator(page.locator("#secret").inner_text().strip())
    page.get_by_label("Name for this authenticator").fill("Tablet")
    page.get_by_label("Code from the app").fill(tablet.code())
    page.get_by_role("button", name="Add authenticator app").click()
    assert notice(page) == "Authenticator app 'Tablet' added."
    expect(page.locator("li.factor")).to_have_count(2)
    photograph(page, "account-two-authenticators")
    page.get_by_role("link", name="Remove Tablet").click()
    expect(page.get_by_role("heading", name="Remove Tablet?")).to_be_visible()
    photograph(page, "account-remove-confirm")
    page.get_by_role("button", name="Remove Tablet").click()
    assert notice(page) == "'Tablet' removed."
    expect(page.locator("li.factor")).to_have_count(1)

    # The last second factor stays.
    page.get_by_role("link", name="Remove Authenticator app").click()
    page.get_by_role("button", name="Remove Authenticator app").click()
    assert notice(page) == LAST_FACTOR
    expect(page.locator("li.factor")).to_have_count(1)
    photograph(page, "account-last-factor-refused")

    # Recovery codes: shown once, downloaded once.
    page.get_by_role("link", name="Manage").click()
    expect(page.locator("#recovery-left")).to_have_text("10")  # from the first sign-in
    photograph(page, "account-recovery-left")
    page.get_by_role("link", name="Generate new codes").click()
    page.get_by_role("button", name="Generate new codes").click()
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    lines = page.locator("#recovery-codes code").evaluate_all(
        "codes => codes.map(c => c.getClientRects().length)"
    )
    assert lines == [1] * 10, "a code broken over two lines is easy to copy wrong"
    photograph(page, "account-recovery-codes")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download as a text file").click()
    assert download.value.suggested_filename == "recovery-codes.txt"
    assert all(code in Path(download.value.path()).read_text() for code in codes)

    # A fresh sign-in elsewhere: a wrong password first, then a recovery code.
    password_step(elsewhere, demo_app, password="not the password")
    expect(elsewhere.get_by_role("alert")).to_have_text("The username or password is not right.")
    elsewhere.get_by_label("Password").fill(PASSWORD)
    elsewhere.get_by_role("button", name="Continue").click()
    expect(elsewhere.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    elsewhere.get_by_text("Use a recovery code").click()
    photograph(elsewhere, "signin-factor-recovery-open")
    elsewhere.get_by_label("Recovery code").fill(codes[0])
    elsewhere.get_by_role("button", name="Use recovery code").click()
    expect(elsewhere.get_by_role("heading", name="You used a recovery code")).to_be_visible()
    expect(elsewhere.locator("#recovery-left")).to_have_text("9")
    photograph(elsewhere, "recovery-used-interstitial")
    elsewhere.get_by_role("link", name="Continue to the application").click()
    expect(elsewhere.locator("#signed-in")).to_be_visible()

    page.goto(account)
    expect(page.locator("#recovery-left")).to_have_text("9 left")

    # End the other browser's session: its next visit must sign in again.
    page.get_by_role("link", name="Sessions").click()
    sessions = page.locator("li.session")
    expect(sessions).to_have_count(2)
    photograph(page, "account-sessions")
    page.get_by_role("button", name="End the session on HeadlessChrome on Linux").click()
    assert notice(page) == "1 session(s) ended."
    expect(sessions).to_have_count(1)
    expect(sessions).to_contain_text("(this session)")
    photograph(page, "account-sessions-ended")
    elsewhere.goto(account)
    expect(elsewhere.get_by_label("Username")).to_be_visible()
    assert re.fullmatch(re.escape(provider.issuer) + r"/signin/[^/]+", elsewhere.url)
    photograph(elsewhere, "account-ended-session-signs-in-again")

    # The password page, after the current password and a code, and what it says to a weak password.
    page.get_by_role("link", name="Sign-in methods").click()
    page.get_by_role("link", name="Change").click()
    expect(page.get_by_label("Username")).to_have_value(USERNAME)
    photograph(page, "account-password-reauthenticate")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Code from your authenticator app").fill(phone.code())
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_label("Keep my other sessions and apps signed in")).not_to_be_checked()
    photograph(page, "account-password")
    page.get_by_label("New password", exact=True).fill("password1234")
    page.get_by_label("Repeat the new password").fill("password1234")
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_role("alert")).to_have_text(
        "This password is among the most common ones; choose another."
    )
    photograph(page, "account-password-refused")

    # The history: the failed password, the recovery-code sign-in, the changes.
    page.goto(f"{account}/history")
    events = page.locator("tr.event")
    expect(events.filter(has_text="Sign-in to Demo console app failed: wrong password")).to_have_count(1)
    expect(events.filter(has_text="Signed in to Demo console app")).to_have_count(2)
    expect(events.filter(has_text="with password and recovery code")).to_have_count(1)
    expect(events.filter(has_text="with password and authenticator app")).to_have_count(
        2
    )  # and the password page's
    expect(events.filter(has_text="New recovery codes generated")).to_have_count(1)
    expect(events.filter(has_text="Refused: remove last second factor")).to_have_count(1)
    moment = events.first.locator("time")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", str(moment.get_attribute("datetime")))
    expect(moment).not_to_contain_text("UTC")  # shown in the browser's time zone
    photograph(page, "account-history")
