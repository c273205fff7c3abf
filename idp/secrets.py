"""Symmetric secrets from the keys directory: the session secret and the factor-encryption keys."""

from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from idp.keyfiles import write_private

SESSION_SECRET = "session.secret"
DATA_KEYS = "data.keys"


class SecretsMissing(Exception):
    """The keys directory lacks a secret that `idp init` creates."""


def ensure_secrets(directory: Path) -> list[str]:
    """Create the session secret and the first data key when absent; return what was created."""
    created = []
    if not (directory / SESSION_SECRET).exists():
        write_private(directory / SESSION_SECRET, secrets.token_hex(32).encode())
        created.append(SESSION_SECRET)
    if not (directory / DATA_KEYS).exists():
        write_private(directory / DATA_KEYS, Fernet.generate_key() + b"\n")
        created.append(DATA_KEYS)
    return created


def load_session_secret(directory: Path) -> bytes:
    return _read(directory / SESSION_SECRET)


class SecretBox:
    """Encrypts factor secrets at rest; the first key in data.keys encrypts, every key decrypts."""

    def __init__(self, directory: Path) -> None:
        lines = _read(directory / DATA_KEYS).split()
        self._fernet = MultiFernet([Fernet(line) for line in lines])

    def seal(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken:
            raise SecretsMissing(f"no key in {DATA_KEYS} opens this secret") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        raise SecretsMissing(f"{path} is missing; run 'idp init'") from None
