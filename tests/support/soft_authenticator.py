"""A software authenticator behind a browser: WebAuthn options JSON in, webauthn.js's credential JSON out.

Each knob simulates something a real authenticator or a hostile page could do: another origin or RP ID,
no user verification, a synced or a device-bound credential, a cloned key's sign count.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from hashlib import sha256
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2.cose import ES256
from fido2.utils import websafe_decode, websafe_encode
from fido2.webauthn import (
    AttestationObject,
    AttestedCredentialData,
    AuthenticatorData,
    CollectedClientData,
)

from support.attestation import Attester

ORIGIN = "http://localhost:8000"
Flag = AuthenticatorData.FLAG


class NotAllowedError(Exception):
    """What the browser raises when no credential of this authenticator may answer."""


class InvalidStateError(Exception):
    """What the browser raises when the options exclude a credential this authenticator holds."""


@dataclass
class Credential:
    id: bytes
    rp_id: str
    user_handle: bytes
    private_key: ec.EllipticCurvePrivateKey
    sign_count: int = 0

    @classmethod
    def new(cls, *, rp_id: str, user_handle: bytes) -> Credential:
        return cls(secrets.token_bytes(32), rp_id, user_handle, ec.generate_private_key(ec.SECP256R1()))


@dataclass
class SoftAuthenticator:
    """One authenticator holding discoverable ES256 credentials.

    `backup_eligible`: a synced passkey (BE and BS set) rather than a device-bound security key;
    `attester`: the vendor's attestation it answers `direct` requests with (none: "none" attestation).
    """

    origin: str = ORIGIN
    user_verified: bool = True
    backup_eligible: bool = True
    credentials: list[Credential] = field(default_factory=list)
    attester: Attester | None = None

    @property
    def transports(self) -> list[str]:
        return ["hybrid", "internal"] if self.backup_eligible else ["usb"]

    def create(
        self,
        options: str | dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool | None = None,
        client_data_type: str = "webauthn.create",
        reuse: Credential | None = None,
    ) -> dict[str, Any]:
        """navigator.credentials.create(); `reuse` re-registers a credential this authenticator holds."""
        options = _loaded(options)
        assert any(param["alg"] == ES256.ALGORITHM for param in options["pubKeyCredParams"])
        excluded = {websafe_decode(item["id"]) for item in options.get("excludeCredentials", [])}
        if any(credential.id in excluded for credential in self.credentials):
            raise InvalidStateError("an excluded credential is on this authenticator")
        credential = reuse or Credential.new(
            rp_id=options["rp"]["id"], user_handle=websafe_decode(options["user"]["id"])
        )
        if reuse is None:
            self.credentials.append(credential)
        client_data = self._client_data(client_data_type, options["challenge"], origin)
        public_key = credential.private_key.public_key()
        aaguid = self.attester.aaguid if self.attester else bytes(16)
        attested = AttestedCredentialData.create(
            aaguid, credential.id, ES256.from_cryptography_key(public_key)
        )
        rp_id_hash = _rp_id_hash(rp_id or credential.rp_id)
        auth_data = AuthenticatorData.create(
            rp_id_hash, self._flags(user_verified) | Flag.AT, credential.sign_count, attested
        )
        if self.attester is None or options.get("attestation", "none") == "none":
            attestation = AttestationObject.create("none", auth_data, {})
        else:
            statement = self.attester.statement(
                auth_data=auth_data,
                client_data_hash=client_data.hash,
                rp_id_hash=rp_id_hash,
                credential_id=credential.id,
                public_key=public_key,
            )
            attestation = AttestationObject.create(self.attester.fmt, auth_data, statement)
        return self._public_key_credential(
            credential,
            clientDataJSON=client_data.b64,
            attestationObject=websafe_encode(attestation),
            transports=self.transports,
        )

    def get(
        self,
        options: str | dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool | None = None,
        client_data_type: str = "webauthn.get",
        sign_count: int | None = None,
    ) -> dict[str, Any]:
        """navigator.credentials.get(); `sign_count` sets the counter (a clone's counter lags behind)."""
        options = _loaded(options)
        credential = self._answering(options)
        credential.sign_count = credential.sign_count + 1 if sign_count is None else sign_count
        client_data = self._client_data(client_data_type, options["challenge"], origin)
        auth_data = AuthenticatorData.create(
            _rp_id_hash(rp_id or credential.rp_id), self._flags(user_verified), credential.sign_count
        )
        signature = credential.private_key.sign(auth_data + client_data.hash, ec.ECDSA(hashes.SHA256()))
        return self._public_key_credential(
            credential,
            clientDataJSON=client_data.b64,
            authenticatorData=websafe_encode(auth_data),
            signature=websafe_encode(signature),
            userHandle=websafe_encode(credential.user_handle),
        )

    def _answering(self, options: dict[str, Any]) -> Credential:
        """The first credential allowed (any for the RP ID when the list is empty: a discoverable one)."""
        allowed = {websafe_decode(item["id"]) for item in options.get("allowCredentials", [])}
        for credential in self.credentials:
            if credential.rp_id == options["rpId"] and (not allowed or credential.id in allowed):
                return credential
        raise NotAllowedError("no credential on this authenticator may answer")

    def _client_data(self, type_: str, challenge: str, origin: str | None) -> CollectedClientData:
        return CollectedClientData.create(type=type_, challenge=challenge, origin=origin or self.origin)

    def _flags(self, user_verified: bool | None) -> Flag:
        flags = Flag.UP
        if self.user_verified if user_verified is None else user_verified:
            flags |= Flag.UV
        if self.backup_eligible:
            flags |= Flag.BE | Flag.BS
        return flags

    def _public_key_credential(self, credential: Credential, **response: Any) -> dict[str, Any]:
        """PublicKeyCredential as webauthn.js's credentialJSON encodes it."""
        return {
            "id": websafe_encode(credential.id),
            "rawId": websafe_encode(credential.id),
            "type": "public-key",
            "response": response,
            "authenticatorAttachment": "platform" if self.backup_eligible else "cross-platform",
            "clientExtensionResults": {},
        }


def _loaded(options: str | dict[str, Any]) -> dict[str, Any]:
    return json.loads(options) if isinstance(options, str) else options


def _rp_id_hash(rp_id: str) -> bytes:
    return sha256(rp_id.encode()).digest()
