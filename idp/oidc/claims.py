"""Standard claims about a user (OIDC Core 5.1), released by scope (5.4)."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import scope_to_list

from idp.store.tables import User

CLAIMS_SUPPORTED = [
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "preferred_username",
    "name",
    "email",
    "email_verified",
]


def user_claims(user: User, scope: str) -> dict[str, Any]:
    scopes = set(scope_to_list(scope) or [])
    claims: dict[str, Any] = {"sub": user.id}
    if "profile" in scopes:
        claims |= {"preferred_username": user.username, "name": user.username}
    if "email" in scopes and user.email:
        claims |= {"email": user.email, "email_verified": user.email_verified}
    return claims
