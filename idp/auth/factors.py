"""Factor rows as the sign-in sees them: what each lets the account prove, and passkeys' typed data."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from idp.auth.policy import FACTOR_METHOD, METHOD_AMR, Amr, Capability, passkey_amr
from idp.auth.webauthn import NewCredential, StoredCredential
from idp.store.tables import Factor, FactorKind


@dataclass(frozen=True)
class PasskeyData:
    """A WebAuthn factor's stored data, typed (the `data` column of its row).

    `attested`: its attestation chained to an operator's trust anchor when registered (keys stored before
    attestation was checked are not); `model`: the authenticator's name from FIDO metadata, if known.
    """

    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]
    aaguid: str
    backup_eligible: bool
    backed_up: bool
    attested: bool
    model: str

    @classmethod
    def of(cls, factor: Factor) -> PasskeyData:
        data = factor.data
        return cls(
            credential_id=base64url_to_bytes(data["credential_id"]),
            public_key=base64url_to_bytes(data["public_key"]),
            sign_count=int(data["sign_count"]),
            transports=tuple(data.get("transports", [])),
            aaguid=str(data.get("aaguid", "")),
            backup_eligible=bool(data["backup_eligible"]),
            backed_up=bool(data.get("backed_up", False)),
            attested=bool(data.get("attested", False)),
            model=str(data.get("model", "")),
        )

    @classmethod
    def registered(cls, credential: NewCredential) -> PasskeyData:
        return cls(
            credential_id=credential.credential_id,
            public_key=credential.public_key,
            sign_count=credential.sign_count,
            transports=credential.transports,
            aaguid=credential.aaguid,
            backup_eligible=credential.backup_eligible,
            backed_up=credential.backed_up,
            attested=credential.attestation.trusted,
            model=credential.attestation.model,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "credential_id": bytes_to_base64url(self.credential_id),
            "public_key": bytes_to_base64url(self.public_key),
            "sign_count": self.sign_count,
            "transports": list(self.transports),
            "aaguid": self.aaguid,
            "backup_eligible": self.backup_eligible,
            "backed_up": self.backed_up,
            "attested": self.attested,
            "model": self.model,
        }

    @property
    def amr(self) -> frozenset[Amr]:
        """What an assertion with user verification proves (hwk only when attested)."""
        return passkey_amr(attested=self.attested, user_verified=True)

    @property
    def credential(self) -> StoredCredential:
        return StoredCredential(
            credential_id=self.credential_id,
            public_key=self.public_key,
            sign_count=self.sign_count,
            transports=self.transports,
        )


def capabilities_of(factors: Iterable[Factor]) -> frozenset[Capability]:
    """What the account can perform: each kind's method with what it proves (METHOD_AMR), a passkey's
    by its attestation (hwk or swk), with user verification."""
    found: set[Capability] = set()
    for factor in factors:
        kind = FactorKind(factor.kind)
        amr = PasskeyData.of(factor).amr if kind is FactorKind.WEBAUTHN else METHOD_AMR[FACTOR_METHOD[kind]]
        found.add(Capability(FACTOR_METHOD[kind], amr))
    return frozenset(found)


def credential_lookup_key(credential_id: bytes) -> str:
    return "webauthn:" + hashlib.sha256(credential_id).hexdigest()


def webauthn_factor(*, user_id: str, name: str, credential: NewCredential) -> Factor:
    now = int(time.time())
    return Factor(
        id=str(uuid.uuid4()),
        user_id=user_id,
        kind=FactorKind.WEBAUTHN,
        name=name,
        lookup_key=credential_lookup_key(credential.credential_id),
        secret=None,
        data=PasskeyData.registered(credential).to_json(),
        created_at=now,
        last_used_at=None,
    )
