"""An in-process provider on embedded stores, and a browser-like driver for its hosted pages."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pyotp
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from idp.app import create_app
from idp.auth.passwords import Passwords
from idp.cli import initialize
from idp.config import Settings, settings_from_mapping
from idp.management.context import CLI, Management
from idp.management.logout import CommandLineLogout
from idp.oidc.clients import register_client
from idp.store.durable import DurableStore
from idp.store.tables import User
from idp.web import services

REDIRECT_URI = "http://localhost:9999/callback"
CHEAP_ARGON2 = {"memory_cost": 8192, "time_cost": 1}
# Test clients share a few addresses: the per-address limits would be all tests' at once.
ONE_ADDRESS_FOR_ALL = {"sign_ins": 1_000_000, "audited_failures": 1_000_000}


def make_settings(directory: Path, **overrides: Any) -> Settings:
    raw: dict[str, Any] = {
        "instance_dir": str(directory / "instance"),
        "keys": {"directory": str(directory / "keys")},
        "passwords": dict(CHEAP_ARGON2),
        "address_limits": dict(ONE_ADDRESS_FOR_ALL),
    }
    for key, value in overrides.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return settings_from_mapping(raw)


def make_app(directory: Path, **overrides: Any) -> Flask:
    settings = make_settings(directory, **overrides)
    initialize(settings, report=lambda _line: None)
    return create_app(settings)


def add_user(app: Flask, username: str, password: str, *, disabled: bool = False) -> str:
    with app.app_context():
        found = services()
        with found.database.unit_of_work() as session:
            user = User(
                id=str(uuid.uuid4()),
                username=username,
                email=f"{username}@example.com",
                password_hash=Passwords(found.settings.passwords).hash(password),
                disabled=disabled,
                created_at=int(time.time()),
            )
            DurableStore.over(session).users.add(user)
    return user.id


def add_client(
    app: Flask,
    *,
    name: str = "Test app",
    scope: str = "openid profile",
    default_acr_values: Sequence[str] = (),
    default_max_age: int | None = None,
    jwks: dict[str, Any] | None = None,
    third_party: bool = False,
) -> tuple[str, str]:
    """A confidential client registered as `idp clients create` would, with its OIDC defaults (and the
    public keys of its request objects, `jwks`)."""
    created = register_client(
        name=name,
        redirect_uris=[REDIRECT_URI],
        public=False,
        grant_types=[],
        scope=scope,
        default_acr_values=default_acr_values,
        default_max_age=default_max_age,
        jwks=jwks,
        third_party=third_party,
    )
    with app.app_context(), services().database.unit_of_work() as session:
        DurableStore.over(session).clients.add(created.client)
    assert created.secret is not None
    return created.client.client_id, created.secret


class management_of:
    """The management layer in one unit of work of the app's database, acting as the CLI does."""

    def __init__(self, app: Flask) -> None:
        self._app = app

    def __enter__(self) -> Management:
        self._context = self._app.app_context()
        self._context.__enter__()
        found = services()
        self._unit = found.database.unit_of_work()
        store = DurableStore.over(self._unit.__enter__())
        self._logout = CommandLineLogout(found.settings, store=store, ephemeral=found.ephemeral)
        return Management(
            store=store,
            ephemeral=found.ephemeral,
            settings=found.settings,
            actor=CLI,
            tell_clients=self._logout,
        )

    def __exit__(self, *exc: Any) -> None:
        self._unit.__exit__(*exc)
        self._context.__exit__(*exc)
        self._logout.deliver()


def csrf_token(page: TestResponse) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert found, "the page has no CSRF token"
    return found.group(1)


def meta_csrf_token(page: TestResponse) -> str:
    """The token webauthn.js sends as X-CSRFToken: the page's <meta name="csrf-token">."""
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.get_data(as_text=True))
    assert found, "the page has no csrf-token meta element"
    return found.group(1)


@dataclass
class Browser:
    """Follows the hosted pages the way a person would, one form at a time."""

    client: FlaskClient
    client_id: str
    code_verifier: str = ""

    def authorize(self, **extra: str) -> TestResponse:
        verifier = self.code_verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": "openid profile",
            "state": "xyz",
            "nonce": "n-1",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            **extra,
        }
        return self.follow(self.client.get("/authorize", query_string=params))

    def follow(self, response: TestResponse) -> TestResponse:
        """Follow redirects inside the provider; stop at the client's redirect URI."""
        while response.status_code == 302 and response.location.startswith("/"):
            response = self.client.get(response.location)
        return response

    def submit(self, page: TestResponse, **fields: str) -> TestResponse:
        action = re.search(r'<form method="post" action="([^"]+)"', page.get_data(as_text=True))
        assert action, "the page has no form"
        return self.follow(self.client.post(action.group(1), data={"csrf_token": csrf_token(page), **fields}))

    def post_json(self, url: str, body: dict[str, Any], *, csrf: str) -> TestResponse:
        """POST the way webauthn.js does: a JSON body and the page's token as X-CSRFToken."""
        return self.client.post(url, json=body, headers={"X-CSRFToken": csrf})

    def redeem(self, code: str, secret: str) -> dict[str, Any]:
        """The client's back channel: code and this browser's PKCE verifier for tokens (RFC 6749 4.1.3)."""
        response = self.client.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": self.code_verifier,
            },
            auth=(self.client_id, secret),
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        tokens: dict[str, Any] = response.get_json()
        return tokens

    def id_token_claims(self, id_token: str) -> dict[str, Any]:
        """The ID token's claims, its signature checked against the published JWKS."""
        keys = jwt.PyJWKSet.from_dict(self.client.get("/jwks.json").get_json())
        key = keys[jwt.get_unverified_header(id_token)["kid"]]
        claims: dict[str, Any] = jwt.decode(
            id_token, key=key, algorithms=[key.algorithm_name], audience=self.client_id
        )
        return claims

    def sign_in_with_enrolment(self, username: str, password: str, **extra: str) -> tuple[TestResponse, str]:
        """Password, then TOTP enrolment from the page; returns the client's redirect and the secret."""
        enrol = self.submit(self.authorize(**extra), username=username, password=password)
        secret = re.search(r'id="secret">([A-Z2-7]+)<', enrol.get_data(as_text=True))
        assert secret, "expected the TOTP enrolment page"
        codes = self.submit(enrol, code=pyotp.TOTP(secret.group(1)).now(), name="phone")
        return self.save_recovery_codes(codes), secret.group(1)

    def save_recovery_codes(self, page: TestResponse) -> TestResponse:
        """The recovery codes shown after the first second factor: ticked as saved, then onwards."""
        assert page.request.path.endswith("/recovery-codes"), (page.status_code, page.request.path)
        assert len(re.findall(r"<li><code>[a-z2-7-]+</code></li>", page.get_data(as_text=True))) == 10
        return self.submit(page, saved="yes")


def code_from(response: TestResponse) -> str:
    assert response.status_code == 302 and response.location.startswith(REDIRECT_URI), response.location
    return parse_qs(urlsplit(response.location).query)["code"][0]
