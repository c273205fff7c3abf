"""JWTs a client signs are accepted once: each `jti` is remembered until the JWT's `exp` (RFC 7519 4.1.7)."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

from idp.oidc.tokens import digest
from idp.store.ephemeral import EphemeralStore

LEEWAY = 60  # seconds of clock skew allowed on exp, nbf and iat
MAX_LIFETIME = 3600  # a JWT valid for longer could outlive the memory of its jti
MAX_JTI_LENGTH = 256
KEY_PREFIX = "jti:"


class JwtUse(StrEnum):
    """What a client's JWT is for: each keeps its own record of used ids."""

    CLIENT_ASSERTION = "assertion"  # RFC 7523 2.2
    REQUEST_OBJECT = "request"  # RFC 9101


class JwtRefused(Exception):
    """A client's JWT that cannot be accepted (again); the message says why, and holds no secret."""


def spend_jti(ephemeral: EphemeralStore, *, use: JwtUse, client_id: str, claims: dict[str, Any]) -> None:
    """Record the JWT's `jti` as used until its `exp`; raise JwtRefused when it was used before, or when
    the JWT lives longer than MAX_LIFETIME (claims already validated: `exp` is a NumericDate)."""
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
        raise JwtRefused("the jti claim is missing or malformed")
    remaining = int(claims["exp"] - time.time()) + LEEWAY
    if remaining > MAX_LIFETIME + LEEWAY:
        raise JwtRefused(f"the JWT is valid for more than {MAX_LIFETIME} seconds")
    key = f"{KEY_PREFIX}{use}:{digest(client_id)}:{digest(jti)}"
    if ephemeral.incr(key, ttl=max(remaining, 1)) != 1:
        raise JwtRefused("the jti was already used")
