"""A relying party on a real client library, step by step: Authlib's requests client (`OAuth2Session`)
building the authorization URL, reading the callback and redeeming the code as separate steps.

The user agent is still `support.oidc_client.Browser` (the hosted pages as a browser without
JavaScript sees them); this side builds the authorization URL, redeems the code and calls the
provider's back-channel endpoints the way an application using Authlib does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from support.oidc_client import TIMEOUT, Client, OpenIdProvider, location


@dataclass(frozen=True)
class AuthorizationUrl:
    """An authorization request as Authlib built it, with what the client keeps to redeem its answer."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass
class AuthlibRelyingParty:
    op: OpenIdProvider
    client: Client
    session: OAuth2Session

    @classmethod
    def of(
        cls,
        op: OpenIdProvider,
        client: Client,
        *,
        scope: str = "openid profile",
        code_challenge_method: str | None = "S256",
        **options: Any,
    ) -> AuthlibRelyingParty:
        """An OAuth2Session for `client` (HTTP Basic when it has a secret, PKCE S256 unless told not)."""
        session = OAuth2Session(
            client.client_id,
            client.secret,
            scope=scope,
            redirect_uri=client.redirect_uri,
            code_challenge_method=code_challenge_method,
            token_endpoint=op.endpoint("token"),
            token_endpoint_auth_method="client_secret_basic" if client.secret else "none",
            revocation_endpoint=op.endpoint("revocation"),
            default_timeout=TIMEOUT,
            **options,
        )
        return cls(op, client, session)

    def authorization_url(self, **params: str) -> AuthorizationUrl:
        """Authlib's authorization URL with a fresh state, nonce and PKCE verifier; `params` add to it."""
        verifier = generate_token(48)
        nonce = secrets.token_urlsafe(12)
        url, state = self.session.create_authorization_url(
            self.op.endpoint("authorization"), code_verifier=verifier, nonce=nonce, **params
        )
        return AuthorizationUrl(url, state, nonce, verifier)

    def callback(self, answer: requests.Response) -> str:
        """The URL the provider sent the user agent back to this client with (anything else fails)."""
        target = location(answer) if answer.is_redirect else None
        assert target is not None and target.split("?")[0] == self.client.redirect_uri, (
            f"expected a redirect to {self.client.redirect_uri}, got {answer.status_code} at {answer.url}"
        )
        return target

    def callback_params(self, answer: requests.Response) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.callback(answer)).query))

    def redeem(self, request: AuthorizationUrl, answer: requests.Response) -> dict[str, Any]:
        """Authlib takes the code from the redirect to the client (checking state) and fetches tokens."""
        tokens: dict[str, Any] = self.session.fetch_token(
            authorization_response=self.callback(answer),
            state=request.state,
            code_verifier=request.code_verifier,
        )
        return tokens
