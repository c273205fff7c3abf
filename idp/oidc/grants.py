"""authlib grants and token endpoints, extended only through their documented hooks."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, OAuth2Request, grants
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import OpenIDCode

from idp.oidc.claims import user_claims
from idp.oidc.clients import RegisteredClient
from idp.oidc.tokens import Authentication, GrantSubject, digest
from idp.store.tables import RefreshToken, User
from idp.views.delivery import deliver
from idp.web import audit, services
from idp.web import durable_store as durable

CONFIDENTIAL_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


@dataclass(frozen=True)
class IssuedCode:
    """An authorization code's binding (RFC 6749 4.1.2): client, redirect URI, PKCE, user, authentication."""

    client_id: str
    redirect_uri: str
    scope: str
    user_id: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    authentication: dict[str, Any]
    grant_id: str

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.authentication["auth_time"])

    def get_acr(self) -> str:
        return str(self.authentication["acr"])

    def get_amr(self) -> list[str]:
        return list(self.authentication["amr"])


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
    claims: dict[str, Any] | None = None  # access tokens
    row: RefreshToken | None = None  # refresh tokens
    holder: User | None = None  # refresh tokens: the account, loaded with the row

    def check_client(self, client: RegisteredClient) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return self.expires_at <= time.time()

    def is_revoked(self) -> bool:
        return False  # revoked tokens are never returned by the queries below


# -- authorization code ------------------------------------------------------------------------


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """RFC 7636 with S256 only (RFC 9700 2.1.1), required for public clients."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: grants.BaseGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256", redirect_uri=redirect_uri)
        if not data.get("code_challenge") and grant.request.client.is_public:
            raise InvalidRequestError("PKCE (S256) is required for public clients", redirect_uri=redirect_uri)
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [*CONFIDENTIAL_AUTH_METHODS, "none"]

    def create_authorization_response(self, redirect_uri: str, grant_user: Any) -> tuple[int, Any, Any]:
        """Deliver the code with `iss` (RFC 9207) by the requested response_mode (query or form_post)."""
        self.request.user = grant_user
        code = self.generate_authorization_code()
        self.save_authorization_code(code, self.request)
        params = [("code", code)]
        if self.request.payload.state:
            params.append(("state", self.request.payload.state))
        return deliver(redirect_uri, params, self.request.payload.data.get("response_mode"))

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        subject: GrantSubject = request.user
        data = request.payload.data
        issued = IssuedCode(
            client_id=request.client.get_client_id(),
            redirect_uri=request.payload.redirect_uri or request.client.get_default_redirect_uri(),
            scope=request.scope,
            user_id=subject.user.id,
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            authentication=subject.authentication.to_json(),
            grant_id=subject.grant_id,
        )
        found = services()
        found.ephemeral.put(
            f"code:{digest(code)}",
            json.dumps(asdict(issued)).encode(),
            ttl=found.settings.tokens.code_lifetime,
        )

    def query_authorization_code(self, code: str, client: RegisteredClient) -> IssuedCode | None:
        """Take the code atomically; a second use revokes what the first one issued (RFC 6749 4.1.2)."""
        context = services()
        key = f"code:{digest(code)}"
        stored = context.ephemeral.get(key)
        if stored is not None and json.loads(stored)["client_id"] != client.get_client_id():
            return None  # presented by another client: refused, and left for the one it was issued to
        if stored is not None:
            # Touch the database before spending the code: an outage then refuses the request and
            # leaves the code for the client's retry, rather than burning it.
            durable().users.get(json.loads(stored)["user_id"])
        raw = context.ephemeral.take(key)
        if raw is None:
            spent = context.ephemeral.get(f"code-spent:{digest(code)}")
            if spent is not None:
                revoke_grant(spent.decode(), reason="authorization code replayed")
            return None
        issued = IssuedCode(**json.loads(raw))
        context.ephemeral.put(
            f"code-spent:{digest(code)}", issued.grant_id.encode(), ttl=context.tokens.access_token_lifetime
        )
        return issued

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Nothing left to delete: query_authorization_code took the code."""

    def authenticate_user(self, authorization_code: IssuedCode) -> GrantSubject | None:
        user = durable().users.get(authorization_code.user_id)
        if user is None or user.disabled:
            return None
        authentication = Authentication.from_json(authorization_code.authentication)
        return GrantSubject(user=user, authentication=authentication, grant_id=authorization_code.grant_id)


class OpenIDConnectCode(OpenIDCode):  # type: ignore[misc]
    """ID tokens signed with the client's algorithm, carrying acr, amr, auth_time and sid."""

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False

    def resolve_client_private_key(self, client: RegisteredClient) -> Any:
        return services().keyring.signing_key(client.id_token_signed_response_alg)

    def get_client_claims(self, client: RegisteredClient) -> dict[str, Any]:
        settings = services().settings
        return {
            "iss": settings.issuer,
            "aud": [client.get_client_id()],
            "exp": int(time.time()) + settings.tokens.id_token_lifetime,
        }

    def get_encode_header(self, client: RegisteredClient) -> dict[str, str]:
        key = self.resolve_client_private_key(client)
        return {"alg": client.id_token_signed_response_alg, "kid": key.kid, "typ": "JWT"}

    def get_authorization_code_claims(self, authorization_code: IssuedCode) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        claims["sid"] = authorization_code.authentication["sid"]
        return claims

    def generate_user_info(self, user: GrantSubject, scope: str) -> dict[str, Any]:
        return user_claims(user.user, scope)


