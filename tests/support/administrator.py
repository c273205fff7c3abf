"""An administrator signing in over real HTTP with an attested test key: a software authenticator
whose attestation chains to a test vendor's CA (Chromium's virtual authenticator cannot attest with
it). The JSON calls are the ones webauthn.js makes, with the page's CSRF token."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from support.attestation import Attester, CertificateAuthority
from support.live import LiveProvider
from support.oidc_client import TIMEOUT, Browser, is_password_page, is_recovery_codes_page
from support.soft_authenticator import SoftAuthenticator

VENDOR = CertificateAuthority("Administrators' Key Vendor")
ENROL_KEY_PAGE = re.compile(r"^/signin/[^/]+/enrol/passkey$")


def attestation_settings(directory: Path) -> str:
    """The [webauthn] settings that trust VENDOR's keys (its root written under `directory`)."""
    roots = directory / "attestation-roots"
    VENDOR.write(roots)
    return f'[webauthn]\nattestation_roots = "{roots}"\n'


def create_administrator(live: LiveProvider, username: str, password: str) -> SoftAuthenticator:
    """`idp users create NAME --admin`; returns the attested key they will enrol at their first sign-in."""
    done = live.idp("users", "create", username, "--admin", "--password-stdin", stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    return SoftAuthenticator(origin=live.issuer, backup_eligible=False, attester=Attester(VENDOR))


def sign_in_administrator(
    browser: Browser, page: requests.Response, *, username: str, password: str, key: SoftAuthenticator
) -> requests.Response:
    """From the password page: the password, the key enrolled when it is new, then used; returns where
    the provider sends the user agent next."""
    assert is_password_page(page), page.text
    page = browser.submit(page, username=username, password=password)
    if ENROL_KEY_PAGE.match(urlsplit(page.url).path):
        options = _post(browser, page, "/options", {})
        created = _post(browser, page, "", {"credential": key.create(options)})
        page = browser.visit(browser.provider.issuer + created["redirect"])
        if is_recovery_codes_page(page):  # the first second factor: its recovery codes are shown once
            page = browser.save_recovery_codes(page)
    return use_key(browser, page, key)


def use_key(browser: Browser, factor_page: requests.Response, key: SoftAuthenticator) -> requests.Response:
    """The factor page's security key: its options, the assertion, then where the provider leads."""
    base = "/".join(urlsplit(factor_page.url).path.split("/")[:3])
    options = _post(browser, factor_page, "/passkey/options", {}, base=base)
    answer = _post(browser, factor_page, "/passkey", {"credential": key.get(options)}, base=base)
    return browser.visit(browser.provider.issuer + answer["redirect"])


def _post(
    browser: Browser, page: requests.Response, suffix: str, body: dict[str, Any], *, base: str | None = None
) -> Any:
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert token, f"no csrf-token meta element at {page.url}"
    url = browser.provider.issuer + (base or urlsplit(page.url).path) + suffix
    answer = browser.http.post(url, json=body, headers={"X-CSRFToken": token.group(1)}, timeout=TIMEOUT)
    assert answer.status_code == 200, answer.text
    return answer.json()
