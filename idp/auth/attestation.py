"""Attestation trust (WebAuthn L3 6.5, FIDO MDS3): did a new key chain to an anchor the operator chose?"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from fido2.mds3 import (
    MdsAttestationVerifier,
    MetadataBlobPayloadEntry,
    filter_attestation_key_compromised,
    parse_blob,
)
from fido2.webauthn import Aaguid
from webauthn.helpers import validate_certificate_chain
from webauthn.helpers.exceptions import InvalidCertificateChain

from idp.config import ConfigError, WebAuthnSettings

log = logging.getLogger(__name__)
# MDS3 keyProtection values (FIDO Registry 3.2) that keep the private key out of the host's reach.
HARDWARE_PROTECTION = frozenset({"hardware", "secure_element", "tee"})


@dataclass(frozen=True)
class AttestationVerdict:
    """What a registration's attestation proved: `trusted` keys are attested hardware (they earn hwk)."""

    trusted: bool
    model: str


UNATTESTED = AttestationVerdict(trusted=False, model="")


@dataclass(frozen=True)
class TrustAnchors:
    """The operator's attestation roots (PEM), FIDO metadata, and the AAGUIDs allowed (empty: any)."""

    roots: tuple[bytes, ...] = ()
    metadata: MdsAttestationVerifier | None = None
    allowed_aaguids: frozenset[str] = frozenset()

    @property
    def configured(self) -> bool:
        return bool(self.roots) or self.metadata is not None

    def verify_attestation(self, *, aaguid: str, x5c: Sequence[bytes]) -> AttestationVerdict:
        """A verified statement's certificates (leaf first) against the anchors; metadata names the model."""
        entry = self._entry(aaguid, x5c)
        model = _model(entry)
        if not x5c or (self.allowed_aaguids and aaguid not in self.allowed_aaguids):
            return AttestationVerdict(trusted=False, model=model)
        if entry is not None and not filter_attestation_key_compromised(entry, list(x5c)):
            log.warning("attestation key of %s reported compromised", model or aaguid)
            return AttestationVerdict(trusted=False, model=model)
        roots = list(self.roots) + _metadata_roots(entry)
        if not roots:
            return AttestationVerdict(trusted=False, model=model)
        try:
            validate_certificate_chain(x5c=list(x5c), pem_root_certs_bytes=roots)
        except InvalidCertificateChain:
            return AttestationVerdict(trusted=False, model=model)
        return AttestationVerdict(trusted=_hardware(entry), model=model)

    def _entry(self, aaguid: str, x5c: Sequence[bytes]) -> MetadataBlobPayloadEntry | None:
        """The metadata entry by AAGUID, or by the attestation key's identifier (U2F keys have no AAGUID)."""
        if self.metadata is None:
            return None
        found = self.metadata.find_entry_by_aaguid(Aaguid.parse(aaguid))
        if found is None and x5c:
            found = self.metadata.find_entry_by_chain(list(x5c))
        return found


def load_trust_anchors(settings: WebAuthnSettings) -> TrustAnchors:
    """Read the roots directory and the MDS3 BLOB, verifying the BLOB's signing chain to `mds_root`."""
    return TrustAnchors(
        roots=_read_roots(Path(settings.attestation_roots)) if settings.attestation_roots else (),
        metadata=_read_blob(Path(settings.mds_blob), Path(settings.mds_root)) if settings.mds_blob else None,
        allowed_aaguids=frozenset(settings.allowed_aaguids),
    )


def _read_roots(directory: Path) -> tuple[bytes, ...]:
    if not directory.is_dir():
        raise ConfigError(f"webauthn.attestation_roots: {directory} is not a directory")
    roots: list[bytes] = []
    for path in sorted(directory.glob("*.pem")):
        try:
            roots.extend(
                cert.public_bytes(Encoding.PEM) for cert in x509.load_pem_x509_certificates(path.read_bytes())
            )
        except ValueError:
            raise ConfigError(f"webauthn.attestation_roots: {path} holds no PEM certificate") from None
    if not roots:
        raise ConfigError(f"webauthn.attestation_roots: no *.pem certificate in {directory}")
    return tuple(roots)


def _read_blob(blob: Path, root: Path) -> MdsAttestationVerifier:
    try:
        anchor = x509.load_pem_x509_certificate(root.read_bytes()).public_bytes(Encoding.DER)
    except (OSError, ValueError):
        raise ConfigError(f"webauthn.mds_root: {root} is not a readable PEM certificate") from None
    try:
        payload = parse_blob(blob.read_bytes().strip(), anchor)
    except OSError as error:
        raise ConfigError(f"webauthn.mds_blob: {blob}: {error.strerror}") from None
    except Exception as error:  # fido2 raises many kinds for a forged or malformed BLOB
        raise ConfigError(
            f"webauthn.mds_blob: {blob} is not a BLOB signed under mds_root ({error})"
        ) from None
    return MdsAttestationVerifier(payload)


def _metadata_roots(entry: MetadataBlobPayloadEntry | None) -> list[bytes]:
    if entry is None or entry.metadata_statement is None:
        return []
    return [
        x509.load_der_x509_certificate(der).public_bytes(Encoding.PEM)
        for der in entry.metadata_statement.attestation_root_certificates
    ]


def _model(entry: MetadataBlobPayloadEntry | None) -> str:
    return entry.metadata_statement.description if entry and entry.metadata_statement else ""


def _hardware(entry: MetadataBlobPayloadEntry | None) -> bool:
    """Metadata, when known, must say the key is kept in hardware; an operator root alone vouches for it."""
    if entry is None or entry.metadata_statement is None:
        return True
    return bool(HARDWARE_PROTECTION & set(entry.metadata_statement.key_protection))
