"""Attested keys (WebAuthn L3 8.2 packed, 8.6 fido-u2f; FIDO MDS3): hwk, and so phrh, only for a key whose
attestation chained to a trust anchor the operator configured, and whose metadata (if any) says hardware.

Each test builds its own vendor CA, key models and a metadata BLOB signed under its own MDS root."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from support.app import add_client, add_user, code_from, make_app
from support.attestation import Attester, CertificateAuthority, MetadataService, metadata_entry
from support.soft_authenticator import ORIGIN, SoftAuthenticator
from support.step_up import RelyingParty as Client
from support.step_up import passkey_options, registration_options, send_assertion

from idp.auth.attestation import AttestationVerdict, load_trust_anchors
from idp.auth.webauthn import Ceremonies, RelyingParty
from idp.config import ConfigError, WebAuthnSettings, settings_from_mapping
from idp.store.ephemeral import EmbeddedStore

VENDOR = CertificateAuthority("Trusted Vendor")
STRANGER = CertificateAuthority("Unknown Vendor")  # a root nobody configured
PASSWORD = "a long enough password"


@dataclass(frozen=True)
class Case:
    """A key, the anchors the operator configured (written under a directory), and the verdict."""

    key: Callable[[], SoftAuthenticator]
    anchors: Callable[[Path, SoftAuthenticator], dict[str, Any]]
    verdict: AttestationVerdict


def _key(fmt: str = "packed", authority: CertificateAuthority = VENDOR) -> Callable[[], SoftAuthenticator]:
    return lambda: SoftAuthenticator(backup_eligible=False, attester=Attester(authority, fmt=fmt))


def _roots(directory: Path, _key: SoftAuthenticator) -> dict[str, Any]:
    return {"attestation_roots": str(VENDOR.write(directory / "roots").parent)}


def _metadata(**entry: Any) -> Callable[[Path, SoftAuthenticator], dict[str, Any]]:
    def anchors(directory: Path, key: SoftAuthenticator) -> dict[str, Any]:
        assert key.attester is not None
        return MetadataService().install(directory / "mds", [metadata_entry(key.attester, **entry)])

    return anchors


def _allowing_another_aaguid(directory: Path, key: SoftAuthenticator) -> dict[str, Any]:
    return {**_roots(directory, key), "allowed_aaguids": ["00000000-0000-0000-0000-0000000000aa"]}


def _allowing_its_aaguid(directory: Path, key: SoftAuthenticator) -> dict[str, Any]:
    assert key.attester is not None
    return {**_roots(directory, key), "allowed_aaguids": [key.attester.aaguid_text]}


TRUSTED = AttestationVerdict(trusted=True, model="")
UNTRUSTED = AttestationVerdict(trusted=False, model="")
CASES = [
    pytest.param(Case(_key(), _roots, TRUSTED), id="packed statement chained to a configured root"),
    pytest.param(
        Case(_key("fido-u2f"), _roots, TRUSTED), id="U2F key's statement chained to a configured root"
    ),
    pytest.param(
        Case(_key(), _metadata(description="Test Key 5 NFC"), AttestationVerdict(True, "Test Key 5 NFC")),
        id="packed statement chained to the root the MDS BLOB lists for its AAGUID",
    ),
    pytest.param(
        Case(_key("fido-u2f"), _metadata(description="Test U2F"), AttestationVerdict(True, "Test U2F")),
        id="U2F statement found in the BLOB by its attestation key identifier",
    ),
    pytest.param(Case(_key(), _allowing_its_aaguid, TRUSTED), id="its AAGUID is on the allow-list"),
    pytest.param(
        Case(lambda: SoftAuthenticator(backup_eligible=False), _roots, UNTRUSTED),
        id="fails because a device-bound key with 'none' attestation proves nothing by its flags",
    ),
    pytest.param(
        Case(_key(authority=STRANGER), _roots, UNTRUSTED),
        id="fails because the statement chains to a root nobody configured",
    ),
    pytest.param(
        Case(_key(), lambda _d, _k: {}, UNTRUSTED), id="fails because no trust anchor is configured"
    ),
    pytest.param(
        Case(_key(), _allowing_another_aaguid, UNTRUSTED),
        id="fails because its AAGUID is not on the allow-list",
    ),
    pytest.param(
        Case(
            _key(),
            _metadata(description="Soft Key", key_protection=("software",)),
            AttestationVerdict(False, "Soft Key"),
        ),
        id="fails because its metadata says the key is kept in software",
    ),
]


def webauthn_settings(webauthn: dict[str, Any]) -> WebAuthnSettings:
    return settings_from_mapping({"webauthn": webauthn}).webauthn


def ceremonies_for(directory: Path, settings: WebAuthnSettings) -> Ceremonies:
    return Ceremonies(
        relying_party=RelyingParty(id="localhost", name="idp", origin=ORIGIN),
        ephemeral=EmbeddedStore(directory / "ephemeral.sqlite3"),
        challenge_ttl=60,
        trust=load_trust_anchors(settings),
        request_attestation=True,
    )


@pytest.mark.parametrize("case", CASES)
def test_a_registration_is_trusted_only_when_its_attestation_chains_to_an_operator_anchor(
    tmp_path: Path, case: Case
) -> None:
    key = case.key()
    ceremonies = ceremonies_for(tmp_path, webauthn_settings(case.anchors(tmp_path, key)))
    challenge = ceremonies.begin_registration(user_handle=b"user-1", username="alice", existing=[])
    assert json.loads(challenge.options_json)["attestation"] == "direct"
    response = key.create(challenge.options_json)
    new = ceremonies.finish_registration(ceremony_id=challenge.ceremony_id, response=json.dumps(response))
    assert new.attestation == case.verdict


def _forged(directory: Path) -> dict[str, Any]:
    entry = metadata_entry(Attester(VENDOR), description="Forged")
    return MetadataService().install(directory, [entry], signer=rsa.generate_private_key(65537, 2048))


def _other_root(directory: Path) -> dict[str, Any]:
    settings = MetadataService().install(directory, [])
    (directory / "mds-root.pem").write_bytes(STRANGER.pem)
    return settings


@pytest.mark.parametrize(
    ("anchors", "message"),
    [
        (_forged, "is not a BLOB signed under mds_root"),
        (_other_root, "is not a BLOB signed under mds_root"),
        (lambda d: {"attestation_roots": str(d)}, "no *.pem certificate in"),
        (lambda d: {"attestation_roots": str(d / "missing")}, "is not a directory"),
    ],
    ids=[
        "fails because the BLOB's signature was not made by its signing certificate",
        "fails because the BLOB's signing chain does not end at the configured mds_root",
        "fails because the roots directory holds no certificate",
        "fails because the roots directory does not exist",
    ],
)
def test_trust_anchors_that_cannot_be_trusted_stop_the_start(
    tmp_path: Path, anchors: Callable[[Path], dict[str, Any]], message: str
) -> None:
    with pytest.raises(ConfigError, match="webauthn") as raised:
        load_trust_anchors(webauthn_settings(anchors(tmp_path)))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("webauthn", "message"),
    [
        ({"mds_blob": "blob.jwt"}, "mds_blob needs mds_root"),
        ({"allowed_aaguids": ["not-an-aaguid"]}, "not an AAGUID"),
    ],
    ids=["fails because a BLOB needs the root of its signing chain", "fails because an AAGUID is malformed"],
)
def test_attestation_settings_are_validated(webauthn: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_mapping({"webauthn": webauthn})


# -- through the app: phrh needs an attested key -------------------------------------------------------


@pytest.fixture
def client(tmp_path: Path) -> Client:
    """A provider whose operator trusts VENDOR through the FIDO metadata for KEY_MODEL's AAGUID."""
    app = make_app(tmp_path, webauthn=MetadataService().install(tmp_path / "mds", [MODEL_ENTRY]))
    return Client(app, *add_client(app))


