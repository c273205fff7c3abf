"""The keys directory: signing keys (JWKS, rotation, retirement) and the symmetric secrets."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from joserfc import jws
from joserfc.errors import InvalidKeyTypeError

from idp.oidc.keys import SUFFIX, KeyRing, KeyringError, ensure_keys, generate_key, retire_key
from idp.oidc.tokens import ACCESS_TOKEN_TYPE, CompactSigner
from idp.secrets import (
    DATA_KEYS,
    SESSION_SECRET,
    SecretBox,
    SecretsMissing,
    ensure_secrets,
    load_session_secret,
)

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    """Where the keys go; not created yet, as on a fresh install."""
    return tmp_path / "keys"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in directory.iterdir()}


def _published_kids(directory: Path) -> list[str]:
    return [key["kid"] for key in json.loads(KeyRing.load(directory).jwks_json)["keys"]]


@pytest.mark.parametrize(
    "exists",
    [
        pytest.param(False, id="into a directory it creates"),
        pytest.param(True, id="into an existing directory without keys, like the repository's keys/"),
    ],
)
def test_ensure_keys_creates_one_private_key_per_algorithm(keys_dir: Path, exists: bool) -> None:
    if exists:
        keys_dir.mkdir()
        (keys_dir / "README.md").write_text("Signing keys live here.\n")

    kids = ensure_keys(keys_dir)

    ring = KeyRing.load(keys_dir)
    assert sorted(str(key.alg) for key in ring.keys) == ["ES256", "RS256"]
    assert set(kids) == {ring.signing_key("ES256").kid, ring.signing_key("RS256").kid}
    assert {path.name for path in keys_dir.glob(f"*{SUFFIX}")} == {f"{kid}{SUFFIX}" for kid in kids}
    for kid in kids:
        assert _mode(keys_dir / f"{kid}{SUFFIX}") == 0o600


def test_ensure_keys_is_idempotent(keys_dir: Path) -> None:
    ensure_keys(keys_dir)
    before = _files(keys_dir)

    assert ensure_keys(keys_dir) == []
    assert _files(keys_dir) == before


def test_ensure_keys_adds_only_the_missing_algorithm(keys_dir: Path) -> None:
    existing = generate_key(keys_dir, "RS256")

    (created,) = ensure_keys(keys_dir)

    ring = KeyRing.load(keys_dir)
    assert ring.signing_key("RS256").kid == existing
    assert ring.signing_key("ES256").kid == created


def test_jwks_publishes_no_private_member(keys_dir: Path) -> None:
    kids = ensure_keys(keys_dir)
    on_disk = [json.loads((keys_dir / f"{kid}{SUFFIX}").read_text()) for kid in kids]
    assert all("d" in document for document in on_disk), "the files hold the private keys"

    published = json.loads(KeyRing.load(keys_dir).jwks_json)["keys"]

    assert sorted(key["kid"] for key in published) == sorted(kids)
    for key in published:
        assert set(key) & PRIVATE_MEMBERS == set(), key["kid"]
        assert "iat" not in key
        assert (key["use"], key["kty"]) == ("sig", {"ES256": "EC", "RS256": "RSA"}[key["alg"]])


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_a_generated_key_signs_while_the_old_stays_published(keys_dir: Path, alg: str) -> None:
    ensure_keys(keys_dir)
    before = KeyRing.load(keys_dir)
    old = before.signing_key(alg).kid
    other_alg = "RS256" if alg == "ES256" else "ES256"

    new = generate_key(keys_dir, alg)  # type: ignore[arg-type]

    after = KeyRing.load(keys_dir)
    assert new != old
    assert after.signing_key(alg).kid == new
    assert after.signing_key(other_alg).kid == before.signing_key(other_alg).kid
    assert {old, new} <= set(_published_kids(keys_dir))


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_access_tokens_are_signed_as_joserfc_signs_and_verifies_them(keys_dir: Path, alg: str) -> None:
    ensure_keys(keys_dir)
    ring = KeyRing.load(keys_dir)
    key = ring.signing_key(alg)
    payload = json.dumps({"iss": "https://op.example", "sub": "é", "exp": 2**31}, ensure_ascii=False).encode()

    token = CompactSigner(key, alg).sign(payload)

    decoded = ring.decode(token)
    assert decoded is not None
    assert decoded.header == {"typ": ACCESS_TOKEN_TYPE, "alg": alg, "kid": key.kid}
    assert decoded.claims == json.loads(payload)
    if alg == "RS256":  # deterministic (RFC 8017 8.2): the very bytes joserfc would write
        assert token == jws.serialize_compact(decoded.header, payload, key, algorithms=[alg])


def test_an_access_token_signer_refuses_a_key_of_another_algorithm(keys_dir: Path) -> None:
    ensure_keys(keys_dir)

    with pytest.raises(InvalidKeyTypeError):
        CompactSigner(KeyRing.load(keys_dir).signing_key("RS256"), "ES256")


def test_a_missing_algorithm_has_no_signing_key(keys_dir: Path) -> None:
    generate_key(keys_dir, "ES256")

    with pytest.raises(KeyringError, match="no RS256 signing key"):
        KeyRing.load(keys_dir).signing_key("RS256")


def test_retire_removes_a_key_that_no_longer_signs(keys_dir: Path) -> None:
    old = generate_key(keys_dir, "ES256")
    new = generate_key(keys_dir, "ES256")

    retire_key(keys_dir, old)

    assert _published_kids(keys_dir) == [new]
    assert not (keys_dir / f"{old}{SUFFIX}").exists()


@pytest.fixture
def rotated_keys(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A keys directory whose ES256 key was rotated, beside a directory with a key of its own."""
    directory = tmp_path / "keys"
    ensure_keys(directory)
    kids = {
        "active": generate_key(directory, "ES256"),
        "only-rs256": str(KeyRing.load(directory).signing_key("RS256").kid),
        "no-such-kid": "no-such-kid",
        "outside": f"../elsewhere/{generate_key(tmp_path / 'elsewhere', 'ES256')}",
    }
    return directory, kids


