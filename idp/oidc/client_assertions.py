"""private_key_jwt (RFC 7523 2.2, OIDC Core 9): a client authenticates with a JWT signed by its own key,
at the token, introspection, revocation and pushed authorization request endpoints; each JWT once."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.oidc.client_keys import CLIENT_JWT_ALGORITHMS, ClientKeysUnavailable
from idp.oidc.clients import RegisteredClient
from idp.oidc.context import ProviderContext
from idp.oidc.jwt_replay import LEEWAY, JwtRefused, JwtUse, spend_jti
from idp.oidc.keys import MAX_JWT_LENGTH

ASSERTION_TYPE = JWTBearerClientAssertion.CLIENT_ASSERTION_TYPE
UNVERIFIED = (
    f"the client assertion is not signed by a registered key with {' or '.join(CLIENT_JWT_ALGORITHMS)}"
)
log = logging.getLogger(__name__)


class PrivateKeyJwt(JWTBearerClientAssertion):
    """authlib's client assertion check, for registered keys, our algorithms and a single use per jti."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(validate_jti=True, leeway=LEEWAY)
        self.context = context

    def get_audiences(self) -> list[str]:
        """The issuer, the token endpoint, or (RFC 9126 2) the pushed authorization request endpoint."""
        issuer = self.context.issuer
        return [issuer, f"{issuer}/token", f"{issuer}/par"]

    def resolve_client_public_key(self, client: RegisteredClient) -> KeySet:
        if client.row.token_endpoint_auth_method != self.CLIENT_AUTH_METHOD:
            raise InvalidClientError(description="the client is not registered for private_key_jwt")
        try:
            return self.context.client_keys.key_set(client.row)
        except ClientKeysUnavailable as error:
            log.warning("client assertion of client %s: %s", client.get_client_id(), error)
            raise InvalidClientError(description="the client's keys are not available") from None

    def process_assertion_claims(self, assertion: str, resolve_key: KeySet) -> dict[str, Any]:
        """The signature by one of the client's keys with an algorithm we advertise, then the claims."""
        if len(assertion) > MAX_JWT_LENGTH:
            raise InvalidClientError(description="the client assertion is too long")
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=list(CLIENT_JWT_ALGORITHMS))
        except (JoseError, ValueError, TypeError):  # joserfc raises TypeError on headers of odd shapes
            raise InvalidClientError(description=UNVERIFIED) from None
        self.verify_claims(token.claims)
        return dict(token.claims)

    def validate_jti(self, claims: dict[str, Any], jti: str) -> bool:
        try:
            spend_jti(
                self.context.ephemeral, use=JwtUse.CLIENT_ASSERTION, client_id=claims["sub"], claims=claims
            )
        except JwtRefused as refused:
            raise InvalidClientError(description=str(refused)) from None
        return True


def asserted_client_id(form: Mapping[str, str]) -> str | None:
    """The client a client assertion names (its `sub`, unverified): for throttling and audit only."""
    assertion = form.get("client_assertion", "")
    if form.get("client_assertion_type") != ASSERTION_TYPE or not 0 < len(assertion) <= MAX_JWT_LENGTH:
        return None
    try:
        claims = json.loads(jws.extract_compact(assertion.encode()).payload)
    except (JoseError, ValueError, TypeError):
        return None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    return subject if isinstance(subject, str) else None
