"""The authlib authorization server, wired to our grants, clients and token service."""

from __future__ import annotations

from functools import partial
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload

from idp.oidc.client_assertions import ASSERTION_TYPE, PrivateKeyJwt
from idp.oidc.context import ProviderContext
from idp.oidc.device_flow import DeviceAuthorizationEndpoint, DeviceCodeGrant
from idp.oidc.error_descriptions import describe
from idp.oidc.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    DeviceIdTokens,
    OpenIDConnectCode,
    RefreshTokenGrant,
    S256CodeChallenge,
    save_token,
)
from idp.oidc.pushed_requests import PushedAuthorizationEndpoint, validate_pushed_when_required
from idp.oidc.request_objects import RequestObjects
from idp.oidc.token_endpoints import TokenIntrospection, TokenRevocation


class StoredAuthorizationRequest(OAuth2Request):
    """An authorization request replayed from its stored parameters after the user signed in."""

    def __init__(self, uri: str, params: dict[str, str]) -> None:
        super().__init__("GET", uri, headers={})
        self.payload = BasicOAuth2Payload(params)
        self._params = params

    @property
    def args(self) -> dict[str, str]:
        return self._params

    @property
    def form(self) -> dict[str, str]:
        return {}


class ProviderServer(AuthorizationServer):
    """authlib's server carrying the provider's context, which grants and endpoints read through it."""

    def __init__(self, context: ProviderContext) -> None:
        super().__init__(query_client=context.clients.get, save_token=partial(save_token, context))
        self.context = context

    def authenticate_client(self, request: OAuth2Request, methods: list[str], endpoint: str = "token") -> Any:
        """One authentication method per request (RFC 6749 2.3): failed Basic credentials or a failed
        client assertion must not fall back to another method, or to a public client named in the form."""
        if request.headers.get("Authorization", "").lower().startswith("basic "):
            methods = [method for method in methods if method == "client_secret_basic"]
        elif request.payload.data.get("client_assertion_type") == ASSERTION_TYPE:
            methods = [method for method in methods if method == PrivateKeyJwt.CLIENT_AUTH_METHOD]
        return super().authenticate_client(request, methods, endpoint)

    def get_consent_grant(self, request: Any = None, end_user: Any = None) -> Any:
        """A new request at the authorization endpoint: pushed first where that is required (RFC 9126)."""
        request = self.create_oauth2_request(request)
        validate_pushed_when_required(
            request, query_client=self.query_client, required_by_server=self.context.par.required
        )
        return super().get_consent_grant(request, end_user)

    def handle_error_response(self, request: Any, error: OAuth2Error) -> Any:
        """Every error of the token, revocation and introspection endpoints, described for people."""
        error.description = describe(error.error, error.get_error_description())
        return super().handle_error_response(request, error)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return super().create_oauth2_request(request)


def build_server(context: ProviderContext) -> ProviderServer:
    server = ProviderServer(context)
    server.register_token_generator("default", context.tokens.generate)
    server.register_grant(
        AuthorizationCodeGrant, [S256CodeChallenge(required=True), OpenIDConnectCode(context)]
    )
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(TokenRevocation)
    server.register_endpoint(TokenIntrospection)
    server.register_client_auth_method(PrivateKeyJwt.CLIENT_AUTH_METHOD, PrivateKeyJwt(context))
    server.register_extension(RequestObjects(context))
    server.register_endpoint(PushedAuthorizationEndpoint)
    server.register_grant(DeviceCodeGrant, [DeviceIdTokens(context)])
    server.register_endpoint(DeviceAuthorizationEndpoint)
    return server
