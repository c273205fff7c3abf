"""Pushed authorization requests (RFC 9126): the client posts its authorization request, and the browser
carries only a single-use `request_uri` reference to it, valid for `[par] lifetime` seconds."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any, ClassVar

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Request
from authlib.oauth2.rfc6749.endpoint import Endpoint
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc9101.errors import InvalidRequestUriError, RequestUriNotSupportedError

from idp.oidc.clients import CONFIDENTIAL_AUTH_METHODS, RegisteredClient
from idp.oidc.context import ProviderContext
from idp.oidc.tokens import digest

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
KEY_PREFIX = "par:"
# Credentials a client authenticates with: never part of the request that is kept.
CLIENT_CREDENTIALS = frozenset({"client_secret", "client_assertion", "client_assertion_type"})
JSON_HEADERS = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]


def push(context: ProviderContext, *, client_id: str, params: dict[str, str]) -> str:
    """Keep a validated request for its client; return the reference the browser will carry."""
    request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
    stored = json.dumps({"client_id": client_id, "params": params}).encode()
    context.ephemeral.put(KEY_PREFIX + digest(request_uri), stored, ttl=context.par.lifetime)
    return request_uri


def redeem(context: ProviderContext, request_uri: str, *, expected_client_id: str) -> dict[str, str]:
    """The pushed request's parameters, once (RFC 9126 4). Only our own `urn:` references are accepted:
    fetching a URL the request names would be a server-side request forgery (RFC 9101 10.4.1)."""
    if not request_uri.startswith(REQUEST_URI_PREFIX):
        raise RequestUriNotSupportedError("only request_uri values from the pushed authorization endpoint")
    key = KEY_PREFIX + digest(request_uri)
    stored = context.ephemeral.get(key)
    if stored is not None and json.loads(stored)["client_id"] != expected_client_id:
        # Another client's reference: refused, and left for the client that pushed it.
        refusal = {"error": "another client's request_uri"}
        context.audit("pushed_request", "failure", client_id=expected_client_id, detail=refusal)
        stored = None
    taken = context.ephemeral.take(key) if stored is not None else None
    if taken is None:
        raise InvalidRequestUriError("the request_uri is unknown, expired or already used")
    params: dict[str, str] = json.loads(taken)["params"]
    return params


def validate_pushed_when_required(
    request: OAuth2Request,
    *,
    query_client: Callable[[str], RegisteredClient | None],
    required_by_server: bool,
) -> None:
    """A client that registered require_pushed_authorization_requests, or any client when the server
    requires it, sends only request_uri references at the authorization endpoint (RFC 9126 5, 6)."""
    payload = request.payload
    if "request_uri" in payload.data or not payload.client_id:
        return
    client = query_client(payload.client_id)
    if client is None:
        return  # authlib's grant refuses an unknown client
    if required_by_server or client.row.require_pushed_authorization_requests:
        raise InvalidRequestError(
            "authorization requests must be pushed first (PAR)",
            state=payload.state,
            redirect_uri=client.redirect_uri_for(payload.redirect_uri),
        )


class PushedAuthorizationEndpoint(Endpoint):
    """POST /par (RFC 9126 2): an authenticated client's authorization request, validated as the
    authorization endpoint would, answered with its request_uri (201) or a JSON error."""

    ENDPOINT_NAME = "pushed_authorization_request"
    CLIENT_AUTH_METHODS: ClassVar[list[str]] = [*CONFIDENTIAL_AUTH_METHODS, "none"]

    def create_endpoint_response(self, request: OAuth2Request) -> tuple[int, dict[str, Any], list[Any]]:
        client = self.server.authenticate_client(request, self.CLIENT_AUTH_METHODS, self.ENDPOINT_NAME)
        params = self.validate_pushed_request(request, client)
        context: ProviderContext = self.server.context
        request_uri = push(context, client_id=client.get_client_id(), params=params)
        return 201, {"request_uri": request_uri, "expires_in": context.par.lifetime}, JSON_HEADERS

    def validate_pushed_request(self, request: OAuth2Request, client: RegisteredClient) -> dict[str, str]:
        """RFC 9126 2.1: for the authenticated client only, with no request_uri. A request object in it
        is verified now (authlib's hook, idp.oidc.request_objects) and holds every other parameter
        (RFC 9126 3): those beside it count for nothing."""
        client_id = client.get_client_id()
        data = request.payload.data
        params = {name: value for name, value in data.items() if name not in CLIENT_CREDENTIALS}
        if "request_uri" in params:
            raise InvalidRequestError("request_uri cannot be pushed")
        if params.setdefault("client_id", client_id) != client_id:
            raise InvalidRequestError("client_id is not the authenticated client")
        if "request" in params:
            params = {"client_id": client_id, "request": params["request"]}
        request.payload = BasicOAuth2Payload(params)
        context: ProviderContext = self.server.context
        try:
            grant = self.server.get_authorization_grant(request)
            grant.validate_authorization_request()
            details = grant.request.payload.data.get("authorization_details")
            if details is not None:
                context.authorization_details.validate(details)  # RFC 9396 5: refused when pushed
        except OAuth2Error as error:
            error.redirect_uri = None  # RFC 9126 2.3: answered here, never sent to the redirect URI
            raise
        validated: dict[str, str] = dict(grant.request.payload.data)
        return validated
