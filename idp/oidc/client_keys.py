"""A client's registered public keys (OIDC Registration 2 `jwks` / `jwks_uri`), for the JWTs it signs."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.config import ClientKeySettings
from idp.store.tables import Client

# The algorithms of JWTs clients sign (request objects, client assertions): asymmetric only.
CLIENT_JWT_ALGORITHMS = ("RS256", "PS256", "ES256")
KEY_TYPES = ("RSA", "EC")
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MAX_CACHED_DOCUMENTS = 1000
READ_SIZE = 16384


class ClientKeysUnavailable(Exception):
    """The client registered no keys, or its jwks_uri did not give a usable JWKS; the message says which."""


def load_public_jwks(document: Any) -> KeySet:
    """The signing keys of a JWKS (RFC 7517 5); refuses private members and sets with no usable key."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('a JWKS is a JSON object with a "keys" array')
    keys = [key for key in document["keys"] if isinstance(key, dict)]
    if any(PRIVATE_MEMBERS & set(key) for key in keys):
        raise ValueError("the JWKS holds a private key; register the public keys only")
    signing = [key for key in keys if key.get("kty") in KEY_TYPES and key.get("use", "sig") == "sig"]
    if not signing:
        raise ValueError("the JWKS has no RSA or EC signing key")
    try:
        return KeySet.import_key_set({"keys": signing})
    except (JoseError, ValueError, TypeError) as error:
        raise ValueError(f"the JWKS has a malformed key ({error})") from None


def validate_jwks_uri(uri: str) -> None:
    """An absolute https URL (plain http only for localhost), as for redirect URIs."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise ValueError(f"jwks_uri {uri!r} must be an absolute http(s) URL without a fragment")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError(f"jwks_uri {uri!r}: plain http is allowed only for localhost")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an error: the registered URL is the only one fetched."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


class ClientKeys:
    """Keys registered inline are read from the client; a jwks_uri is fetched with a short timeout
    and a size cap, no redirects, and kept `cache_seconds` (clients publish a new key before use)."""

    def __init__(self, settings: ClientKeySettings) -> None:
        self._settings = settings
        self._opener = urllib.request.build_opener(_NoRedirects)
        self._cache: dict[str, tuple[float, KeySet]] = {}
        self._lock = threading.Lock()

    def key_set(self, client: Client) -> KeySet:
        """The client's public keys; raises ClientKeysUnavailable."""
        if client.jwks is not None:
            try:
                return load_public_jwks(client.jwks)
            except ValueError as error:
                raise ClientKeysUnavailable(str(error)) from None
        if client.jwks_uri:
            return self._fetched(client.jwks_uri)
        raise ClientKeysUnavailable("the client registered no keys (jwks or jwks_uri)")

    def _fetched(self, uri: str) -> KeySet:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(uri)
        if cached is not None and cached[0] > now:
            return cached[1]
        keys = self._fetch(uri)
        with self._lock:
            if len(self._cache) >= MAX_CACHED_DOCUMENTS:
                self._cache.clear()
            self._cache[uri] = (now + self._settings.cache_seconds, keys)
        return keys

    def _fetch(self, uri: str) -> KeySet:
        try:
            validate_jwks_uri(uri)
            body = self._download(uri)
            return load_public_jwks(json.loads(body))
        except (OSError, ValueError, http.client.HTTPException) as error:
            raise ClientKeysUnavailable(f"the client's jwks_uri gave no usable JWKS ({error})") from None

    def _download(self, uri: str) -> bytes:
        """At most `max_bytes`, within `fetch_timeout` seconds overall (not per read)."""
        timeout, limit = self._settings.fetch_timeout, self._settings.max_bytes
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(uri, headers={"Accept": "application/json"})  # noqa: S310 (checked)
        body = bytearray()
        with self._opener.open(request, timeout=timeout) as response:
            if response.status != 200:
                raise ValueError(f"status {response.status}")
            while chunk := response.read1(READ_SIZE):
                body += chunk
                if len(body) > limit:
                    raise ValueError(f"larger than {limit} bytes")
                if time.monotonic() > deadline:
                    raise ValueError(f"slower than {timeout} s")
        return bytes(body)
