"""Every hosted page in Simplified Chinese, in Chromium (issue 19, point 4).

A browser whose language is zh-CN walks a live `idp serve`: the sign-in with a password and a first
authenticator app, its recovery codes, a step-up with a wrong and then a right recovery code, consent,
account selection, every account page, the device flow, a password reset, an error page, sign-out,
and the admin console as an administrator. On each page <html lang> names Chinese, the text and the
title are Chinese, and no English phrase of the catalogue shows. The pages are found by their
structure (ids, names, form actions), never by English words.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import pyotp
import pytest
from babel.messages.pofile import read_po
from playwright.sync_api import Browser, BrowserContext, Error, Page, expect
from support.administrator import attestation_settings, create_administrator, sign_in_administrator
from support.browser import DESKTOP
from support.device_flow import DEVICE_GRANT, start
from support.live import LiveProvider, start_provider
from support.oidc_client import Browser as HttpBrowser
from support.oidc_client import OpenIdProvider, register_client

CATALOGUE = Path(__file__).resolve().parents[2] / "idp/translations/zh_Hans_CN/LC_MESSAGES/messages.po"
CJK = re.compile(r"[\u4e00-\u9fff]")
DEAD_END = "http://127.0.0.1:9/callback"  # nothing answers: the walk stops where the app would begin
USERNAME, PASSWORD = "robin", "a long enough password"
# The page's text as a person sees it: without scripts and without the parts `ignored` names (raw data
# in English by design: the console's audit records, a client's registration values).
VISIBLE_TEXT = """(ignored) => {
  const body = document.body.cloneNode(true);
  for (const selector of ["script", "style", "noscript", ...ignored]) {
    body.querySelectorAll(selector).forEach((element) => element.remove());
  }
  return body.textContent;
}"""


def english_phrases() -> list[str]:
    """Every phrase of two words or more that the English pages say: the catalogue's messages without
    their markup, cut at their placeholders."""
    with CATALOGUE.open("rb") as po:
        messages = [entry.id for entry in read_po(po) if entry.id]
    phrases: set[str] = set()
    for message in messages:
        for text in message if isinstance(message, tuple) else (message,):
            for part in re.split(r"%\(\w+\)[sd]", re.sub(r"<[^>]+>", " ", text)):
                words = part.strip(" .,:;?!()'“”").split()
                if len(words) >= 2:
                    phrases.add(" ".join(words))
    return sorted(phrases)


PHRASES = english_phrases()


@dataclass
class ChinesePages:
    """Checks each page the walk reaches; `seen` names them, in order."""

    page: Page
    seen: list[str] = field(default_factory=list)

    def check(self, name: str, *, ignored: tuple[str, ...] = ()) -> None:
        page = self.page
        expect(page.locator("html")).to_have_attribute("lang", re.compile(r"^zh"))
        shown = " ".join(str(page.evaluate(VISIBLE_TEXT, list(ignored))).split())
        assert CJK.search(shown), f"{name} ({page.url}): no Chinese text"
        assert CJK.search(page.title()), f"{name}: the title {page.title()!r} is not Chinese"
        leaked = [phrase for phrase in PHRASES if phrase in shown]
        assert leaked == [], f"{name} ({page.url}) shows English: {leaked}"
        self.seen.append(name)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveProvider]:
    provider = start_provider(tmp_path, host="localhost", extra=attestation_settings(tmp_path))
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture
def chinese(browser: Browser) -> Iterator[BrowserContext]:
    """A browser set to Simplified Chinese (its Accept-Language is zh-CN)."""
    context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    try:
        yield context
    finally:
        context.close()


def authorize_url(live: LiveProvider, client_id: str, **extra: str) -> str:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": DEAD_END,
        "scope": "openid profile",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{live.issuer}/authorize?{urlencode(params)}"


def leave_for_the_app(page: Page, click: str) -> None:
    """Click what ends at the app's redirect URI, where nothing answers."""
    try:
        page.locator(click).click()
        page.wait_for_url(f"{DEAD_END}*", timeout=10_000)
    except Error:
        pass


def submit(page: Page, form: str) -> None:
    page.locator(f"{form} button[type=submit]").first.click()


