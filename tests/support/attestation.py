"""Attestation as a vendor makes it: a root CA, attestation certificates for a key model, `packed` and
`fido-u2f` statements, and a FIDO MDS3 BLOB signed under a metadata root of the test's own."""

from __future__ import annotations

import base64
import datetime
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from fido2.utils import websafe_encode

FIDO_AAGUID_OID = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")
U2F_AAGUID = bytes(16)


def _name(common_name: str, unit: str | None = None) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Key Vendor"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ]
    if unit:
        attributes.insert(2, x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    return x509.Name(attributes)


@dataclass
class CertificateAuthority:
    """A self-signed root that issues certificates."""

    name: str
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    certificate: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        self.certificate = self._sign(
            _name(self.name), self.key.public_key(), ca=True, issuer=_name(self.name), extensions=()
        )

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(Encoding.DER)

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.name.replace(' ', '-')}.pem"
        path.write_bytes(self.pem)
        return path

    def issue(
        self,
        common_name: str,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
        *,
        aaguid: bytes | None = None,
    ) -> x509.Certificate:
        """An attestation certificate (WebAuthn 8.2.1): OU "Authenticator Attestation", not a CA."""
        extensions = (
            [x509.UnrecognizedExtension(FIDO_AAGUID_OID, b"\x04\x10" + aaguid)] if aaguid is not None else []
        )
        return self._sign(
            _name(common_name, "Authenticator Attestation"),
            key.public_key(),
            ca=False,
            issuer=self.certificate.subject,
            extensions=extensions,
        )

    def _sign(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        *,
        ca: bool,
        issuer: x509.Name,
        extensions: Any,
    ) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        for extension in extensions:
            builder = builder.add_extension(extension, critical=False)
        return builder.sign(self.key, hashes.SHA256())


@dataclass
class Attester:
    """One key model's attestation key and certificate; `fmt` is `packed` (FIDO2) or `fido-u2f` (CTAP1)."""

    authority: CertificateAuthority
    fmt: str = "packed"
    aaguid: bytes = field(default_factory=lambda: uuid.uuid4().bytes)
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    certificate: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        if self.fmt == "fido-u2f":
            self.aaguid = U2F_AAGUID
        self.certificate = self.authority.issue(
            "Test Key Model", self.key, aaguid=self.aaguid if self.fmt == "packed" else None
        )

    @property
    def aaguid_text(self) -> str:
        return str(uuid.UUID(bytes=self.aaguid))

    def statement(
        self,
        *,
        auth_data: bytes,
        client_data_hash: bytes,
        rp_id_hash: bytes,
        credential_id: bytes,
        public_key: ec.EllipticCurvePublicKey,
    ) -> dict[str, Any]:
        """attStmt for `fmt` (WebAuthn 8.2 packed with x5c, 8.6 fido-u2f)."""
        der = self.certificate.public_bytes(Encoding.DER)
        if self.fmt == "fido-u2f":
            point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
            signed = b"\x00" + rp_id_hash + client_data_hash + credential_id + point
            return {"sig": self.key.sign(signed, ec.ECDSA(hashes.SHA256())), "x5c": [der]}
        signature = self.key.sign(auth_data + client_data_hash, ec.ECDSA(hashes.SHA256()))
        return {"alg": -7, "sig": signature, "x5c": [der]}


def metadata_entry(
    attester: Attester, *, description: str, key_protection: tuple[str, ...] = ("hardware", "secure_element")
) -> dict[str, Any]:
    """An MDS3 entry for the attester's model, its root among the statement's attestation roots."""
    statement: dict[str, Any] = {
        "description": description,
        "authenticatorVersion": 1,
        "schema": 3,
        "upv": [{"major": 1, "minor": 0}],
        "attestationTypes": ["basic_full"],
        "userVerificationDetails": [[{"userVerificationMethod": "presence_internal"}]],
        "keyProtection": list(key_protection),
        "matcherProtection": ["on_chip"],
        "attachmentHint": ["external"],
        "tcDisplay": [],
        "attestationRootCertificates": [base64.b64encode(attester.authority.der).decode()],
    }
    entry: dict[str, Any] = {
        "statusReports": [{"status": "FIDO_CERTIFIED", "effectiveDate": "2024-01-01"}],
        "timeOfLastStatusChange": "2024-01-01",
        "metadataStatement": statement,
    }
    if attester.fmt == "fido-u2f":
        public_key = attester.certificate.public_key()
        identifier = x509.SubjectKeyIdentifier.from_public_key(public_key).digest.hex()  # type: ignore[arg-type]
        entry["attestationCertificateKeyIdentifiers"] = statement["attestationCertificateKeyIdentifiers"] = [
            identifier
        ]
    else:
        entry["aaguid"] = statement["aaguid"] = attester.aaguid_text
    return entry


@dataclass
class MetadataService:
    """A stand-in for the FIDO MDS: a root, a signing certificate under it, and BLOBs it signs (RS256, as
    the real service signs them)."""

    root: CertificateAuthority = field(default_factory=lambda: CertificateAuthority("Test MDS Root"))
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))

    def blob(self, entries: list[dict[str, Any]], *, signer: rsa.RSAPrivateKey | None = None) -> bytes:
        """A JWS with the signing certificate in x5c; `signer` forges the signature with another key."""
        certificate = self.root.issue("Test MDS Signer", self.key).public_bytes(Encoding.DER)
        header = {"alg": "RS256", "typ": "JWT", "x5c": [base64.b64encode(certificate).decode()]}
        payload = {"legalHeader": "test", "no": 1, "nextUpdate": "2099-01-01", "entries": entries}
        message = (
            websafe_encode(json.dumps(header).encode()) + "." + websafe_encode(json.dumps(payload).encode())
        ).encode()
        signature = (signer or self.key).sign(message, padding.PKCS1v15(), hashes.SHA256())
        return message + b"." + websafe_encode(signature).encode()

    def install(self, directory: Path, entries: list[dict[str, Any]], **knobs: Any) -> dict[str, str]:
        """Write the BLOB and the root; the `[webauthn]` settings that name them."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "blob.jwt").write_bytes(self.blob(entries, **knobs))
        (directory / "mds-root.pem").write_bytes(self.root.pem)
        return {"mds_blob": str(directory / "blob.jwt"), "mds_root": str(directory / "mds-root.pem")}
