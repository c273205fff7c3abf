"""Chromium walks the demo transfer: the demo API asks for the payment's approval, the provider shows
"Pay 120.00 EUR to ACME Ltd" and the passkey signs it, and the demo API then makes that payment.

The provider declares the demo's payment type as `idp demo` does; the demo app (a process) calls the
demo API (in this process) on real ports. Chromium's virtual authenticator answers WebAuthn.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from support.browser import DESKTOP, DemoApp, VirtualAuthenticator, running_demo_app, screenshot
from support.live import LiveProvider, free_port, start_provider
from support.step_up import EXAMPLES, load_example, serving
from test_passkey import KINDS, PASSWORD, USERNAME, enrol_passkey, sign_in_with_password_and_new_totp

pytestmark = pytest.mark.browser

PAYMENT_TYPE = (
    "[authorization_details.payment]\n"
    f'schema = "{EXAMPLES / "payment.schema.json"}"\n'
    'title = "Pay {amount} {currency} to {creditorName}"\nacr = "phr"\none_time = true\n'
)


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LiveProvider]:
    provider = start_provider(tmp_path, host="localhost", extra=PAYMENT_TYPE)
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def demo_app(provider: LiveProvider, tmp_path: Path) -> Iterator[DemoApp]:
    """The demo app, registered and running, and the demo API it calls."""
    with running_demo_app(provider, tmp_path, api=f"http://127.0.0.1:{API_PORT}") as app:
        demo_api = load_example("demo_api", DEMO_ISSUER=provider.issuer, DEMO_CLIENT_ID=app.client_id)
        with serving(demo_api.app, API_PORT):
            yield app


API_PORT = free_port()


def test_chromium_walks_the_demo_transfer_approving_the_payment_with_a_passkey(
    provider: LiveProvider, demo_app: DemoApp, browser: Browser
) -> None:
    created = provider.idp("users", "create", USERNAME, "--password-stdin", stdin=f"{PASSWORD}\n")
    assert created.returncode == 0, created.stderr
    context = browser.new_context(viewport=DESKTOP)
    try:
        page = context.new_page()
        synced = KINDS[1]
        VirtualAuthenticator.attach(context, page, backup_eligible=synced.backup_eligible)
        sign_in_with_password_and_new_totp(page, demo_app)
        enrol_passkey(page, provider.issuer, synced)

        page.goto(f"{demo_app.base}/")
        page.get_by_role("button", name="Pay 120.00 EUR to ACME Ltd").click()
        expect(page.get_by_role("heading", name="You are approving")).to_be_visible()
        expect(page.locator("#transaction-details li")).to_have_text(["Pay 120.00 EUR to ACME Ltd"])
        expect(page.locator("#code")).to_have_count(0)  # phr: no authenticator app code approves it
        screenshot(page, "transaction-approval-desktop")

        page.locator("#passkey-second-factor").click()
        expect(page.locator("#transfer-result")).to_have_text("Done: transferred 120.00 EUR to ACME Ltd")
        expect(page.locator("#acr")).to_have_text("phr")
    finally:
        context.close()