def test_every_page_speaks_simplified_chinese(
    live: LiveProvider, chinese: BrowserContext, browser: Browser
) -> None:
    created = live.idp(
        "users",
        "create",
        USERNAME,
        "--email",
        "robin@example.com",
        "--email-verified",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    app = register_client(live, "Console app", "--public", redirect_uri=DEAD_END)
    partner = register_client(
        live,
        "Partner app",
        "--public",
        "--third-party",
        "--grant-type",
        "authorization_code",
        "--grant-type",
        DEVICE_GRANT,
        redirect_uri=DEAD_END,
    )
    pages = ChinesePages(chinese.new_page())
    page, issuer = pages.page, live.issuer

    page.goto(f"{issuer}/")
    pages.check("home")
    page.goto(authorize_url(live, app.client_id))
    pages.check("sign-in: password")
    page.locator(".forgot a").click()
    pages.check("forgot password")
    page.locator("#who").fill(USERNAME)
    submit(page, "form")
    pages.check("forgot password: sent")

    page.goto(authorize_url(live, app.client_id))
    page.locator("#username").fill(USERNAME)
    page.locator("#password").fill("not the password")
    submit(page, "form")
    pages.check("sign-in: wrong password")
    page.locator("#username").fill(USERNAME)
    page.locator("#password").fill(PASSWORD)
    submit(page, "form")
    pages.check("first sign-in: choose a second factor")
    page.locator("details summary").first.click()
    totp = pyotp.TOTP(page.locator("#secret").inner_text().strip())
    page.locator("#code").fill("000000")
    submit(page, "form[action$='/enrol/totp']")
    pages.check("first sign-in: wrong code")
    page.locator("#code").fill(totp.now())
    submit(page, "form[action$='/enrol/totp']")
    pages.check("first sign-in: recovery codes")
    codes = page.locator("#recovery-codes code").all_inner_texts()
    page.locator("input[name=saved]").check()
    leave_for_the_app(page, "form button[type=submit]")

    page.goto(authorize_url(live, app.client_id, max_age="0"))
    pages.check("step-up")
    page.locator("details.method summary").click()
    page.locator("#recovery_code").fill("not-a-code")
    submit(page, "form[action$='/recovery']")
    pages.check("step-up: wrong recovery code")
    page.locator("#recovery_code").fill(codes[0])
    submit(page, "form[action$='/recovery']")
    pages.check("recovery code used")
    leave_for_the_app(page, "#continue")

    page.goto(authorize_url(live, partner.client_id))
    pages.check("consent")
    leave_for_the_app(page, "button[value=allow]")
    page.goto(authorize_url(live, app.client_id, prompt="select_account"))
    pages.check("choose an account")
    leave_for_the_app(page, "button[value=continue]")

    for path in (
        "/account",
        "/account/sessions",
        "/account/history",
        "/account/applications",
        "/account/offline-access",
        "/account/recovery-codes",
        "/account/recovery-codes/new",
        "/account/sessions/end-others",
        "/account/email/new",
        "/account/totp/new",
        "/account/passkeys/new",
    ):
        page.goto(issuer + path)
        pages.check(path)
    page.goto(f"{issuer}/account")
    page.locator(".factor a.button").first.click()
    pages.check("remove a sign-in method?")
    page.goto(f"{issuer}/account/password")
    pages.check("change password: sign in again")

    started = start(OpenIdProvider(issuer), partner)
    page.goto(f"{issuer}/device")
    pages.check("device: code")
    page.locator("#user_code").fill(started.user_code)
    submit(page, "form")
    pages.check("device: confirm")
    page.locator("button[value=allow]").click()
    pages.check("device: connected")

    page.goto(f"{issuer}/no-such-page")
    pages.check("error 404")

    link = live.idp("users", "reset-link", USERNAME).stdout.strip()
    page.goto(link)
    pages.check("reset link")
    submit(page, "form")
    pages.check("reset: second factor")
    page.locator("#code").fill(totp.at(time.time() + 30))
    submit(page, "form[action$='/factor']")
    pages.check("reset: new password")
    page.locator("#password").fill("another long enough password")
    page.locator("#repeat").fill("another long enough password")
    submit(page, "form")
    pages.check("reset: done")
    page.goto(link)
    pages.check("reset link used")

    page.goto(f"{issuer}/logout")
    pages.check("sign out?")
    submit(page, "form")
    pages.check("signed out")

    console = console_in_chinese(live, browser)
    for path in ("/admin/users", "/admin/clients", f"/admin/clients/{app.client_id}", "/admin/audit"):
        console.page.goto(issuer + path)
        console.check(path, ignored=("table.history tbody", "code"))
    console.page.goto(f"{issuer}/admin/users")
    console.page.locator(f"tr.user a.inline >> text={USERNAME}").click()
    console.check("/admin/users/ID", ignored=("table.history tbody", ".sessions strong"))

    assert len(pages.seen) + len(console.seen) >= 40


def console_in_chinese(live: LiveProvider, browser: Browser) -> ChinesePages:
    """An administrator signed in over HTTP with an attested key (Chromium's virtual authenticator cannot
    attest), their session handed to a Chinese browser."""
    password = secrets.token_urlsafe(15)
    key = create_administrator(live, "root", password)
    http = HttpBrowser(OpenIdProvider(live.issuer))
    users = sign_in_administrator(
        http, http.visit(f"{live.issuer}/admin/users"), username="root", password=password, key=key
    )
    assert users.status_code == 200, users.url
    context = browser.new_context(viewport=DESKTOP, locale="zh-CN")
    context.add_cookies(
        [{"name": c.name, "value": c.value or "", "url": live.issuer} for c in http.http.cookies]
    )
    return ChinesePages(context.new_page())


def test_the_switcher_turns_a_page_chinese_and_the_choice_stays(live: LiveProvider, browser: Browser) -> None:
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    page = context.new_page()
    page.goto(f"{live.issuer}/no-such-page")
    expect(page.locator("html")).to_have_attribute("lang", "en")

    page.locator("nav.languages a[hreflang='zh-Hans-CN']").click()

    assert page.url == f"{live.issuer}/no-such-page"
    expect(page.locator("html")).to_have_attribute("lang", "zh-Hans-CN")
    expect(page.locator("h1")).to_have_text("找不到页面")
    page.goto(f"{live.issuer}/")
    expect(page.locator("h1")).to_have_text("身份提供方")
    expect(page.locator("nav.languages a[aria-current=true]")).to_have_text("简体中文")
    context.close()
