"""Token endpoints beside the token endpoint: revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from idp.oidc.clients import CONFIDENTIAL_AUTH_METHODS, RegisteredClient
from idp.oidc.context import ProviderContext
from idp.oidc.token_lookup import IssuedToken, find_token, spend_single_use


class TokenRevocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [*CONFIDENTIAL_AUTH_METHODS, "none"]

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return find_token(self.server.context, token_string)

    def revoke_token(self, token: IssuedToken, request: OAuth2Request) -> None:
        """Revoking a refresh token ends its grant; revoking an access token ends that token."""
        if token.kind == "refresh_token" and token.grant_id:
            self.server.context.revoke_grant(token.grant_id, reason="revoked by client")
        elif token.claims is not None:
            self.server.context.tokens.revoke_access_token(token.claims)


class TokenIntrospection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = CONFIDENTIAL_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedToken | None:
        return find_token(self.server.context, token_string)

    def check_permission(self, token: IssuedToken, client: RegisteredClient, request: OAuth2Request) -> bool:
        """Only the client the token was issued to, or a resource server registered for its audience,
        learns it is active (RFC 7662 4); anyone else is told `active: false`. A refresh token has no
        audience: it is never sent to resource servers (RFC 6749 1.5)."""
        return token.check_client(client) or client.may_introspect_for(token.audience)

    def introspect_token(self, token: IssuedToken) -> dict[str, Any]:
        """A single-use token (an approved one_time transaction) is active to the first asker only:
        spent atomically here, whoever asks next learns `active: false`."""
        if token.approval is not None and token.approval.one_time and not self._spend(token):
            return {"active": False}
        payload: dict[str, Any] = {
            "active": True,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "scope": token.scope,
            "client_id": token.client_id,
            "sub": token.subject,
            "iss": self.server.context.issuer,
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
        if token.approval is not None:
            payload |= token.approval.claims()
        return payload

    def _spend(self, token: IssuedToken) -> bool:
        assert token.claims is not None
        context: ProviderContext = self.server.context
        return spend_single_use(context.ephemeral, token.claims["jti"], expires_at=token.expires_at)
