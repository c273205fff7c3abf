"""Signing keys: JWK files in the keys directory -> the active key per algorithm and the JWKS."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, KeySetSerialization, RSAKey
from joserfc.jwt import Token

from idp.keyfiles import write_private

Algorithm = Literal["RS256", "ES256"]
ALGORITHMS: tuple[Algorithm, ...] = ("ES256", "RS256")
SUFFIX = ".jwk"
MAX_JWT_LENGTH = 8192

SigningKey = ECKey | RSAKey


class KeyringError(Exception):
    """A key operation the keys directory cannot honour (unknown kid, last key of an algorithm)."""


@dataclass(frozen=True)
class KeyRing:
    """Keys newest first; the newest of each algorithm signs, all are published until retired."""

    keys: tuple[SigningKey, ...]
    jwks_json: bytes
    public_key_set: KeySet

    @classmethod
    def load(cls, directory: Path) -> KeyRing:
        documents = [json.loads(path.read_text()) for path in directory.glob(f"*{SUFFIX}")]
        documents.sort(key=lambda document: document.get("iat", 0), reverse=True)
        keys = tuple(_import(document) for document in documents)
        public: KeySetSerialization = {"keys": [key.as_dict(private=False) for key in keys]}
        return cls(
            keys=keys,
            jwks_json=json.dumps(public, separators=(",", ":")).encode(),
            public_key_set=KeySet.import_key_set(public) if keys else KeySet([]),
        )

    def decode(self, token: str) -> Token | None:
        """A JWT signed by one of our published keys; None when malformed, oversized or forged."""
        if not token or len(token) > MAX_JWT_LENGTH:
            return None
        try:
            return jwt.decode(token, self.public_key_set, algorithms=list(ALGORITHMS))
        except (JoseError, ValueError, TypeError):  # joserfc raises TypeError on headers of odd shapes
            return None

    def signing_key(self, alg: str) -> SigningKey:
        for key in self.keys:
            if key.alg == alg:
                return key
        raise KeyringError(f"no {alg} signing key; run 'idp init' or 'idp keys rotate --alg {alg}'")


def _import(document: dict[str, Any]) -> SigningKey:
    document = {name: value for name, value in document.items() if name != "iat"}
    return ECKey.import_key(document) if document["kty"] == "EC" else RSAKey.import_key(document)


def generate_key(directory: Path, alg: Algorithm) -> str:
    """Write a new private JWK for `alg` (it becomes that algorithm's active key); return its kid."""
    parameters: Any = {"alg": alg, "use": "sig"}
    key: SigningKey = (
        ECKey.generate_key("P-256", parameters=parameters, auto_kid=True)
        if alg == "ES256"
        else RSAKey.generate_key(2048, parameters=parameters, auto_kid=True)
    )
    document = {**key.as_dict(private=True), "iat": time.time_ns()}
    write_private(directory / f"{key.kid}{SUFFIX}", json.dumps(document).encode())
    assert key.kid is not None
    return key.kid


def ensure_keys(directory: Path) -> list[str]:
    """Create one key for each algorithm that has none; return the new kids."""
    existing = {key.alg for key in KeyRing.load(directory).keys} if directory.exists() else set()
    return [generate_key(directory, alg) for alg in ALGORITHMS if alg not in existing]


def retire_key(directory: Path, kid: str) -> None:
    """Remove a key from the JWKS; the active key of an algorithm cannot be retired."""
    path = directory / f"{kid}{SUFFIX}"
    if "/" in kid or not path.is_file():
        raise KeyringError(f"no key with kid {kid!r} in {directory}")
    ring = KeyRing.load(directory)
    retiring = next(key for key in ring.keys if key.kid == kid)
    if ring.signing_key(str(retiring.alg)).kid == kid:
        raise KeyringError(f"{kid} is the active {retiring.alg} key; rotate first, then retire it")
    path.unlink()
