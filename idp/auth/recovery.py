"""Recovery codes: ten single-use codes of 80 random bits, stored as SHA-256 digests, one row each."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
import uuid

from idp.store.tables import Factor, FactorKind

CODES_PER_SET = 10


def new_codes() -> list[str]:
    """Codes like `k7qm-2xfa-p3dr-9bwe`: 16 base32 characters (80 bits), easy to read and type."""
    return [
        "-".join(_chunks(base64.b32encode(secrets.token_bytes(10)).decode().lower(), 4))
        for _ in range(CODES_PER_SET)
    ]


def lookup_key(code: str) -> str:
    """The stored digest; spacing, dashes and case do not matter when the user types a code."""
    normalized = "".join(character for character in code.lower() if character.isalnum())[:64]
    return "recovery:" + hashlib.sha256(normalized.encode()).hexdigest()


def code_factors(user_id: str, codes: list[str]) -> list[Factor]:
    now = int(time.time())
    return [
        Factor(
            id=str(uuid.uuid4()),
            user_id=user_id,
            kind=FactorKind.RECOVERY_CODE,
            name="Recovery code",
            lookup_key=lookup_key(code),
            secret=None,
            data={},
            created_at=now,
            last_used_at=None,
        )
        for code in codes
    ]


def _chunks(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]
