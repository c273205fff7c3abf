"""Token look-up: an access token (JWT) or a refresh token as revocation and introspection see it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from idp.oidc.authorization_details import Approval
from idp.oidc.clients import RegisteredClient
from idp.oidc.context import ProviderContext
from idp.oidc.dpop import bound_key
from idp.oidc.tokens import Authentication, digest
from idp.store.durable import HeldRefreshToken
from idp.store.ephemeral import EphemeralStore
from idp.store.tables import RefreshToken, User


@dataclass(frozen=True)
class IssuedToken:
    """A token as revocation and introspection see it."""

    kind: str  # "access_token" | "refresh_token"
    client_id: str
    subject: str
    scope: str
    issued_at: int
    expires_at: int
    authentication: Authentication | None
    grant_id: str | None
    audience: tuple[str, ...] = ()  # access tokens: `aud`, what resource servers are registered for
    claims: dict[str, Any] | None = None  # access tokens
    row: RefreshToken | None = None  # refresh tokens
    holder: User | None = None  # refresh tokens: the account, loaded with the row
    outlived_its_session: bool = False  # refresh tokens: see `outlived_its_session`
    requested_scope: str = ""  # refresh tokens: what the authorization request asked for
    approval: Approval | None = None  # access tokens: the authorization details approved (RFC 9396)

    def confirmation(self) -> str | None:
        """The DPoP key (RFC 7638 thumbprint) the token is bound to: an access token's `cnf.jkt`, a
        public client's refresh token's stored one (RFC 9449 6.1, 5)."""
        if self.claims is not None:
            return bound_key(self.claims)
        return None if self.row is None else self.row.dpop_jkt

    def check_client(self, client: RegisteredClient) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return self.expires_at <= time.time()

    def is_revoked(self) -> bool:
        """Revoked tokens are never returned by the queries below; one that outlived its browser
        session is as good as revoked."""
        return self.outlived_its_session


def outlived_its_session(held: HeldRefreshToken, *, now: float) -> bool:
    """A refresh token not issued for offline_access lives only as long as its browser session: not
    after a sign-out, an end on the account page, another user's sign-in there, or its expiry
    (OIDC Core 11, as Keycloak does)."""
    return not held.row.offline and (held.session_expires_at is None or held.session_expires_at <= now)


def refresh_token_view(held: HeldRefreshToken) -> IssuedToken:
    row = held.row
    return IssuedToken(
        kind="refresh_token",
        client_id=row.client_id,
        subject=row.user_id,
        scope=row.scope,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        authentication=Authentication.from_json(row.authentication),
        grant_id=row.family_id,
        row=row,
        holder=held.holder,
        outlived_its_session=outlived_its_session(held, now=time.time()),
        requested_scope=row.requested_scope or row.scope,
    )


def find_token(context: ProviderContext, token: str) -> IssuedToken | None:
    """An access token (JWT) or a current refresh token, of an account that may still hold tokens."""
    if token.count(".") != 2:
        return _find_refresh_token(context, token)
    found = _find_access_token(context, token)
    if found is None or found.authentication is None:  # None, or a client's own token
        return found
    return found if context.durable().users.may_hold_tokens(found.subject) else None


def _find_access_token(context: ProviderContext, token: str) -> IssuedToken | None:
    claims = context.tokens.verify_access_token(token)
    return None if claims is None else access_token_view(claims)


def access_token_view(claims: dict[str, Any]) -> IssuedToken:
    """An access token as its claims describe it (claims verified, or its record's: both ours)."""
    authentication = (
        Authentication(claims["acr"], tuple(claims["amr"]), claims["auth_time"], claims["sid"])
        if "acr" in claims
        else None
    )
    return IssuedToken(
        kind="access_token",
        client_id=claims["client_id"],
        subject=claims["sub"],
        scope=claims.get("scope", ""),
        issued_at=claims["iat"],
        expires_at=claims["exp"],
        authentication=authentication,
        grant_id=claims.get("grant_id"),
        audience=_audience(claims.get("aud")),
        claims=claims,
        approval=_approval(claims),
    )


def _approval(claims: dict[str, Any]) -> Approval | None:
    """The approval an access token carries (its claims are ours: verified before this)."""
    if "authorization_details" not in claims:
        return None
    approval = claims["approval"]
    return Approval(
        details=tuple(claims["authorization_details"]), hash=approval["hash"], one_time=approval["one_time"]
    )


def _audience(aud: object) -> tuple[str, ...]:
    """RFC 7519 4.1.3: one string or a list of them."""
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return tuple(value for value in values if isinstance(value, str))


def _find_refresh_token(context: ProviderContext, token: str) -> IssuedToken | None:
    found = context.durable().refresh_tokens.with_holder(digest(token))
    if found is None or found.row.revoked or found.row.rotated or found.holder.disabled:
        return None
    return refresh_token_view(found)


def spend_single_use(ephemeral: EphemeralStore, jti: str, *, expires_at: int) -> bool:
    """True for the first use of a single-use token (an approved one_time transaction): one atomic
    increment, kept until the token expires. Introspection and the provider's own APIs share it."""
    ttl = max(1, expires_at - int(time.time()))
    return ephemeral.incr(f"spent-jti:{jti}", ttl=ttl) == 1
