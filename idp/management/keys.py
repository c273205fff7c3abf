"""Signing keys: list, rotate (a new active key per algorithm), retire (drop from the JWKS)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from idp.management.context import Conflict, Management, NotFound
from idp.oidc.keys import ALGORITHMS, Algorithm, KeyRing, KeyringError, generate_key, retire_key


@dataclass(frozen=True)
class KeySummary:
    kid: str
    alg: str
    active: bool


def list_keys(directory: Path) -> list[KeySummary]:
    ring = KeyRing.load(directory)
    return [
        KeySummary(kid=key.kid or "", alg=str(key.alg), active=ring.signing_key(str(key.alg)).kid == key.kid)
        for key in ring.keys
    ]


def rotate_keys(management: Management, algorithms: tuple[Algorithm, ...] = ALGORITHMS) -> list[str]:
    """A new active key per algorithm; old keys stay published. Servers use it after a restart."""
    directory = Path(management.settings.keys.directory)
    kids = [generate_key(directory, alg) for alg in algorithms]
    management.record("keys_rotated", detail={"kids": kids})
    return kids


def retire(management: Management, kid: str) -> None:
    """Drop a key from the JWKS (not the active key of its algorithm)."""
    directory = Path(management.settings.keys.directory)
    if kid not in {key.kid for key in list_keys(directory)}:
        raise NotFound(f"no key with kid {kid!r}")
    try:
        retire_key(directory, kid)
    except KeyringError as error:
        raise Conflict(str(error)) from None
    management.record("key_retired", detail={"kid": kid})
