"""A relying party on a real client library: Authlib's requests client (`OAuth2Session`).

Authlib builds the authorization URL (state, nonce, PKCE with S256), reads the callback (checking
`state`) and redeems the code at the token endpoint with HTTP Basic client authentication, either
step by step (`authorization_url`, `callback`, `redeem`) or as a whole sign-in (`authorize`, then
`finish`, which reads the answer as the client and its resource server do: the ID token (OIDC Core
3.1.3.7), the access token (RFC 9068) and introspection (RFC 7662), each verified).

The user agent is `support.oidc_client.Browser` (the hosted pages as a browser without JavaScript
sees them).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from support.oidc_client import TIMEOUT, Browser, Client, OpenIdProvider, location


@dataclass(frozen=True)
class AuthorizationUrl:
    """An authorization request as Authlib built it, with what the client keeps to redeem its answer."""

    url: str
    state: str
    nonce: str
    code_verifier: str


@dataclass(frozen=True)
class Authorization:
    """An authorization request visited by a user agent: where it settled (a hosted page, or already
    the redirect to the client)."""

    request: AuthorizationUrl
    page: requests.Response


@dataclass(frozen=True)
class Answered:
    """What one sign-in gave the client, verified: ID token and access token claims, introspection."""

    id_token: dict[str, Any]
    access_token: dict[str, Any]
    introspection: dict[str, Any]

    @property
    def acr(self) -> tuple[str, str, str]:
        """The acr of the ID token, of the access token and of introspection, in that order."""
        return self.id_token["acr"], self.access_token["acr"], self.introspection["acr"]


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

    def authorize(self, browser: Browser, **params: str) -> Authorization:
        """The authorization URL (`params` add to it), visited by `browser`."""
        request = self.authorization_url(**params)
        return Authorization(request, browser.visit(request.url))

    def finish(self, authorization: Authorization, answer: requests.Response) -> Answered:
        """The redirect to the client (with `iss`, RFC 9207) redeemed; its tokens verified as a client
        and its resource server verify them."""
        assert self.callback_params(answer).get("iss") == self.op.issuer, self.callback(answer)
        tokens = self.redeem(authorization.request, answer)
        audience = self.client.client_id
        return Answered(
            id_token=self.op.verify_id_token(
                tokens["id_token"], expected_audience=audience, expected_nonce=authorization.request.nonce
            ),
            access_token=self.op.verify_access_token(tokens["access_token"], expected_audience=audience),
            introspection=self.op.introspect(tokens["access_token"], resource_server=self.client),
        )
