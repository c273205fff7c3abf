"""Discovery (OIDC Discovery 3), the JWKS and the health check; the first two are pre-serialized."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from flask import Blueprint, Response

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
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
    }


DISCOVERY_PATH = "/.well-known/openid-configuration"
HSTS = "max-age=31536000; includeSubDomains"
JWKS_PATH = "/jwks.json"


class PublishedDocuments:
    """WSGI middleware: GET of the discovery document and the JWKS answered from bytes made at start,
    ahead of Flask. They are the most requested documents and change only with a restart."""

    def __init__(
        self, app: Callable[..., Iterable[bytes]], documents: dict[str, bytes], *, hsts: bool
    ) -> None:
        self._app = app
        transport = [("Strict-Transport-Security", HSTS)] if hsts else []
        self._answers = {
            path: (
                body,
                [
                    ("Content-Type", JSON),
                    ("Content-Length", str(len(body))),
                    ("Cache-Control", "public, max-age=300"),
                    ("Access-Control-Allow-Origin", "*"),
                    ("X-Content-Type-Options", "nosniff"),
                    *transport,
                ],
            )
            for path, body in documents.items()
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        answer = self._answers.get(environ.get("PATH_INFO", ""))
        method = environ.get("REQUEST_METHOD")
        if answer is None or method not in ("GET", "HEAD"):
            return self._app(environ, start_response)
        body, headers = answer
        start_response("200 OK", headers)
        return [b""] if method == "HEAD" else [body]


def published_documents(issuer: str, acr_values: list[str], jwks: bytes) -> dict[str, bytes]:
    document = json.dumps(discovery_document(issuer, acr_values), separators=(",", ":")).encode()
    return {DISCOVERY_PATH: document, JWKS_PATH: jwks}


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