KEY_MODEL = Attester(VENDOR)
MODEL_ENTRY = metadata_entry(KEY_MODEL, description="Test Key 5 NFC")


@pytest.mark.parametrize(
    ("key", "label", "amr", "acr"),
    [
        (
            lambda: SoftAuthenticator(backup_eligible=False, attester=KEY_MODEL),
            "Test Key 5 NFC",
            "hwk",
            "phrh",
        ),
        (lambda: SoftAuthenticator(backup_eligible=False), "Passkey", "swk", "phr"),
        (
            lambda: SoftAuthenticator(backup_eligible=False, attester=Attester(STRANGER)),
            "Passkey",
            "swk",
            "phr",
        ),
    ],
    ids=[
        "an attested key listed in the metadata reaches phrh and is shown by its model name",
        "fails to reach phrh: a software key that clears its backup flags",
        "fails to reach phrh: a key attested by a vendor the operator does not trust",
    ],
)
def test_only_an_attested_key_reaches_phrh(
    client: Client, key: Callable[[], SoftAuthenticator], label: str, amr: str, acr: str
) -> None:
    add_user(client.app, "alice", PASSWORD)
    browser = client.browser()
    done, _secret = browser.sign_in_with_enrolment("alice", PASSWORD)
    code_from(done)
    authenticator = key()
    options, csrf = registration_options(browser)
    assert options["attestation"] == "direct"
    added = browser.post_json(
        "/account/passkeys", {"credential": authenticator.create(options), "name": "Key"}, csrf=csrf
    )
    assert added.status_code == 200, added.get_data(as_text=True)
    assert label in browser.client.get("/account").text

    elsewhere = client.browser()
    page = elsewhere.authorize(acr_values="phrh")
    answer = send_assertion(elsewhere, page, authenticator.get(passkey_options(elsewhere, page)))
    done = elsewhere.follow(elsewhere.client.get(answer.get_json()["redirect"]))
    claims = elsewhere.id_token_claims(elsewhere.redeem(code_from(done), client.secret)["id_token"])
    assert claims["acr"] == acr and claims["amr"] == [amr, "user", "mfa"]


def test_registration_asks_for_no_attestation_without_trust_anchors(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    client = Client(app, *add_client(app))
    add_user(client.app, "alice", PASSWORD)
    browser = client.browser()
    done, _secret = browser.sign_in_with_enrolment("alice", PASSWORD)
    code_from(done)
    options, _csrf = registration_options(browser)
    assert options["attestation"] == "none"
