"""authlib grants and token endpoints, extended only through their documented hooks."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
    grants,
    list_to_scope,
    scope_to_list,
)
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, OpenIDToken
from authlib.oidc.core.grants.util import is_openid_scope

from idp.oidc.authorization_details import Approval
from idp.oidc.claims import user_claims
from idp.oidc.clients import CONFIDENTIAL_AUTH_METHODS, OFFLINE_ACCESS, RegisteredClient
from idp.oidc.context import ProviderContext
from idp.oidc.delivery import deliver
from idp.oidc.device_flow import DeviceAuthorization
from idp.oidc.dpop import proven_key, refresh_token_key
from idp.oidc.token_lookup import IssuedToken, refresh_token_view
from idp.oidc.tokens import Authentication, GrantSubject, digest
from idp.store.tables import RefreshToken


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
    requested_scope: str = ""  # what the request asked for, which a refresh may repeat (older codes: none)
    approval: dict[str, Any] | None = None  # the authorization details approved (RFC 9396)
    dpop_jkt: str | None = None  # the DPoP key the request bound the code to (RFC 9449 10)

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


class KeyBoundTokens(grants.BaseGrant):
    """The grants' token generation: authlib's step, with the access token bound to the key of the
    request's DPoP proof, when it has one (RFC 9449 5, idp.oidc.dpop)."""

    def generate_token(
        self,
        user: GrantSubject | None = None,
        scope: str | None = None,
        grant_type: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        context: ProviderContext = self.server.context
        return context.tokens.generate(
            grant_type=grant_type or self.GRANT_TYPE,
            client=self.request.client,
            user=user,
            scope=scope,
            expires_in=expires_in,
            include_refresh_token=include_refresh_token,
            confirmation=proven_key(self.request),
        )


# -- authorization code ------------------------------------------------------------------------


class S256CodeChallenge(CodeChallenge):
    """RFC 7636 with S256 only (RFC 9700 2.1.1), required for public clients."""

    SUPPORTED_CODE_CHALLENGE_METHOD: ClassVar[list[str]] = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: grants.BaseGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("The code challenge method must be S256.", redirect_uri=redirect_uri)
        if not data.get("code_challenge") and grant.request.client.is_public:
            raise InvalidRequestError("Public clients must use PKCE with S256.", redirect_uri=redirect_uri)
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(KeyBoundTokens, grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [*CONFIDENTIAL_AUTH_METHODS, "none"]

    def create_authorization_response(self, redirect_uri: str, grant_user: Any) -> tuple[int, Any, Any]:
        """Deliver the code with `iss` (RFC 9207) by the requested response_mode (query or form_post)."""
        self.request.user = grant_user
        code = self.generate_authorization_code()
        self.save_authorization_code(code, self.request)
        params = [("code", code)]
        if self.request.payload.state:
            params.append(("state", self.request.payload.state))
        response_mode = self.request.payload.data.get("response_mode")
        return deliver(redirect_uri, params, response_mode, issuer=self.server.context.issuer)

    def generate_authorization_code(self) -> str:
        """48 URL-safe characters (288 random bits) in one call; authlib's draws them one at a time."""
        return secrets.token_urlsafe(36)

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
            requested_scope=request.payload.scope or "",
            approval=subject.approval.to_json() if subject.approval else None,
            dpop_jkt=data.get("dpop_jkt"),
        )
        context: ProviderContext = self.server.context
        stored = {field.name: getattr(issued, field.name) for field in fields(issued)}  # asdict: 9x the CPU
        context.ephemeral.put(
            f"code:{digest(code)}", json.dumps(stored).encode(), ttl=context.lifetimes.code_lifetime
        )

    def query_authorization_code(self, code: str, client: RegisteredClient) -> IssuedCode | None:
        """Take the code atomically; a second use revokes what the first one issued (RFC 6749 4.1.2)."""
        context: ProviderContext = self.server.context
        key = f"code:{digest(code)}"
        stored = context.ephemeral.get(key)
        if stored is not None and json.loads(stored)["client_id"] != client.get_client_id():
            return None  # presented by another client: refused, and left for the one it was issued to
        spent_key = f"code-spent:{digest(code)}"
        raw = None
        if stored is not None:
            # Touch the database before spending the code: an outage then refuses the request and
            # leaves the code for the client's retry, rather than burning it.
            issued = json.loads(stored)
            context.durable().users.get(issued["user_id"])
            raw = context.ephemeral.take_marked(
                key,
                marker=spent_key,
                value=issued["grant_id"].encode(),
                ttl=context.tokens.access_token_lifetime,
            )
        if raw is None:
            spent = context.ephemeral.get(spent_key)
            if spent is not None:
                context.revoke_grant(spent.decode(), reason="authorization code replayed")
            return None
        return IssuedCode(**json.loads(raw))

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Nothing left to delete: query_authorization_code took the code."""

    def authenticate_user(self, authorization_code: IssuedCode) -> GrantSubject | None:
        user = self.server.context.durable().users.get(authorization_code.user_id)
        if user is None or user.disabled:
            return None
        authentication = Authentication.from_json(authorization_code.authentication)
        approval = authorization_code.approval
        return GrantSubject(
            user=user,
            authentication=authentication,
            grant_id=authorization_code.grant_id,
            approval=Approval.from_json(approval) if approval else None,
        )


class ProviderIdTokens(OpenIDToken):
    """ID tokens signed with the client's algorithm, carrying acr, amr, auth_time and sid."""

    def __init__(self, context: ProviderContext) -> None:
        self.context = context

    def resolve_client_private_key(self, client: RegisteredClient) -> Any:
        return self.context.keyring.signing_key(client.id_token_signed_response_alg)

    def get_client_claims(self, client: RegisteredClient) -> dict[str, Any]:
        return {
            "iss": self.context.issuer,
            "aud": [client.get_client_id()],
            "exp": int(time.time()) + self.context.lifetimes.id_token_lifetime,
        }

    def get_encode_header(self, client: RegisteredClient) -> dict[str, str]:
        key = self.resolve_client_private_key(client)
        return {"alg": client.id_token_signed_response_alg, "kid": key.kid, "typ": "JWT"}

    def generate_user_info(self, user: GrantSubject, scope: str) -> dict[str, Any]:
        return user_claims(user.user, scope)


class OpenIDConnectCode(ProviderIdTokens, OpenIDCode):
    """The authorization code's ID token: what the code's sign-in proved, and the request's nonce."""

    def __init__(self, context: ProviderContext) -> None:
        OpenIDCode.__init__(self, require_nonce=False)
        ProviderIdTokens.__init__(self, context)

    def __call__(self, grant: grants.BaseGrant) -> None:
        """authlib's hooks except its prompt check: the provider answers prompt itself (the pipeline
        for none and login, then the account choice and consent pages), so none beside another value
        gets that value's error (OIDC Core 3.1.2.6) rather than invalid_request."""
        grant.register_hook("after_create_token_response", self.process_token)
        if is_openid_scope(grant.request.payload.scope):
            grant.register_hook(
                "after_validate_authorization_request_payload", self.validate_openid_authorization_request
            )

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False

    def get_authorization_code_claims(self, authorization_code: IssuedCode) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_authorization_code_claims(authorization_code)
        claims["sid"] = authorization_code.authentication["sid"]
        return claims


class DeviceIdTokens(ProviderIdTokens):
    """The device grant's ID token (openid scope): what the sign-in that approved the device proved."""

    def get_compatible_claims(self, request: OAuth2Request) -> dict[str, Any]:
        claims: dict[str, Any] = super().get_compatible_claims(request)
        authentication: Authentication = request.user.authentication
        claims.update(
            auth_time=authentication.auth_time,
            acr=authentication.acr,
            amr=list(authentication.amr),
            sid=authentication.sid,
        )
        return claims


# -- refresh token -----------------------------------------------------------------------------


class RefreshTokenGrant(KeyBoundTokens, grants.RefreshTokenGrant):
    """Rotation with reuse detection (RFC 9700 4.14.2): an old token revokes its whole family."""

    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = [*CONFIDENTIAL_AUTH_METHODS, "none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    @hooked  # type: ignore[untyped-decorator]  # authlib ships no type hints
    def validate_token_request(self) -> None:
        """authlib's, hooked as its authorization code grant's is: extensions check the request first."""
        super().validate_token_request()

    def authenticate_refresh_token(self, refresh_token: str) -> IssuedToken | None:
        context: ProviderContext = self.server.context
        found = context.durable().refresh_tokens.with_holder(digest(refresh_token))
        if found is None:
            return None
        row = found.row
        if row.revoked or row.client_id != self.request.client.get_client_id():
            return None
        if found.holder.disabled:
            context.revoke_grant(row.family_id, reason="account disabled")
            return None
        if row.rotated:
            context.revoke_grant(row.family_id, reason="refresh token reused")
            return None
        token = refresh_token_view(found)
        return None if token.is_expired() or token.is_revoked() else token

    def requested_scope(self, refresh_token: IssuedToken) -> str:
        """What a refresh gets of what it asks for: the granted part (RFC 6749 6); the grant's whole
        scope when it names none."""
        asked = self.request.payload.scope
        if not asked:
            return refresh_token.scope
        granted = scope_to_list(refresh_token.scope) or []
        return str(list_to_scope([scope for scope in scope_to_list(asked) if scope in granted]))

    def _validate_token_scope(self, token: IssuedToken) -> None:
        """authlib's step of validate_token_request: a refresh may ask for the grant's scope or less, and
        may repeat the scope its authorization request asked for (authlib's own client resends it),
        whose ungranted part it does not get then either; anything else is invalid_scope (RFC 6749 6)."""
        asked = set(scope_to_list(self.request.payload.scope) or [])
        if not asked:
            return
        repeatable = set(scope_to_list(token.scope) or []) | set(scope_to_list(token.requested_scope) or [])
        if not asked <= repeatable or not self.requested_scope(token):
            raise InvalidScopeError("The refresh asks for a scope that was not granted.")

    def issue_token(self, user: GrantSubject, refresh_token: IssuedToken) -> dict[str, Any]:
        """An access token for the requested scope; save_token keeps the grant's for the refresh token."""
        token: dict[str, Any] = self.generate_token(
            user=user,
            scope=self.requested_scope(refresh_token),
            include_refresh_token=self.INCLUDE_NEW_REFRESH_TOKEN,
        )
        return token

    def authenticate_user(self, refresh_token: IssuedToken) -> GrantSubject | None:
        """Called once the whole request is valid: only now is the token spent, so a refused request
        (a wider scope, say) leaves it usable; a racing use of the same token revokes the family."""
        user = refresh_token.holder
        if user is None or user.disabled or refresh_token.authentication is None:
            return None
        assert refresh_token.grant_id is not None and refresh_token.row is not None
        context: ProviderContext = self.server.context
        if not context.durable().refresh_tokens.claim_for_rotation(refresh_token.row.token_hash):
            context.revoke_grant(refresh_token.grant_id, reason="refresh token reused")
            raise InvalidGrantError()
        return GrantSubject(
            user=user, authentication=refresh_token.authentication, grant_id=refresh_token.grant_id
        )

    def revoke_old_credential(self, refresh_token: IssuedToken) -> None:
        """Already marked rotated by authenticate_user, in this unit of work."""


class ClientCredentialsGrant(KeyBoundTokens, grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = CONFIDENTIAL_AUTH_METHODS

    @hooked  # type: ignore[untyped-decorator]  # authlib ships no type hints
    def validate_token_request(self) -> None:
        """authlib's, hooked as its authorization code grant's is: extensions check the request first."""
        super().validate_token_request()

    def validate_requested_scope(self) -> None:
        """Only scopes the client registered (RFC 6749 4.4.2): with no user to trim a request for, a wider
        one is refused (invalid_scope, RFC 6749 5.2), not narrowed."""
        if not self.request.client.registered_every_scope(self.request.payload.scope):
            raise InvalidScopeError("The client is not registered for every scope it asked for.")


def save_token(context: ProviderContext, token: dict[str, Any], request: OAuth2Request) -> None:
    """Persist the refresh token of a user grant (hashed), bound to the browser session it comes from
    unless the grant has offline_access; access tokens are self-contained JWTs. A code or an approved
    device code redeemed makes the client one of its session's, told when that session ends
    (idp.oidc.logout)."""
    subject: GrantSubject | None = request.user
    now = int(time.time())
    if subject is not None and (request.authorization_code or request.credential) is not None:
        context.durable().session_clients.record(
            sid=subject.authentication.sid,
            client_id=request.client.get_client_id(),
            user_id=subject.user.id,
            at=now,
        )
    refresh = token.get("refresh_token")
    if not refresh or subject is None:
        return
    grant = _redeemed(request)
    context.durable().refresh_tokens.add(
        RefreshToken(
            token_hash=digest(refresh),
            family_id=subject.grant_id,
            client_id=request.client.get_client_id(),
            user_id=subject.user.id,
            scope=grant.scope,
            requested_scope=grant.requested_scope,
            authentication=subject.authentication.to_json(),
            issued_at=now,
            expires_at=now + context.lifetimes.refresh_token_lifetime,
            sid=subject.authentication.sid,
            offline=OFFLINE_ACCESS in scope_to_list(grant.scope),
            dpop_jkt=refresh_token_key(request),
        )
    )


def _redeemed(request: OAuth2Request) -> IssuedCode | IssuedToken | DeviceAuthorization:
    """What the token request redeemed: a code, an approved device code (RFC 8628), or a refresh token
    whose grant's scope the new one keeps whatever narrower scope its access token was asked for
    (RFC 6749 6)."""
    redeemed: IssuedCode | IssuedToken | DeviceAuthorization = (
        request.refresh_token or request.authorization_code or request.credential
    )
    return redeemed
