"""The authlib authorization server, wired to our grants, clients and token service."""

from __future__ import annotations

import threading
import time
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Request
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload

from idp.oidc.clients import RegisteredClient
from idp.oidc.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    OpenIDConnectCode,
    RefreshTokenGrant,
    S256CodeChallenge,
    TokenIntrospection,
    TokenRevocation,
    save_token,
)
from idp.web import durable_store, services


class StoredAuthorizationRequest(OAuth2Request):  # type: ignore[misc]
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


class ProviderServer(AuthorizationServer):  # type: ignore[misc]
    def authenticate_client(self, request: OAuth2Request, methods: list[str], endpoint: str = "token") -> Any:
        """One authentication method per request (RFC 6749 2.3): failed Basic credentials must not
        fall back to the client_id of a public client named in the form."""
        if request.headers.get("Authorization", "").lower().startswith("basic "):
            methods = [method for method in methods if method == "client_secret_basic"]
        return super().authenticate_client(request, methods, endpoint)

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return super().create_oauth2_request(request)


class ClientCache:
    """Registered clients kept per process for a few seconds: most token requests then need no
    database round trip. A client changed or removed is seen everywhere within `ttl` seconds."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._entries: dict[str, tuple[float, RegisteredClient]] = {}
        self._lock = threading.Lock()

    def get(self, client_id: str) -> RegisteredClient | None:
        now = time.monotonic()
        with self._lock:
            cached = self._entries.get(client_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        row = durable_store().clients.get_detached(client_id)
        if row is None:
            return None
        client = RegisteredClient(row)
        with self._lock:
            if len(self._entries) >= MAX_CACHED_CLIENTS:
                self._entries.clear()
            self._entries[client_id] = (now + self._ttl, client)
        return client


CLIENTS = ClientCache(ttl=10)
MAX_CACHED_CLIENTS = 10_000


def query_client(client_id: str) -> RegisteredClient | None:
    if not isinstance(client_id, str) or len(client_id) > 64:
        return None
    return CLIENTS.get(client_id)


def generate_token(**kwargs: Any) -> dict[str, Any]:
    return services().tokens.generate(**kwargs)


def build_server() -> ProviderServer:
    server = ProviderServer(query_client=query_client, save_token=save_token)
    server.register_token_generator("default", generate_token)
    server.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True), OpenIDConnectCode()])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(TokenRevocation)
    server.register_endpoint(TokenIntrospection)
    return server
