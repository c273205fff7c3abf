"""Factor rows as the sign-in sees them: what each lets the account prove, and WebAuthn credentials."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable

from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from idp.auth.policy import Amr, Capability, Method
from idp.auth.webauthn import NewCredential, StoredCredential, amr_for
from idp.store.tables import EMAIL, RECOVERY_CODE, TOTP, WEBAUTHN, Factor

__all__ = [
    "EMAIL",
    "RECOVERY_CODE",
    "TOTP",
    "WEBAUTHN",
    "capabilities_of",
    "credential_lookup_key",
    "stored_credential",
    "webauthn_factor",
]


def capabilities_of(factors: Iterable[Factor]) -> frozenset[Capability]:
    """What the account can perform: TOTP yields otp; a passkey yields hwk/swk with user verification."""
    found: set[Capability] = set()
    for factor in factors:
        if factor.kind == TOTP:
            found.add(Capability(Method.TOTP, frozenset({Amr.OTP})))
        elif factor.kind == EMAIL:
            found.add(Capability(Method.EMAIL_CODE, frozenset({Amr.EMAIL})))
        elif factor.kind == RECOVERY_CODE:
            found.add(Capability(Method.RECOVERY_CODE, frozenset({Amr.OTP})))
        elif factor.kind == WEBAUTHN:
            amr = amr_for(device_bound=not factor.data["backup_eligible"], user_verified=True)
            found.add(Capability(Method.WEBAUTHN, amr))
    return frozenset(found)


def credential_lookup_key(credential_id: bytes) -> str:
    return "webauthn:" + hashlib.sha256(credential_id).hexdigest()


def stored_credential(factor: Factor) -> StoredCredential:
    data = factor.data
    return StoredCredential(
        credential_id=base64url_to_bytes(data["credential_id"]),
        public_key=base64url_to_bytes(data["public_key"]),
        sign_count=int(data["sign_count"]),
        transports=tuple(data.get("transports", [])),
        device_bound=not data["backup_eligible"],
    )


def webauthn_factor(*, user_id: str, name: str, credential: NewCredential) -> Factor:
    now = int(time.time())
    return Factor(
        id=str(uuid.uuid4()),
        user_id=user_id,
        kind=WEBAUTHN,
        name=name,
        lookup_key=credential_lookup_key(credential.credential_id),
        secret=None,
        data={
            "credential_id": bytes_to_base64url(credential.credential_id),
            "public_key": bytes_to_base64url(credential.public_key),
            "sign_count": credential.sign_count,
            "transports": list(credential.transports),
            "aaguid": credential.aaguid,
            "backup_eligible": credential.backup_eligible,
            "backed_up": credential.backed_up,
        },
        created_at=now,
        last_used_at=None,
    )
