"""Chromium signs in through Debian's nginx terminating TLS (a throwaway CA Chromium trusts through its
command line, never by ignoring every certificate error): password and TOTP, to the demo app and back.

Real browsers send no Referer under the provider's `Referrer-Policy: no-referrer` (and `Origin: null` for
the pages' own forms): Flask-WTF's strict https Referer check would refuse them all, so the provider checks
the Origin with the CSRF token instead, and the sign-in passes.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import Browser, Page, Request, expect
from support.browser import DESKTOP, DemoApp, chromium, running_demo_app, save_recovery_codes
from support.live import LiveProvider, free_port, start_provider
from support.oidc_client import Authenticator, create_account
from support.reverse_proxy import Nginx, start_nginx

from idp.csrf_origin import OPAQUE_ORIGIN

pytestmark = pytest.mark.browser


def spki_hash(certificate: Path) -> str:
    """What --ignore-certificate-errors-spki-list takes: base64 of the SHA-256 of the public key's SPKI."""
    public_key = x509.load_pem_x509_certificate(certificate.read_bytes()).public_key()
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def proxied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LiveProvider, Nginx]]:
    port = free_port()
    live = start_provider(
        tmp_path, extra='trusted_proxies = ["127.0.0.1/32"]\n', issuer=f"https://localhost:{port}"
    )
    nginx = start_nginx(tmp_path, port=port, upstream=f"http://127.0.0.1:{live.process.args[-1]}")
    monkeypatch.setenv("SSL_CERT_FILE", str(nginx.ca_file))  # the demo app's back channel trusts the CA
    yield live, nginx
    nginx.stop()
    live.stop()


@pytest.fixture
def demo_app(proxied: tuple[LiveProvider, Nginx], tmp_path: Path) -> Iterator[DemoApp]:
    with running_demo_app(proxied[0], tmp_path) as app:
        yield app


@pytest.fixture
def trusting_browser(tmp_path: Path, proxied: tuple[LiveProvider, Nginx]) -> Iterator[Browser]:
    with chromium(f"--ignore-certificate-errors-spki-list={spki_hash(tmp_path / 'server.pem')}") as browser:
        yield browser


def sign_in(page: Page, username: str, password: str) -> None:
    page.locator("#login").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Continue").click()


def test_chromium_signs_in_with_password_and_totp_through_nginx_over_tls(
    proxied: tuple[LiveProvider, Nginx], demo_app: DemoApp, trusting_browser: Browser
) -> None:
    provider, _nginx = proxied
    account = create_account(provider, "chromium")
    context = trusting_browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    posts: list[Request] = []
    page.on("request", lambda request: posts.append(request) if request.method == "POST" else None)

    page.goto(f"{demo_app.base}/")
    sign_in(page, account.username, account.password)
    assert page.url.startswith(f"{provider.issuer}/"), "the hosted pages are served over TLS by nginx"
    page.get_by_text("Can't scan?").click()
    authenticator = Authenticator(page.locator("#secret").inner_text().strip())
    page.get_by_label("Code from the app").fill(authenticator.next_code())
    page.get_by_role("button", name="Turn on two-step sign-in").click()
    save_recovery_codes(page)
    expect(page.locator("#signed-in")).to_be_visible()

    page.get_by_role("link", name="Sign out").click()
    expect(page.locator("#login")).to_be_visible()
    sign_in(page, account.username, account.password)
    page.get_by_label("Code from your authenticator app").fill(authenticator.next_code())
    page.get_by_role("button", name="Verify").click()

    expect(page.locator("#signed-in")).to_be_visible()
    assert page.url == f"{demo_app.base}/"
    expect(page.locator("#acr")).to_have_text("mfa")
    expect(page.locator("#claims")).to_contain_text('"otp"')
    to_provider = [post for post in posts if post.url.startswith(f"{provider.issuer}/")]
    assert len(to_provider) >= 4, "two passwords, the enrolment and the code, posted through nginx"
    for post in to_provider:
        assert "referer" not in post.headers, post.url
        # Same-origin posts under no-referrer: Chromium says `null` (Fetch 3.1.4); another site, its own.
        assert post.headers.get("origin") in (OPAQUE_ORIGIN, provider.issuer), post.url
    context.close()
