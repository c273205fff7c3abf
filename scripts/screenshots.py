"""`make screenshots`: a live provider (`idp serve`, embedded stores) walked in Chromium, every hosted page
saved at 1280 and 390 px wide into screenshots/ (git-ignored), for people to review."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import pyotp
from playwright.sync_api import Error, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from support.live import LiveProvider, start_provider  # noqa: E402

OUT = ROOT / "screenshots"
WIDTHS = {"desktop": (1280, 800), "phone": (390, 844)}
USERNAME, PASSWORD = "robin", "a long enough password"
REDIRECT_URI = "http://127.0.0.1:9/callback"  # nothing listens: the walk stops at the app


def shoot(page: Page, name: str) -> None:
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(OUT / f"{name}-{label}.png"), full_page=True)
    print(f"  {name}")


def authorize_url(provider: LiveProvider, client_id: str, **extra: str) -> str:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{provider.issuer}/authorize?{urlencode(params)}"


def leave_for_the_app(page: Page, action: object) -> None:
    """Click something that ends at the app's redirect URI, where nothing answers."""
    try:
        action()  # type: ignore[operator]
        page.wait_for_url(f"{REDIRECT_URI}*", timeout=10_000)
    except Error:
        pass


def walk(provider: LiveProvider, client_id: str, page: Page) -> None:
    issuer = provider.issuer
    page.goto(f"{issuer}/")
    shoot(page, "home")
    page.goto(authorize_url(provider, client_id))
    shoot(page, "signin-password")
    page.get_by_role("link", name="Forgot password?").click()
    shoot(page, "forgot-password")
    page.get_by_label("Username or email address").fill(USERNAME)
    page.get_by_role("button", name="Email me a link").click()
    shoot(page, "forgot-password-sent")
    page.go_back()
    page.go_back()
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Continue").click()
    shoot(page, "enrol-choice")
    page.get_by_text("Can't scan?").click()
    totp = pyotp.TOTP(page.locator("#secret").inner_text().strip())
    shoot(page, "enrol-key-by-hand")
    page.get_by_label("Code from the app").fill("000000")
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    shoot(page, "enrol-wrong-code")
    page.get_by_label("Code from the app").fill(totp.now())
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    shoot(page, "first-recovery-codes")
    page.get_by_label("I have saved my recovery codes").check()
    leave_for_the_app(page, lambda: page.get_by_role("button", name="Continue").click())

    page.goto(authorize_url(provider, client_id, max_age="0"))
    shoot(page, "signin-factor")
    page.locator("summary", has_text="Use a recovery code").click()
    page.get_by_label("Recovery code").fill("not-a-code")
    page.get_by_role("button", name="Use recovery code").click()
    shoot(page, "signin-factor-wrong-recovery-code")

    for path, name in [
        ("/account", "account"),
        ("/account/sessions", "account-sessions"),
        ("/account/history", "account-history"),
        ("/account/recovery-codes", "account-recovery-codes"),
        ("/account/recovery-codes/new", "account-recovery-codes-confirm"),
        ("/account/sessions/end-others", "account-end-sessions-confirm"),
        ("/account/email/new", "account-email"),
        ("/account/password", "account-password-reauthenticate"),
        ("/no-such-page", "error-404"),
    ]:
        page.goto(issuer + path)
        shoot(page, name)
    page.goto(f"{issuer}/account")
    page.locator("a.button", has_text="Remove").first.click()
    shoot(page, "account-remove-confirm")

    link = provider.idp("users", "reset-link", USERNAME).stdout.strip()
    page.goto(link)
    shoot(page, "reset-link")
    page.get_by_role("button", name="Continue").click()
    shoot(page, "reset-second-factor")
    page.goto(link)
    shoot(page, "reset-link-used")

    page.goto(f"{issuer}/logout")
    shoot(page, "sign-out-confirm")
    page.get_by_role("button", name="Sign out").click()
    shoot(page, "signed-out")


def main() -> int:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="idp-screenshots-") as directory:
        provider = start_provider(Path(directory), host="localhost")
        try:
            created = provider.idp(
                "users",
                "create",
                USERNAME,
                "--email",
                "robin@example.com",
                "--email-verified",
                "--password-stdin",
                stdin=PASSWORD + "\n",
            )
            registered = provider.idp(
                "clients",
                "create",
                "--name",
                "Console app",
                "--redirect-uri",
                REDIRECT_URI,
                "--public",
                "--json",
            )
            if created.returncode or registered.returncode:
                print(created.stderr + registered.stderr, file=sys.stderr)
                return 2
            client_id = json.loads(registered.stdout)["client_id"]
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    walk(provider, client_id, browser.new_context().new_page())
                finally:
                    browser.close()
        finally:
            provider.stop()
    print(f"screenshots in {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
