"""Symmetric secrets from the keys directory: the session secret and the factor-encryption keys."""

from __future__ import annotations

import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from idp.keyfiles import replace_private, write_private

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
    """Encrypts factor secrets at rest; the first key in data.keys encrypts, every key decrypts. The file
    is read again when it changes (`idp keys rotate-data-key`), so running workers need no restart."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / DATA_KEYS
        self._version: tuple[int, int] | None = None
        self._fernet = self._load()

    def seal(self, plaintext: bytes) -> bytes:
        self._reload_if_changed()
        return self._fernet.encrypt(plaintext)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken:
            if not self._reload_if_changed():
                raise SecretsMissing(f"no key in {DATA_KEYS} opens this secret") from None
        return self.open(sealed)

    def _reload_if_changed(self) -> bool:
        if _version(self._path) in (self._version, None):
            return False
        self._fernet = self._load()
        return True

    def _load(self) -> MultiFernet:
        self._version = _version(self._path)
        return _fernet(_read(self._path).split())


class DataKeyRotation:
    """A new data key in front of the old ones: `reseal` encrypts a secret again with it (each secret in
    the one transaction that replaces them all), `save` then makes it data.keys' first line."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / DATA_KEYS
        self._keys = [Fernet.generate_key(), *_read(self._path).split()]
        self._fernet = _fernet(self._keys)

    def reseal(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.rotate(sealed)
        except InvalidToken:
            raise SecretsMissing(f"no key in {DATA_KEYS} opens a stored secret; nothing changed") from None

    def save(self) -> None:
        """The old keys stay after the new one: secrets sealed by a worker that has not yet seen the new
        file, and backups made before, still open."""
        replace_private(self._path, b"\n".join(self._keys) + b"\n")


def _version(path: Path) -> tuple[int, int] | None:
    """Which file is there now: a replaced file has another inode, an edited one another mtime."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_ino, found.st_mtime_ns


def _fernet(keys: list[bytes]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        raise SecretsMissing(f"{path} is missing; run 'idp init'") from None
