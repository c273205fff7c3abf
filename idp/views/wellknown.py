"""Discovery (OIDC Discovery 3), the JWKS and the health check; the first two are pre-serialized."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, current_app

from idp.oidc.claims import CLAIMS_SUPPORTED
from idp.store.database import DatabaseUnavailable
from idp.store.ephemeral import StoreUnavailable
from idp.web import services

blueprint = Blueprint("wellknown", __name__)
JSON = "application/json"


def discovery_document(issuer: str, acr_values: list[str]) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks.json",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "end_session_endpoint": f"{issuer}/logout",
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS_SUPPORTED,
        "claims_parameter_supported": True,
        "acr_values_supported": acr_values,
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }


class Published:
    """Bytes computed once at start: nothing in them changes per request."""

    def __init__(self, discovery: bytes, jwks: bytes) -> None:
        self.discovery = discovery
        self.jwks = jwks


def publish(issuer: str, acr_values: list[str], jwks: bytes) -> Published:
    document = json.dumps(discovery_document(issuer, acr_values), separators=(",", ":")).encode()
    return Published(discovery=document, jwks=jwks)


def _published() -> Published:
    found: Published = current_app.extensions["idp.published"]
    return found


@blueprint.route("/.well-known/openid-configuration")
def openid_configuration() -> Response:
    return Response(_published().discovery, mimetype=JSON, headers={"Cache-Control": "public, max-age=300"})


@blueprint.route("/jwks.json")
def jwks() -> Response:
    return Response(_published().jwks, mimetype=JSON, headers={"Cache-Control": "public, max-age=300"})


@blueprint.route("/health")
def health() -> Response:
    """Both stores answer: 200; otherwise 503 naming which one failed (no details of why)."""
    found = services()
    failures = []
    try:
        found.database.ping()
    except DatabaseUnavailable:
        failures.append("database")
    try:
        found.ephemeral.ping()
    except StoreUnavailable:
        failures.append("ephemeral")
    status = 503 if failures else 200
    body = json.dumps({"status": "unavailable" if failures else "ok", "failing": failures})
    return Response(body, status=status, mimetype=JSON, headers={"Cache-Control": "no-store"})
