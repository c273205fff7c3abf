"""WebAuthn ceremonies (py_webauthn) with single-use challenges in the ephemeral store."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_attestation_object,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidCBORData,
    InvalidJSONStructure,
    InvalidRegistrationResponse,
)
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from idp.auth.attestation import AttestationVerdict, TrustAnchors
from idp.store.ephemeral import EphemeralStore
from idp.words import _

MAX_RESPONSE_BYTES = 16 * 1024
NONCE_BYTES = 32
PARSE_ERRORS = (InvalidJSONStructure, InvalidCBORData, ValueError, KeyError, TypeError)


class CeremonyFailed(Exception):
    """A WebAuthn response we refuse; `reason` is for the audit log, the message for the page (in the
    reader's language)."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class RelyingParty:
    id: str
    name: str
    origin: str


@dataclass(frozen=True)
class StoredCredential:
    """What the durable store keeps of a registered credential."""

    credential_id: bytes
    public_key: bytes
    sign_count: int
    transports: tuple[str, ...]


@dataclass(frozen=True)
class NewCredential:
    credential_id: bytes
    public_key: bytes
    sign_count: int
    aaguid: str
    transports: tuple[str, ...]
    backup_eligible: bool
    backed_up: bool
    user_verified: bool
    attestation: AttestationVerdict


@dataclass(frozen=True)
class Assertion:
    credential_id: bytes
    new_sign_count: int
    user_verified: bool
    backed_up: bool


@dataclass(frozen=True)
class Challenge:
    ceremony_id: str
    options_json: str


class Ceremonies:
    """`trust`: the operator's attestation anchors; `request_attestation`: ask keys for it (`direct`)."""

    def __init__(
        self,
        *,
        relying_party: RelyingParty,
        ephemeral: EphemeralStore,
        challenge_ttl: int,
        trust: TrustAnchors,
        request_attestation: bool,
    ) -> None:
        self._rp = relying_party
        self._ephemeral = ephemeral
        self._ttl = challenge_ttl
        self._trust = trust
        self._attestation = (
            AttestationConveyancePreference.DIRECT
            if request_attestation
            else AttestationConveyancePreference.NONE
        )

    # -- registration (WebAuthn 7.1) ---------------------------------------------------------

    def begin_registration(
        self, *, user_handle: bytes, username: str, existing: list[StoredCredential]
    ) -> Challenge:
        options = generate_registration_options(
            rp_id=self._rp.id,
            rp_name=self._rp.name,
            user_id=user_handle,
            user_name=username,
            authenticator_selection=AuthenticatorSelectionCriteria(
                resident_key=ResidentKeyRequirement.PREFERRED,
                user_verification=UserVerificationRequirement.PREFERRED,
            ),
            exclude_credentials=[_descriptor(credential) for credential in existing],
            attestation=self._attestation,
            timeout=self._ttl * 1000,
        )
        return self._remember("register", options.challenge, options_to_json(options))

    def finish_registration(self, *, ceremony_id: str, response: str) -> NewCredential:
        challenge, _nonce = self._take(ceremony_id, "register")
        try:
            credential = parse_registration_credential_json(_bounded(response))
            verified = verify_registration_response(
                credential=credential,
                expected_challenge=challenge,
                expected_rp_id=self._rp.id,
                expected_origin=self._rp.origin,
            )
        except InvalidRegistrationResponse as error:
            raise CeremonyFailed(_("The passkey could not be verified."), reason=str(error)) from None
        except PARSE_ERRORS:
            raise _malformed("malformed response") from None
        statement = parse_attestation_object(verified.attestation_object).att_stmt
        return NewCredential(
            credential_id=verified.credential_id,
            public_key=verified.credential_public_key,
            sign_count=verified.sign_count,
            aaguid=verified.aaguid,
            transports=tuple(transport.value for transport in credential.response.transports or ()),
            backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            backed_up=verified.credential_backed_up,
            user_verified=verified.user_verified,
            attestation=self._trust.verify_attestation(aaguid=verified.aaguid, x5c=statement.x5c or ()),
        )

    # -- authentication (WebAuthn 7.2) -------------------------------------------------------

    def begin_authentication(
        self, *, allowed: list[StoredCredential], require_user_verification: bool, signs: bytes | None = None
    ) -> Challenge:
        """Empty `allowed`: a usernameless sign-in with a discoverable credential. With `signs` (the
        canonical bytes of a transaction shown to the user), the challenge is SHA-256(signs || nonce),
        a fresh server nonce per ceremony: the assertion signs exactly those bytes."""
        nonce = secrets.token_bytes(NONCE_BYTES) if signs is not None else None
        options = generate_authentication_options(
            challenge=_signing_challenge(signs, nonce) if signs is not None and nonce is not None else None,
            rp_id=self._rp.id,
            allow_credentials=[_descriptor(credential) for credential in allowed],
            user_verification=(
                UserVerificationRequirement.REQUIRED
                if require_user_verification
                else UserVerificationRequirement.PREFERRED
            ),
            timeout=self._ttl * 1000,
        )
        purpose = _authentication_purpose(require_user_verification, signing=signs is not None)
        return self._remember(purpose, options.challenge, options_to_json(options), nonce=nonce)

    def finish_authentication(
        self,
        *,
        ceremony_id: str,
        response: str,
        credential: StoredCredential,
        require_user_verification: bool,
        expected_signed: bytes | None = None,
    ) -> Assertion:
        """`expected_signed`: the transaction as it stands now; the challenge is derived from it again,
        so details changed since the options were made no longer verify."""
        purpose = _authentication_purpose(require_user_verification, signing=expected_signed is not None)
        challenge, nonce = self._take(ceremony_id, purpose)
        if expected_signed is not None and (
            nonce is None or _signing_challenge(expected_signed, nonce) != challenge
        ):
            raise CeremonyFailed(
                _("The transaction changed after it was shown. Start again."),
                reason="approved details changed",
            )
        try:
            verified = verify_authentication_response(
                credential=_bounded(response),
                expected_challenge=challenge,
                expected_rp_id=self._rp.id,
                expected_origin=self._rp.origin,
                credential_public_key=credential.public_key,
                credential_current_sign_count=credential.sign_count,
                require_user_verification=require_user_verification,
            )
        except InvalidAuthenticationResponse as error:
            reason = str(error)
            if "sign count" in reason.lower():
                raise CeremonyFailed(
                    _("This security key looks cloned and was refused."), reason="sign count went backwards"
                ) from None
            raise CeremonyFailed(_("The passkey could not be verified."), reason=reason) from None
        except PARSE_ERRORS:
            raise _malformed("malformed response") from None
        return Assertion(
            credential_id=verified.credential_id,
            new_sign_count=verified.new_sign_count,
            user_verified=verified.user_verified,
            backed_up=verified.credential_backed_up,
        )

    # -- challenges --------------------------------------------------------------------------

    def _remember(
        self, purpose: str, challenge: bytes, options_json: str, *, nonce: bytes | None = None
    ) -> Challenge:
        ceremony_id = secrets.token_urlsafe(24)
        fields = {"purpose": purpose, "challenge": bytes_to_base64url(challenge)}
        if nonce is not None:
            fields["nonce"] = bytes_to_base64url(nonce)
        record = json.dumps(fields).encode()
        self._ephemeral.put(f"webauthn:{ceremony_id}", record, ttl=self._ttl)
        return Challenge(ceremony_id=ceremony_id, options_json=options_json)

    def _take(self, ceremony_id: str, purpose: str) -> tuple[bytes, bytes | None]:
        """A challenge answers one ceremony of its purpose, once, before its TTL (replay defence)."""
        raw = self._ephemeral.take(f"webauthn:{ceremony_id}") if ceremony_id else None
        if raw is None:
            raise CeremonyFailed(
                _("This passkey request expired or was already used. Try again."), reason="no challenge"
            )
        record: dict[str, Any] = json.loads(raw)
        if record["purpose"] != purpose:
            raise CeremonyFailed(
                _("This passkey request does not match this step."), reason="challenge purpose"
            )
        nonce = base64url_to_bytes(record["nonce"]) if "nonce" in record else None
        return base64url_to_bytes(record["challenge"]), nonce


def _authentication_purpose(require_user_verification: bool, *, signing: bool) -> str:
    """A challenge answers only its own kind of step: one signing a transaction is no plain sign-in."""
    return ("authenticate-uv" if require_user_verification else "authenticate") + ("-sign" if signing else "")


def _signing_challenge(signed: bytes, nonce: bytes) -> bytes:
    return hashlib.sha256(signed + nonce).digest()


def credential_id_of(response: str) -> bytes:
    """The credential id an assertion names, to find the stored credential before verifying."""
    try:
        return parse_authentication_credential_json(_bounded(response)).raw_id
    except PARSE_ERRORS:
        raise _malformed("malformed response") from None


def user_handle_of(response: str) -> bytes | None:
    try:
        return parse_authentication_credential_json(_bounded(response)).response.user_handle
    except PARSE_ERRORS:
        raise _malformed("malformed response") from None


def _bounded(response: str) -> str:
    if len(response) > MAX_RESPONSE_BYTES:
        raise _malformed("response too large")
    return response


def _malformed(reason: str) -> CeremonyFailed:
    return CeremonyFailed(_("The browser sent a malformed response."), reason=reason)


def _descriptor(credential: StoredCredential) -> PublicKeyCredentialDescriptor:
    return PublicKeyCredentialDescriptor(
        id=credential.credential_id,
        transports=[AuthenticatorTransport(t) for t in credential.transports] or None,
    )
