"""End to end in a real browser: Debian's Chromium signs in to the demo app through the hosted pages.

Drives the real provider (`idp serve`) and the real demo relying party (examples/demo_rp.py) over HTTP.
Screenshots of each page land in test-artifacts/screenshots/ for a human to look at.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
import requests
from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright
from support.live import LiveProvider, free_port, start_provider

pytestmark = pytest.mark.browser

REPO_ROOT = Path(__file__).resolve().parents[1]
DEMO_RP = REPO_ROOT / "examples" / "demo_rp.py"
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)
USERNAME = "carol"
PASSWORD = "a long enough password"


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LiveProvider]:
    provider = start_provider(tmp_path)
    yield provider
    provider.stop()


@pytest.fixture
def demo_app(provider: LiveProvider, tmp_path: Path) -> Iterator[str]:
    """The demo relying party's base URL: registered as a public client, running against the provider."""
    port = free_port()
    base = f"http://localhost:{port}"
    registered = provider.idp(
        "clients",
        "create",
        "--name",
        "Demo console app",
        "--public",
        "--redirect-uri",
        f"{base}/callback",
        "--post-logout-redirect-uri",
        f"{base}/",
        "--json",
    )
    assert registered.returncode == 0, registered.stderr
    client_id = json.loads(registered.stdout)["client_id"]
    log = tmp_path / "demo_rp.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(DEMO_RP)],
            env={
                **os.environ,
                "DEMO_ISSUER": provider.issuer,
                "DEMO_CLIENT_ID": client_id,
                "DEMO_PORT": str(port),
            },
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_until_answering(f"{base}/", process, log)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_until_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"demo app exited:\n{log.read_text()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"demo app did not answer at {url} within 30 s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium; a missing browser fails the test rather than skipping it."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    yield context.new_page()
    context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_signs_in_enrols_totp_and_lands_on_demo_app(
    provider: LiveProvider, demo_app: str, page: Page
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

    page.goto(f"{demo_app}/")
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

    expect(page.locator("#signed-in")).to_be_visible()
    assert page.url == f"{demo_app}/"
    expect(page.locator("#acr")).to_have_text("mfa")
    expect(page.locator("#claims")).to_contain_text('"otp"')
    screenshot(page, "demo-app-signed-in-desktop")

    page.get_by_role("link", name="Sign out").click()

    expect(page.locator("#login")).to_be_visible()
    assert page.url == f"{demo_app}/"
