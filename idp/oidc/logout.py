"""Ending browser sessions at the clients that received tokens in them (OpenID Back-Channel Logout
1.0, Front-Channel Logout 1.0): their session-bound grants revoked, a signed logout_token for each
back-channel client, a URI for each front-channel one."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from authlib.common.urls import add_params_to_uri
from joserfc import jwt

from idp.oidc.context import ProviderContext
from idp.store.tables import Client, SessionClient

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LOGOUT_TOKEN_TYPE = "logout+jwt"
# Long enough for the delivery's retries, short enough that a leaked token is soon worthless.
LOGOUT_TOKEN_LIFETIME = 300


@dataclass(frozen=True)
class BackChannelNotice:
    """One logout_token for one client's back-channel logout URI (Back-Channel Logout 1.0 2.5)."""

    client_id: str
    uri: str
    logout_token: str


@dataclass(frozen=True)
class FrontChannelPage:
    """A client's front-channel logout URI as the sign-out page frames it (Front-Channel Logout 1.0 2)."""

    client_id: str
    uri: str

    @property
    def origin(self) -> str:
        parts = urlsplit(self.uri)
        return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class ClientLogout:
    """What ending sessions asks of the clients: notices to send once the change is committed, and
    pages for the user's browser to load."""

    notices: tuple[BackChannelNotice, ...]
    front_channel: tuple[FrontChannelPage, ...]


def end_sessions_at_clients(context: ProviderContext, sids: Iterable[str], *, reason: str) -> ClientLogout:
    """For each ended browser session: revoke the grants bound to it (not offline_access ones, OIDC
    Core 11), and address every client that received tokens in it by the channels it registered."""
    store = context.durable()
    notices: list[BackChannelNotice] = []
    pages: list[FrontChannelPage] = []
    now = int(time.time())
    for sid in dict.fromkeys(sids):
        for family_id in store.refresh_tokens.session_bound_families(sid):
            context.revoke_grant(family_id, reason=f"browser session ended ({reason})")
        for received, client in store.session_clients.take(sid):
            if client.backchannel_logout_uri:
                token = issue_logout_token(context, client=client, received=received, now=now)
                notices.append(BackChannelNotice(client.client_id, client.backchannel_logout_uri, token))
            if client.frontchannel_logout_uri:
                pages.append(FrontChannelPage(client.client_id, _front_channel_uri(context, client, sid)))
    return ClientLogout(tuple(notices), tuple(pages))


def issue_logout_token(context: ProviderContext, *, client: Client, received: SessionClient, now: int) -> str:
    """A logout_token (Back-Channel Logout 1.0 2.4): signed as the client's ID tokens are, naming the
    session and its user, with an `events` member and never a nonce (so it cannot pass as an ID token)."""
    key = context.keyring.signing_key(client.id_token_signed_response_alg)
    header = {"alg": client.id_token_signed_response_alg, "kid": key.kid, "typ": LOGOUT_TOKEN_TYPE}
    claims = {
        "iss": context.issuer,
        "aud": client.client_id,
        "iat": now,
        "exp": now + LOGOUT_TOKEN_LIFETIME,
        "jti": secrets.token_urlsafe(16),
        "sub": received.user_id,
        "sid": received.sid,
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    return jwt.encode(header, claims, key)


def _front_channel_uri(context: ProviderContext, client: Client, sid: str) -> str:
    """The registered URI, with `iss` and `sid` when the client asked for them (Front-Channel 3)."""
    assert client.frontchannel_logout_uri is not None
    if not client.frontchannel_logout_session_required:
        return client.frontchannel_logout_uri
    return str(add_params_to_uri(client.frontchannel_logout_uri, [("iss", context.issuer), ("sid", sid)]))
