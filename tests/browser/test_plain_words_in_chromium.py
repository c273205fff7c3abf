"""Plain words in Chromium: the step-up page names the app and what it asks, "Cancel and go back" returns
to the app with access_denied, and the sessions page shows times in the viewer's time zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect
from support.browser import DESKTOP, DemoApp, password_then_new_totp, screenshot
from support.live import LiveProvider

pytestmark = pytest.mark.browser

USERNAME = "erin"
PASSWORD = "a long enough password"
TOKYO = "Asia/Tokyo"


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP, timezone_id=TOKYO, locale="en-US")
    yield context.new_page()
    context.close()


def first_sign_in(provider: LiveProvider, demo_app: DemoApp, page: Page) -> None:
    created = provider.idp("users", "create", USERNAME, "--password-stdin", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    page.goto(f"{demo_app.base}/")
    page.locator("#login").click()
    password_then_new_totp(page, USERNAME, PASSWORD)
    expect(page.locator("#signed-in")).to_be_visible()


def test_step_up_with_cancel_goes_back_to_the_app(
    provider: LiveProvider, demo_app: DemoApp, page: Page
) -> None:
    first_sign_in(provider, demo_app, page)

    page.goto(f"{demo_app.base}/login?max_age=0")
    expect(page.locator(".lead")).to_have_text("Demo console app asks for a second factor.")
    screenshot(page, "step-up-desktop")
    page.get_by_role("button", name="Cancel and go back").click()

    expect(page.get_by_role("alert")).to_contain_text("The user cancelled the sign-in.")
    assert page.url.startswith(f"{demo_app.base}/")


def test_the_sessions_page_shows_the_time_in_the_viewers_zone(
    provider: LiveProvider, demo_app: DemoApp, page: Page
) -> None:
    first_sign_in(provider, demo_app, page)

    page.goto(f"{provider.issuer}/account/sessions")

    moment = page.locator("time[data-local-time]").first
    expect(moment).not_to_contain_text("UTC")
    shown_at = datetime.fromisoformat(str(moment.get_attribute("datetime")).replace("Z", "+00:00"))
    in_tokyo = shown_at.astimezone(ZoneInfo(TOKYO))
    expect(moment).to_contain_text(f"{in_tokyo.hour % 12 or 12}:{in_tokyo.minute:02d}")
    expect(moment).to_have_attribute("title", shown_at.strftime("%Y-%m-%d %H:%M UTC"))
    expect(page.locator(".session strong").first).to_have_text("HeadlessChrome on Linux")