REFUSED_RETIREMENTS = [
    pytest.param("active", "is the active ES256 key", id="fails because the key is the active ES256 key"),
    pytest.param("only-rs256", "is the active RS256 key", id="fails because it is the only RS256 key"),
    pytest.param("no-such-kid", "no key with kid", id="fails because no key has that kid"),
    pytest.param("outside", "no key with kid", id="fails because the kid climbs out of the directory"),
]


@pytest.mark.parametrize(("which", "expected"), REFUSED_RETIREMENTS)
def test_retire_refuses(rotated_keys: tuple[Path, dict[str, str]], which: str, expected: str) -> None:
    directory, kids = rotated_keys
    before = _files(directory)

    with pytest.raises(KeyringError, match=expected):
        retire_key(directory, kids[which])

    assert _files(directory) == before
    assert len(list((directory.parent / "elsewhere").iterdir())) == 1


def test_ensure_secrets_creates_private_files_once(tmp_path: Path) -> None:
    assert sorted(ensure_secrets(tmp_path)) == sorted([SESSION_SECRET, DATA_KEYS])
    before = _files(tmp_path)

    assert ensure_secrets(tmp_path) == []
    assert _files(tmp_path) == before
    assert _mode(tmp_path / SESSION_SECRET) == _mode(tmp_path / DATA_KEYS) == 0o600
    assert len(load_session_secret(tmp_path)) == 64


def test_missing_secrets_tell_to_run_init(tmp_path: Path) -> None:
    with pytest.raises(SecretsMissing, match="idp init"):
        SecretBox(tmp_path)
    with pytest.raises(SecretsMissing, match="idp init"):
        load_session_secret(tmp_path)


def test_secret_box_round_trip(tmp_path: Path) -> None:
    ensure_secrets(tmp_path)
    box = SecretBox(tmp_path)

    sealed = box.seal(b"JBSWY3DPEHPK3PXP")

    assert b"JBSWY3DPEHPK3PXP" not in sealed
    assert box.open(sealed) == b"JBSWY3DPEHPK3PXP"
    assert SecretBox(tmp_path).open(sealed) == b"JBSWY3DPEHPK3PXP"


def test_secret_box_rotation_keeps_old_secrets_readable(tmp_path: Path) -> None:
    ensure_secrets(tmp_path)
    sealed_before = SecretBox(tmp_path).seal(b"old secret")
    new_key = Fernet.generate_key()
    old_lines = (tmp_path / DATA_KEYS).read_bytes()
    (tmp_path / DATA_KEYS).write_bytes(new_key + b"\n" + old_lines)

    rotated = SecretBox(tmp_path)
    sealed_after = rotated.seal(b"new secret")

    assert rotated.open(sealed_before) == b"old secret"
    assert Fernet(new_key).decrypt(sealed_after) == b"new secret", "the first key seals"


def test_secret_box_without_the_sealing_key_cannot_open(tmp_path: Path) -> None:
    ensure_secrets(tmp_path)
    sealed = SecretBox(tmp_path).seal(b"secret")
    (tmp_path / DATA_KEYS).write_bytes(Fernet.generate_key() + b"\n")

    with pytest.raises(SecretsMissing, match=DATA_KEYS):
        SecretBox(tmp_path).open(sealed)
