"""For browser tests: Debian's Chromium, the demo relying party, screenshots and a virtual authenticator.

Plain functions and context managers; each test module wraps them in the fixtures it needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
import pytest
import requests
from playwright.sync_api import (
    Browser,
    BrowserContext,
    CDPSession,
    Page,
    ViewportSize,
    expect,
    sync_playwright,
)

from support.live import LiveProvider, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
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


@contextmanager
def chromium(*extra_args: str) -> Iterator[Browser]:
    """Debian's Chromium through Playwright; a missing browser fails the test rather than skipping it.
    `extra_args` are more command-line flags (a certificate to trust, ...)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args]
        )
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


# -- the demo relying party ---------------------------------------------------------------------


@dataclass(frozen=True)
class DemoApp:
    """examples/demo_rp.py running as a public client of the provider."""

    base: str
    client_id: str

    @property
    def redirect_uri(self) -> str:
        return f"{self.base}/callback"


@contextmanager
def running_demo_app(provider: LiveProvider, directory: Path, *, api: str = "") -> Iterator[DemoApp]:
    """Register the demo app with the CLI, start it on a free port (calling the demo API at `api`, when
    given), stop it afterwards."""
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
    app = DemoApp(base=base, client_id=json.loads(registered.stdout)["client_id"])
    log = directory / "demo_rp.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(DEMO_RP)],
            env={
                **os.environ,
                "DEMO_ISSUER": provider.issuer,
                "DEMO_CLIENT_ID": app.client_id,
                "DEMO_PORT": str(port),
                **({"DEMO_API": api} if api else {}),
            },
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_answering(f"{base}/", process, log)
        yield app
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_until_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url} exited:\n{log.read_text()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise AssertionError(f"nothing answered at {url} within 30 s:\n{log.read_text()}")


# -- WebAuthn -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VirtualAuthenticator:
    """A platform authenticator Chromium emulates (CDP WebAuthn domain): CTAP2, internal transport,
    resident keys, user verification, and a user who is always present."""

    cdp: CDPSession
    authenticator_id: str

    @classmethod
    def attach(cls, context: BrowserContext, page: Page, *, backup_eligible: bool) -> VirtualAuthenticator:
        """`backup_eligible` makes its credentials synced passkeys (BE and BS flags) or device-bound."""
        cdp = context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
        added = cdp.send(
            "WebAuthn.addVirtualAuthenticator",
            {
                "options": {
                    "protocol": "ctap2",
                    "transport": "internal",
                    "hasResidentKey": True,
                    "hasUserVerification": True,
                    "isUserVerified": True,
                    "automaticPresenceSimulation": True,
                    "defaultBackupEligibility": backup_eligible,
                    "defaultBackupState": backup_eligible,
                }
            },
        )
        return cls(cdp=cdp, authenticator_id=added["authenticatorId"])

    def set_user_verified(self, verified: bool) -> None:
        """False: the user fails the authenticator's check (wrong PIN, unknown finger)."""
        self.cdp.send(
            "WebAuthn.setUserVerified",
            {"authenticatorId": self.authenticator_id, "isUserVerified": verified},
        )

    def credentials(self) -> list[dict[str, Any]]:
        answer = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})
        return list(answer["credentials"])


def password_then_new_totp(page: Page, username: str, password: str) -> None:
    """On the password page of a first sign-in: the password, then the mandatory authenticator app
    (its key typed from "Can't scan?"), then its recovery codes saved."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()
    page.get_by_text("Can't scan?").click()
    secret = page.locator("#secret")
    expect(secret).to_be_visible()
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret.inner_text().strip()).now())
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    save_recovery_codes(page)


def save_recovery_codes(page: Page) -> None:
    """The recovery codes shown after the first second factor: ten of them, ticked as saved, onwards."""
    codes = page.locator("#recovery-codes li")
    codes.first.wait_for()
    assert codes.count() == 10
    page.get_by_label("I have saved my recovery codes").check()
    page.get_by_role("button", name="Continue").click()