# -- refresh token -----------------------------------------------------------------------------


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    """Rotation with reuse detection (RFC 9700 4.14.2): an old token revokes its whole family."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [*CONFIDENTIAL_AUTH_METHODS, "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken | None:
        found = durable().refresh_tokens.with_holder(digest(refresh_token))
        if found is None:
            return None
        row, holder = found
        if row.revoked or row.client_id != self.request.client.get_client_id():
            return None
        if holder.disabled:
            revoke_grant(row.family_id, reason="account disabled")
            return None
        if row.rotated:
            revoke_grant(row.family_id, reason="refresh token reused")
            return None
        if row.expires_at <= time.time():
            return None
        return refresh_token_view(row, holder)

    def authenticate_user(self, refresh_token: IssuedToken) -> GrantSubject | None:
        """Called once the whole request is valid: only now is the token spent, so a refused request
        (a wider scope, say) leaves it usable; a racing use of the same token revokes the family."""
        user = refresh_token.holder
        if user is None or user.disabled or refresh_token.authentication is None:
            return None
        assert refresh_token.grant_id is not None and refresh_token.row is not None
        if not durable().refresh_tokens.claim_for_rotation(refresh_token.row.token_hash):
            revoke_grant(refresh_token.grant_id, reason="refresh token reused")
            raise InvalidGrantError()
        return GrantSubject(
            user=user, authentication=refresh_token.authentication, grant_id=refresh_token.grant_id
        )

    def revoke_old_credential(self, refresh_token: IssuedToken) -> None:
        """Already marked rotated by authenticate_user, in this unit of work."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = CONFIDENTIAL_AUTH_METHODS


def save_token(token: dict[str, Any], request: OAuth2Request) -> None:
    """Persist the refresh token of a user grant (hashed); access tokens are self-contained JWTs."""
    refresh = token.get("refresh_token")
    if not refresh:
        return
    subject: GrantSubject = request.user
    now = int(time.time())
    durable().refresh_tokens.add(
        RefreshToken(
            token_hash=digest(refresh),
            family_id=subject.grant_id,
            client_id=request.client.get_client_id(),
            user_id=subject.user.id,
            scope=token.get("scope", ""),
            authentication=subject.authentication.to_json(),
            issued_at=now,
            expires_at=now + services().settings.tokens.refresh_token_lifetime,
        )
    )


def revoke_grant(grant_id: str, *, reason: str) -> None:
    """Revoke every refresh and access token of one grant."""
    durable().refresh_tokens.revoke_family(grant_id)
    services().tokens.revoke_grant_access_tokens(grant_id)
    audit("grant_revoked", "success", detail={"grant_id": grant_id, "reason": reason})


def refresh_token_view(row: RefreshToken, holder: User) -> IssuedToken:
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
        holder=holder,
    )


def find_token(token: str) -> IssuedToken | None:
    """An access token (JWT) or a current refresh token, of an account that may still hold tokens."""
    if token.count(".") != 2:
        return _find_refresh_token(token)
    found = _find_access_token(token)
    if found is None or found.authentication is None:  # None, or a client's own token
        return found
    return found if durable().users.may_hold_tokens(found.subject) else None


def _find_access_token(token: str) -> IssuedToken | None:
    claims = services().tokens.verify_access_token(token)
    if claims is None:
        return None
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
        claims=claims,
    )


def _find_refresh_token(token: str) -> IssuedToken | None:
    found = durable().refresh_tokens.with_holder(digest(token))
    if found is None:
        return None
    row, holder = found
    if row.revoked or row.rotated or holder.disabled:
        return None
    return refresh_token_view(row, holder)


# -- revocation and introspection --------------------------------------------------------------


class TokenRevocation(RevocationEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [*CONFIDENTIAL_AUTH_METHODS, "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return find_token(token_string)

    def revoke_token(self, token: IssuedToken, request: OAuth2Request) -> None:
        """Revoking a refresh token ends its grant; revoking an access token ends that token."""
        if token.kind == "refresh_token" and token.grant_id:
            revoke_grant(token.grant_id, reason="revoked by client")
        elif token.claims is not None:
            services().tokens.revoke_access_token(token.claims)


class TokenIntrospection(IntrospectionEndpoint):  # type: ignore[misc]
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = CONFIDENTIAL_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return find_token(token_string)

    def check_permission(self, token: IssuedToken, client: RegisteredClient, request: OAuth2Request) -> bool:
        """Any authenticated confidential client (a resource server) may introspect."""
        return True

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "scope": token.scope,
            "client_id": token.client_id,
            "sub": token.subject,
            "iss": services().settings.issuer,
            "exp": token.expires_at,
            "iat": token.issued_at,
        }
        if token.authentication is not None:
            payload |= {
                "acr": token.authentication.acr,
                "amr": list(token.authentication.amr),
                "auth_time": token.authentication.auth_time,
                "sid": token.authentication.sid,
            }
        return payload
