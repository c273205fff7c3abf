"""A relying party built on Authlib's OAuth 2.0 client: what an application using Authlib sends.

Authlib's `OAuth2Session` makes the authorization request (state, nonce, PKCE with S256) and, once
the user agent is sent back, checks `state` and redeems the code at the token endpoint with HTTP
Basic client authentication. In between, an `oidc_client.Browser` carries the user through the
hosted pages. The answer is read as the client and its resource server read it: the ID token
(OIDC Core 3.1.3.7), the access token (RFC 9068) and introspection (RFC 7662), each verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from support.oidc_client import Attempt, Browser, Client, OpenIdProvider, Pkce, location


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


@dataclass(frozen=True)
class Authorization:
    """One authorization request as Authlib made it (its session holds the client's credentials)."""

    session: OAuth2Session
    attempt: Attempt

    @property
    def page(self) -> requests.Response:
        """Where the user agent settled: a hosted page, or already the redirect to the client."""
        return self.attempt.page


@dataclass(frozen=True)
class AuthlibRelyingParty:
    """A confidential client registered with the provider; it introspects its own access tokens."""

    provider: OpenIdProvider
    client: Client

    def authorize(self, browser: Browser, **params: str) -> Authorization:
        """Authlib's authorization URL (scope "openid profile" unless `params` say otherwise), visited."""
        assert self.client.secret is not None, "a confidential client"
        session = OAuth2Session(
            self.client.client_id,
            self.client.secret,
            scope="openid profile",
            redirect_uri=self.client.redirect_uri,
            code_challenge_method="S256",
        )
        nonce, pkce = generate_token(20), Pkce.new()
        url, state = session.create_authorization_url(
            self.provider.metadata["authorization_endpoint"],
            code_verifier=pkce.verifier,
            nonce=nonce,
            **params,
        )
        return Authorization(session, Attempt(self.client, state, nonce, pkce, browser.visit(url)))

    def finish(self, authorization: Authorization, response: requests.Response) -> Answered:
        """The redirect to the client: Authlib checks state and redeems the code; the answer verified."""
        attempt = authorization.attempt
        callback = attempt.callback(response)
        assert callback.get("iss") == self.provider.issuer, callback
        assert attempt.pkce is not None
        token = authorization.session.fetch_token(
            self.provider.endpoint("token"),
            authorization_response=location(response),
            state=attempt.state,
            code_verifier=attempt.pkce.verifier,
        )
        audience = self.client.client_id
        return Answered(
            id_token=self.provider.verify_id_token(
                token["id_token"], expected_audience=audience, expected_nonce=attempt.nonce
            ),
            access_token=self.provider.verify_access_token(token["access_token"], expected_audience=audience),
            introspection=self.provider.introspect(token["access_token"], resource_server=self.client),
        )
