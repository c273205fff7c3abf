"""A relying party on Authlib's requests client (`OAuth2Session`), as applications use it: the code flow
with PKCE, refresh, client credentials and introspection against a live provider. The hosted pages in
between are driven by support.oidc_client's Browser, the way a browser without JavaScript would.
"""

from __future__ import annotations

from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session

from support.oidc_client import Account, Browser, Client, OpenIdProvider, location


def oauth_session(
    op: OpenIdProvider, client: Client, *, scope: str = "openid profile", redirect_uri: str | None = None
) -> OAuth2Session:
    """Authlib's client for `client`: HTTP Basic with its secret, or a public client; PKCE S256 for both."""
    return OAuth2Session(
        client_id=client.client_id,
        client_secret=client.secret,
        token_endpoint_auth_method="client_secret_basic" if client.secret else "none",
        scope=scope,
        redirect_uri=redirect_uri or client.redirect_uri,
        code_challenge_method="S256",
        token_endpoint=op.endpoint("token"),
    )


def authorization_redirect(
    session: OAuth2Session, browser: Browser, *, account: Account | None = None
) -> tuple[str, str, str]:
    """Authlib builds the authorization request and the browser gets through the hosted pages (signing
    `account` in when given); returns where the provider sent the browser, Authlib's state and verifier."""
    verifier = generate_token(48)
    url, state = session.create_authorization_url(
        browser.provider.metadata["authorization_endpoint"], code_verifier=verifier, nonce=generate_token(12)
    )
    page = browser.visit(url)
    if account is not None:
        page = browser.pass_sign_in(page, account)
    target = location(page) if page.is_redirect else None
    assert target is not None, f"expected a redirect to the client, got {page.status_code} at {page.url}"
    return target, state, verifier


def code_flow(session: OAuth2Session, browser: Browser, *, account: Account | None = None) -> dict[str, Any]:
    """The authorization code flow with PKCE to the end: Authlib redeems the code it was sent."""
    callback, state, verifier = authorization_redirect(session, browser, account=account)
    assert callback.startswith(f"{session.redirect_uri}?"), callback
    token: dict[str, Any] = session.fetch_token(
        authorization_response=callback, state=state, code_verifier=verifier
    )
    return token


def introspect(session: OAuth2Session, op: OpenIdProvider, token: str) -> dict[str, Any]:
    """RFC 7662 as Authlib sends it, with the session's client credentials."""
    response = session.introspect_token(op.endpoint("introspection"), token=token)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer
