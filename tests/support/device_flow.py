"""The device authorization grant (RFC 8628) as tests drive it: the device at the device authorization
and token endpoints (requests), the user at /device (support.oidc_client.Browser)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import jwt
import requests

from support.oidc_client import TIMEOUT, Account, Browser, Client, OpenIdProvider

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass(frozen=True)
class Started:
    """A device authorization response (RFC 8628 3.2)."""

    client: Client
    answer: dict[str, Any]

    @property
    def device_code(self) -> str:
        return str(self.answer["device_code"])

    @property
    def user_code(self) -> str:
        return str(self.answer["user_code"])


def start(op: OpenIdProvider, client: Client, **form: str) -> Started:
    response = request_device_authorization(op, client, **form)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    return Started(client, response.json())


def request_device_authorization(op: OpenIdProvider, client: Client, **form: str) -> requests.Response:
    endpoint = op.metadata["device_authorization_endpoint"]
    return requests.post(
        endpoint, timeout=TIMEOUT, **client.authenticated({"scope": "openid profile", **form})
    )


def poll(op: OpenIdProvider, started: Started, *, client: Client | None = None) -> requests.Response:
    return op.token(client or started.client, grant_type=DEVICE_GRANT, device_code=started.device_code)


def error_of(response: requests.Response) -> str:
    """The OAuth error (RFC 6749 5.2), which always comes with a sentence for people."""
    assert response.status_code == 400, (response.status_code, response.text)
    answer = response.json()
    assert re.fullmatch(r"[A-Z][^'\"]*\.", answer["error_description"]), answer
    return str(answer["error"])


def id_token_claims(op: OpenIdProvider, id_token: str, *, expected_audience: str) -> dict[str, Any]:
    """OIDC Core 3.1.3.7 without a nonce: the device flow sends none."""
    key = op.signing_key(jwt.get_unverified_header(id_token)["kid"])
    claims: dict[str, Any] = jwt.decode(
        id_token, key=key, algorithms=[key.algorithm_name], audience=expected_audience, issuer=op.issuer
    )
    return claims


def confirm_page(browser: Browser, typed: str) -> requests.Response:
    """The user types the code at /device (as verification_uri_complete would fill it in)."""
    form = browser.visit(f"{browser.provider.issuer}/device", params={"user_code": typed})
    assert form.status_code == 200 and f'value="{typed}"' in form.text
    return browser.submit(form)


def approve(browser: Browser, started: Started, account: Account) -> requests.Response:
    """Confirm, sign in (password and second factor), and land on the "device connected" page."""
    confirm = confirm_page(browser, started.user_code)
    assert confirm.status_code == 200, confirm.text
    page = browser.submit(confirm, decision="allow")
    done = browser.pass_sign_in(page, account)
    assert done.status_code == 200 and "Device connected" in done.text, done.text
    return done
