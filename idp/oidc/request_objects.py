"""Request objects (RFC 9101, OIDC Core 6): the authorization request's parameters in a JWT the client
signed. `request_uri` is accepted only as a pushed request's reference (RFC 9126, pushed_requests.py)."""

from __future__ import annotations

import json
import logging
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import AuthorizationServer, InvalidRequestError, OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc9101 import JWTAuthenticationRequest
from authlib.oauth2.rfc9101.errors import InvalidRequestObjectError
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.oidc.client_keys import CLIENT_JWT_ALGORITHMS, ClientKeysUnavailable
from idp.oidc.clients import RegisteredClient
from idp.oidc.context import ProviderContext
from idp.oidc.jwt_replay import LEEWAY, JwtRefused, JwtUse, spend_jti
from idp.oidc.pushed_requests import redeem

# Plain ASCII by their syntax (RFC 6749 A.3, A.6); authlib repeats them in its error descriptions, which
# must be too (RFC 6749 4.1.2.1), and raises ValueError instead of the error when they are not.
ECHOED = frozenset({"response_type", "redirect_uri"})
# The request object's own claims as a JWT: not parameters of the authorization request.
JWT_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti"})
log = logging.getLogger(__name__)


class RequestObjects(JWTAuthenticationRequest):
    """authlib's JAR extension: verified against the client's registered keys and algorithm, used once;
    its parameters win over the query's (OIDC Core 6.3.3). Unsigned ones only for clients that opted in."""

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(support_request=True, support_request_uri=True)
        self.context = context
        self.claims_validator = jwt.JWTClaimsRegistry(
            leeway=LEEWAY,
            client_id={"essential": True},
            iss={"essential": True},
            aud={"essential": True, "value": context.issuer},
            exp={"essential": True},
            jti={"essential": True},
        )

    def parse_authorization_request(
        self, authorization_server: AuthorizationServer, request: OAuth2Request
    ) -> None:
        """authlib's hook before it finds the grant: a pushed request's parameters, or the query's with
        the request object's over them, replace the request's. Errors go to a registered redirect URI."""
        payload = request.payload
        if ("request" not in payload.data and "request_uri" not in payload.data) or not payload.client_id:
            return
        client: RegisteredClient | None = authorization_server.query_client(payload.client_id)
        if client is None:
            return  # authlib's grant refuses an unknown client
        try:
            params = self._parameters(request, client)
        except OAuth2Error as error:
            error.redirect_uri = client.redirect_uri_for(payload.redirect_uri)
            raise
        request.payload = BasicOAuth2Payload(params)

    def _parameters(self, request: OAuth2Request, client: RegisteredClient) -> dict[str, str]:
        data = request.payload.data
        if "request" in data and "request_uri" in data:
            raise InvalidRequestError("request and request_uri cannot be sent together")
        if "request_uri" in data:
            return redeem(self.context, data["request_uri"], expected_client_id=client.get_client_id())
        claims = self.verify_request_object(request, client)
        query = {name: value for name, value in data.items() if name != "request"}
        return {**query, **as_parameters(claims)}

    def verify_request_object(self, request: OAuth2Request, client: RegisteredClient) -> dict[str, Any]:
        """Signed by the client's keys with its registered (else an advertised) algorithm; aud the
        issuer, iss and client_id the client, within exp and nbf; a jti never used (RFC 9101 6.1, 10.8)."""
        try:
            token = self._decode_request_object(request, client, request.payload.data["request"])
        except (ValueError, TypeError):  # joserfc raises TypeError on headers of odd shapes
            raise InvalidRequestObjectError() from None
        claims = dict(token.claims)
        if claims["iss"] != client.get_client_id():
            raise InvalidRequestObjectError("the iss claim must be the client_id")
        try:
            spend_jti(
                self.context.ephemeral, use=JwtUse.REQUEST_OBJECT, client_id=claims["iss"], claims=claims
            )
        except JwtRefused as refused:
            raise InvalidRequestObjectError(str(refused)) from None
        return claims

    def resolve_client_public_key(self, client: RegisteredClient) -> KeySet:
        if not self.get_client_require_signed_request_object(client):
            return KeySet([])  # unsigned request objects: nothing to verify with
        try:
            return self.context.client_keys.key_set(client.row)
        except ClientKeysUnavailable as error:
            log.warning("request object of client %s: %s", client.get_client_id(), error)
            raise InvalidRequestObjectError("the client's keys are not available") from None

    def get_request_object_signing_algorithms(self, client: RegisteredClient) -> list[str]:
        registered = client.row.request_object_signing_alg
        return [registered] if registered else list(CLIENT_JWT_ALGORITHMS)

    def get_client_require_signed_request_object(self, client: RegisteredClient) -> bool:
        """Unsigned (`alg: none`) only when the client registered request_object_signing_alg "none"."""
        return bool(client.row.request_object_signing_alg != "none")


def as_parameters(claims: dict[str, Any]) -> dict[str, str]:
    """A request object's claims as authorization request parameters: JSON objects (`claims`) and
    numbers (`max_age`) as their JSON text, as they would be sent in the query (OIDC Core 6.1)."""
    params: dict[str, str] = {}
    for name, value in claims.items():
        if name in JWT_CLAIMS:
            continue
        params[name] = value if isinstance(value, str) else json.dumps(value)
        if name in ECHOED and invalid_error_characters(params[name]):
            raise InvalidRequestObjectError(f"{name} is malformed")
    return params
