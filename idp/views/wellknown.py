"""Discovery (OIDC Discovery 3), the JWKS and the health check; the first two are pre-serialized."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from flask import Blueprint, Response

from idp.auth.policy import AssurancePolicy
from idp.config import ParSettings
from idp.languages import LANGUAGES
from idp.oidc.claims import CLAIMS_SUPPORTED
from idp.oidc.client_keys import CLIENT_JWT_ALGORITHMS
from idp.oidc.clients import AUTH_METHODS, GRANT_TYPES, REQUEST_OBJECT_ALGORITHMS
from idp.oidc.dpop import ALGORITHMS as DPOP_ALGORITHMS
from idp.security_headers import HSTS
from idp.store.database import DatabaseUnavailable
from idp.store.ephemeral import StoreUnavailable
from idp.web import services

blueprint = Blueprint("wellknown", __name__)
JSON = "application/json"
# openid, the claims released by scope (OIDC Core 5.4), and refresh tokens (11).
STANDARD_SCOPES = ("openid", "profile", "email", "offline_access")


def discovery_document(
    issuer: str, policy: AssurancePolicy, *, par: ParSettings, detail_types: Sequence[str] = ()
) -> dict[str, Any]:
    """OIDC Discovery 3: the standard scopes and those configured under [scopes."..."]; every acr
    level by name and by alias; what works of JAR, PAR and private_key_jwt; the authorization details
    types configured (RFC 9396 10)."""
    signing_algs = list(CLIENT_JWT_ALGORITHMS)
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks.json",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "end_session_endpoint": f"{issuer}/logout",
        "scopes_supported": list(dict.fromkeys([*STANDARD_SCOPES, *policy.scope_rules])),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": list(GRANT_TYPES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "token_endpoint_auth_methods_supported": [*AUTH_METHODS, "none"],
        "token_endpoint_auth_signing_alg_values_supported": signing_algs,
        "revocation_endpoint_auth_methods_supported": [*AUTH_METHODS, "none"],
        "revocation_endpoint_auth_signing_alg_values_supported": signing_algs,
        "introspection_endpoint_auth_methods_supported": list(AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": signing_algs,
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS_SUPPORTED,
        "claims_parameter_supported": True,
        "acr_values_supported": policy.acr_values_supported,
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "ui_locales_supported": [language.tag for language in LANGUAGES],
        "authorization_response_iss_parameter_supported": True,
        "request_parameter_supported": True,
        "request_object_signing_alg_values_supported": list(REQUEST_OBJECT_ALGORITHMS),
        # request_uri: only references from the pushed authorization request endpoint (RFC 9126).
        "request_uri_parameter_supported": True,
        "require_request_uri_registration": True,
        "pushed_authorization_request_endpoint": f"{issuer}/par",
        "require_pushed_authorization_requests": par.required,
        # OpenID Back-Channel Logout 1.0 2.1 and Front-Channel Logout 1.0 3: sid in both.
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
        "authorization_details_types_supported": list(detail_types),
        "device_authorization_endpoint": f"{issuer}/device_authorization",
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
    }


DISCOVERY_PATH = "/.well-known/openid-configuration"
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


def published_documents(
    issuer: str, policy: AssurancePolicy, jwks: bytes, *, par: ParSettings, detail_types: Sequence[str] = ()
) -> dict[str, bytes]:
    discovery = discovery_document(issuer, policy, par=par, detail_types=detail_types)
    document = json.dumps(discovery, separators=(",", ":")).encode()
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
