"""End to end: the demo CLI (examples/demo_cli.py, a subprocess) signs in with the device flow against a
live provider and the demo API, and the user approves it in Debian's Chromium.

The first approval is a password and a new TOTP (acr mfa): the CLI reads the API's profile with it,
but the account statement answers with an RFC 9470 challenge (phr within 300 s). The CLI starts a new device
flow with the challenge's acr_values and max_age; the user, still signed in, proves only what is
missing (a passkey enrolled meanwhile, on Chromium's virtual authenticator), and the statement goes
through with acr phr.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from support.browser import DESKTOP, REPO_ROOT, VirtualAuthenticator, password_then_new_totp, screenshot
from support.device_flow import DEVICE_GRANT
from support.live import LiveProvider, free_port, start_provider
from support.oidc_client import register_client
from support.step_up import load_example, serving

pytestmark = pytest.mark.browser

DEMO_CLI = REPO_ROOT / "examples" / "demo_cli.py"
USERNAME = "casey"
PASSWORD = "a long enough password"
OPEN_LINK = re.compile(r"^To sign in, open (\S+)$")
WAIT = 60


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LiveProvider]:
    """The provider on localhost (WebAuthn needs a domain), polled every second."""
    provider = start_provider(tmp_path, host="localhost", extra="[device]\npoll_interval = 1\n")
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=DESKTOP)
    try:
        yield context
    finally:
        context.close()


class RunningCli:
    """The demo CLI's output, line by line as it prints it (read by a thread: the CLI waits on us)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str]) -> re.Match[str]:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            found = pattern.match(line)
            if found:
                return found
        raise AssertionError(f"the CLI never printed {pattern.pattern}:\n" + "\n".join(self.lines))


def approve_first_time(page: Page, link: str) -> None:
    """verification_uri_complete: the code is filled in; confirm, then password and a new TOTP (its
    recovery codes saved)."""
    page.goto(link)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#client-name")).to_have_text("Demo CLI")
    screenshot(page, "device-confirm-desktop")
    page.get_by_role("button", name="Continue and sign in").click()
    password_then_new_totp(page, USERNAME, PASSWORD)
    expect(page.get_by_role("heading", name="Device connected")).to_be_visible()


def enrol_passkey(page: Page, issuer: str) -> None:
    """On the account page, where the sign-in a moment ago is fresh enough."""
    page.goto(f"{issuer}/account")
    page.get_by_role("link", name="Add a passkey or security key").click()
    page.locator("#passkey-name").fill("Laptop")
    page.locator("#passkey-register").click()
    expect(page.locator("li.factor").filter(has_text="Laptop")).to_have_count(1)


def step_up(page: Page, link: str) -> None:
    """The second device flow asks for phr: only the passkey is missing."""
    page.goto(link)
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Continue and sign in").click()
    passkey = page.locator("#passkey-second-factor")
    expect(passkey).to_be_visible()
    expect(page.get_by_label("Password")).to_have_count(0)
    passkey.click()
    expect(page.get_by_role("heading", name="Device connected")).to_be_visible()
    screenshot(page, "device-connected-desktop")


def test_the_demo_cli_signs_in_in_chromium_and_steps_up_for_the_statement(
    provider: LiveProvider, context: BrowserContext, tmp_path: Path
) -> None:
    created = provider.idp("users", "create", USERNAME, "--password-stdin", stdin=f"{PASSWORD}\n")
    assert created.returncode == 0, created.stderr
    cli = register_client(provider, "Demo CLI", "--public", "--grant-type", DEVICE_GRANT, redirect=False)
    app = register_client(provider, "Demo console app")  # the API's other audience, as `idp demo` runs it
    api = load_example(
        "demo_api",
        DEMO_ISSUER=provider.issuer,
        DEMO_CLIENT_ID=app.client_id,
        DEMO_CLI_CLIENT_ID=cli.client_id,
    )
    page = context.new_page()
    VirtualAuthenticator.attach(context, page, backup_eligible=False)
    with serving(api.app, free_port()) as api_url:
        process = subprocess.Popen(
            [sys.executable, str(DEMO_CLI), "--issuer", provider.issuer, "--api", api_url],
            env={**os.environ, "DEMO_CLI_CLIENT_ID": cli.client_id, "PYTHONIOENCODING": "utf-8"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            running = RunningCli(process)
            approve_first_time(page, running.wait_for(OPEN_LINK).group(1))
            signed_in = running.wait_for(re.compile(r"^Signed in: acr=(\S+) amr=(.*) auth_time=\d+$"))
            assert signed_in.group(1) == "mfa" and {"pwd", "otp", "mfa"} <= set(signed_in.group(2).split())
            me = running.wait_for(re.compile(r"^GET /api/me: 200 (.*)$"))
            assert json.loads(me.group(1))["acr"] == "mfa"
            running.wait_for(re.compile(r"^The API asks for more: needs authentication at phr or phrh"))
            second_link = running.wait_for(OPEN_LINK).group(1)
            enrol_passkey(page, provider.issuer)
            step_up(page, second_link)
            stepped_up = running.wait_for(re.compile(r"^Signed in: acr=(\S+) amr=(.*) auth_time=\d+$"))
            assert stepped_up.group(1) == "phr" and "swk" in stepped_up.group(2).split()
            statement = running.wait_for(re.compile(r"^GET /api/statement: (.*)$"))
            assert statement.group(1) == "sent 2026-11 (acr=phr)", "\n".join(running.lines)
            assert process.wait(timeout=WAIT) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    (tmp_path / "demo_cli.log").write_text("\n".join(running.lines))
