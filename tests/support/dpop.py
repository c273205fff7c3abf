"""A DPoP client's key pair (RFC 9449) and the proofs it signs; every claim can be bent for an attack."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
import warnings
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey, OKPKey, RSAKey

SIGNERS = {"ES256": "EC", "EdDSA": "OKP", "Ed25519": "OKP", "RS256": "RSA", "PS256": "RSA"}


@dataclass(frozen=True)
class DpopKey:
    private: ECKey | OKPKey | RSAKey
    alg: str

    @classmethod
    def generate(cls, alg: str = "ES256") -> DpopKey:
        kty = SIGNERS[alg]
        key: ECKey | OKPKey | RSAKey = (
            ECKey.generate_key("P-256")
            if kty == "EC"
            else OKPKey.generate_key("Ed25519")
            if kty == "OKP"
            else RSAKey.generate_key(2048)
        )
        return cls(key, alg)

    @property
    def jkt(self) -> str:
        return thumbprint(self.private.as_dict(private=False))

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        claims: dict[str, Any] | None = None,
        header: dict[str, Any] | None = None,
        signer: DpopKey | None = None,
    ) -> str:
        """A DPoP proof for `method url`; `claims` and `header` override or (set to None) drop members,
        `signer` signs with another key than the one in the header."""
        payload: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()),
        }
        if access_token is not None:
            payload["ath"] = b64(hashlib.sha256(access_token.encode()).digest())
        if nonce is not None:
            payload["nonce"] = nonce
        protected: dict[str, Any] = {
            "typ": "dpop+jwt",
            "alg": self.alg,
            "jwk": self.private.as_dict(private=False),
        }
        payload = {name: value for name, value in (payload | (claims or {})).items() if value is not None}
        protected = {name: value for name, value in (protected | (header or {})).items() if value is not None}
        key = (signer or self).private
        with warnings.catch_warnings():
            # joserfc warns that "EdDSA" is deprecated (RFC 9864): clients still use it.
            warnings.simplefilter("ignore")
            return jws.serialize_compact(
                protected, json.dumps(payload).encode(), key, algorithms=[protected["alg"]]
            )


def thumbprint(public: dict[str, Any]) -> str:
    """RFC 7638 (SHA-256), computed here by hand rather than by the provider's library."""
    members = {"EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n")}
    canonical = json.dumps({name: public[name] for name in members[public["kty"]]}, separators=(",", ":"))
    return b64(hashlib.sha256(canonical.encode()).digest())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
