"""A relying party's own key pair: its public JWKS (as registered with the provider), and the JWTs it
signs with the private key (request objects, RFC 9101; client assertions, RFC 7523)."""

from __future__ import annotations

import json
import secrets
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from joserfc.util import to_str

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class ClientKey:
    """One signing key of a client; `alg` is what it signs with unless told otherwise."""

    private: RSAKey | ECKey
    alg: str

    @classmethod
    def generate(cls, alg: str = "RS256") -> ClientKey:
        parameters: Any = {"use": "sig"}  # no "alg": an RSA key may sign RS256 and PS256
        key: RSAKey | ECKey = (
            ECKey.generate_key("P-256", parameters=parameters, auto_kid=True)
            if alg.startswith("ES")
            else RSAKey.generate_key(2048, parameters=parameters, auto_kid=True)
        )
        return cls(key, alg)

    def jwks(self) -> dict[str, Any]:
        """The public half, as `--jwks-file` or a jwks_uri publishes it."""
        return {"keys": [self.private.as_dict(private=False)]}

    def write_jwks(self, directory: Path, name: str = "client-jwks.json") -> Path:
        path = directory / name
        path.write_text(json.dumps(self.jwks()))
        return path

    def sign(self, claims: dict[str, Any], *, alg: str | None = None) -> str:
        chosen = alg or self.alg
        header = {"alg": chosen, "kid": self.private.kid}
        return jwt.encode(header, claims, self.private, algorithms=[chosen])


def unsigned(claims: dict[str, Any]) -> str:
    """A JWT with `alg: none` (RFC 7519 6): anyone can make one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc warns that "none" is deprecated: that is the point here
        return to_str(jwt.encode({"alg": "none"}, claims, None, algorithms=["none"]))


def request_object_claims(params: dict[str, Any], *, issuer: str, lifetime: int = 300) -> dict[str, Any]:
    """An authorization request's `params` as request object claims (RFC 9101 4), with iss (its
    client_id), aud, iat, nbf, exp and a new jti."""
    now = int(time.time())
    return {
        "iss": params["client_id"],
        "aud": issuer,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(16),
        **params,
    }


def assertion_claims(*, client_id: str, audience: str, lifetime: int = 60) -> dict[str, Any]:
    """The claims of a client assertion (RFC 7523 3): iss and sub the client, aud the provider, a new jti."""
    now = int(time.time())
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": secrets.token_urlsafe(16),
    }


def assertion_form(assertion: str) -> dict[str, str]:
    """The form parameters that carry a client assertion (RFC 7523 2.2)."""
    return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
