"""The first sign-in in Chromium: a passkey offered first (where the browser can make one), an
authenticator app second (a tappable otpauth link and the key in groups on a phone), then the
recovery codes shown once, with Download, Copy and Print, and confirmed as saved before going on."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support.browser import DESKTOP, PHONE, DemoApp, VirtualAuthenticator, save_recovery_codes, screenshot
from support.live import LiveProvider

pytestmark = pytest.mark.browser

USERNAME = "frank"
PASSWORD = "a long enough password"


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=DESKTOP)
    try:
        yield context
    finally:
        context.close()


def to_enrolment(provider: LiveProvider, demo_app: DemoApp, page: Page) -> None:
    created = provider.idp("users", "create", USERNAME, "--password-stdin", stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    page.goto(f"{demo_app.base}/")
    page.locator("#login").click()
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Set up two-step sign-in")).to_be_visible()


def test_first_sign_in_choosing_a_passkey(
    provider: LiveProvider, demo_app: DemoApp, context: BrowserContext
) -> None:
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    VirtualAuthenticator.attach(context, page, backup_eligible=True)
    to_enrolment(provider, demo_app, page)

    passkey = page.get_by_role("button", name="Create a passkey")
    app = page.get_by_role("heading", name="An authenticator app")
    expect(passkey).to_be_visible()
    assert passkey.bounding_box()["y"] < app.bounding_box()["y"], "the passkey is offered first"  # type: ignore[index]
    screenshot(page, "enrol-choice-desktop")
    passkey.click()

    expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    shown = page.locator("#recovery-codes code").all_inner_texts()
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("status")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()").split("\n") == shown
    expect(page.get_by_role("button", name="Print")).to_be_visible()
    screenshot(page, "first-recovery-codes-desktop")
    page.get_by_role("button", name="Continue").click()
    saved = page.get_by_label("I have saved my recovery codes")
    assert saved.evaluate("box => box.validity.valueMissing"), "the box must be ticked first"
    expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    save_recovery_codes(page)

    page.get_by_role("button", name="Use your passkey or security key").click()
    expect(page.locator("#signed-in")).to_be_visible()
    claims = json.loads(page.locator("#claims").inner_text())
    assert set(claims["amr"]) == {"pwd", "swk", "user", "mfa"}


def test_first_sign_in_choosing_an_app_on_a_phone_then_recovery_codes(
    provider: LiveProvider, demo_app: DemoApp, context: BrowserContext, tmp_path: Path
) -> None:
    page = context.new_page()
    page.set_viewport_size(PHONE)
    to_enrolment(provider, demo_app, page)

    tappable = page.locator(".phone-only a")
    expect(tappable).to_be_visible()
    assert str(tappable.get_attribute("href")).startswith("otpauth://totp/")
    screenshot(page, "enrol-choice-phone")
    page.get_by_text("Can't scan?").click()
    groups = page.locator(".key-groups span").all_inner_texts()
    secret = page.locator("#secret").inner_text().strip()
    assert "".join(groups) == secret and all(len(group) == 4 for group in groups[:-1])
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-step sign-in").click()

    expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    shown = page.locator("#recovery-codes code").all_inner_texts()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    saved = tmp_path / "codes.txt"
    download.value.save_as(saved)
    assert re.findall(r"^[a-z2-7]{4}(?:-[a-z2-7]{4}){3}$", saved.read_text(), re.M) == shown
    screenshot(page, "first-recovery-codes-phone")
    save_recovery_codes(page)

    expect(page.locator("#signed-in")).to_be_visible()
