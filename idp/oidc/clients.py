"""Registered clients: authlib's ClientMixin over the durable row; secrets stored as SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin, list_to_scope, scope_to_list

from idp.store.tables import Client

MAX_CACHED_CLIENTS = 10_000
MAX_CLIENT_ID_LENGTH = 64
CONFIDENTIAL_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
DEFAULT_USER_GRANTS = ("authorization_code", "refresh_token")


class ClientRegistrationError(Exception):
    """A client registration the provider refuses (bad redirect URI, unknown grant type)."""


@dataclass(frozen=True)
class NewClient:
    client: Client
    secret: str | None  # shown once, never stored


def hash_secret(secret: str) -> str:
    """Client secrets are 256-bit random values: a plain SHA-256 is a sufficient one-way hash."""
    return hashlib.sha256(secret.encode()).hexdigest()


def register_client(
    *,
    name: str,
    redirect_uris: Sequence[str],
    public: bool,
    grant_types: Sequence[str],
    scope: str,
    post_logout_redirect_uris: Sequence[str] = (),
    id_token_signed_response_alg: str = "RS256",
    default_acr_values: Sequence[str] = (),
    default_max_age: int | None = None,
    third_party: bool = False,
) -> NewClient:
    """Validate a registration (OIDC Registration 2) and mint the client id and secret."""
    grants = tuple(grant_types) or (("client_credentials",) if not redirect_uris else DEFAULT_USER_GRANTS)
    unknown = set(grants) - set(GRANT_TYPES)
    if unknown:
        raise ClientRegistrationError(f"unknown grant type(s) {sorted(unknown)}; known: {list(GRANT_TYPES)}")
    if public and "client_credentials" in grants:
        raise ClientRegistrationError("a public client cannot use client_credentials")
    if "authorization_code" in grants and not redirect_uris:
        raise ClientRegistrationError("authorization_code needs at least one --redirect-uri")
    for uri in (*redirect_uris, *post_logout_redirect_uris):
        _validate_redirect_uri(uri)
    if default_max_age is not None and default_max_age < 0:
        raise ClientRegistrationError("default_max_age must be zero or more seconds")
    if id_token_signed_response_alg not in ("RS256", "ES256"):
        raise ClientRegistrationError("id_token_signed_response_alg must be RS256 or ES256")
    secret = None if public else secrets.token_urlsafe(32)
    client = Client(
        client_id=secrets.token_urlsafe(16),
        secret_hash=None if secret is None else hash_secret(secret),
        name=name,
        redirect_uris=list(redirect_uris),
        post_logout_redirect_uris=list(post_logout_redirect_uris),
        grant_types=list(grants),
        scope=scope,
        id_token_signed_response_alg=id_token_signed_response_alg,
        default_acr_values=list(default_acr_values),
        default_max_age=default_max_age,
        created_at=int(time.time()),
        third_party=third_party,
    )
    return NewClient(client=client, secret=secret)


def _validate_redirect_uri(uri: str) -> None:
    parts = urlsplit(uri)
    if parts.fragment or not parts.scheme or not (parts.netloc or parts.scheme not in ("http", "https")):
        raise ClientRegistrationError(f"redirect URI {uri!r} must be absolute and have no fragment")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ClientRegistrationError(f"redirect URI {uri!r}: plain http is allowed only for localhost")


class RegisteredClient(ClientMixin):  # type: ignore[misc]
    """What authlib asks of a client, answered from the durable row."""

    def __init__(self, row: Client) -> None:
        self.row = row
        self.client_id = row.client_id
        self.id_token_signed_response_alg = row.id_token_signed_response_alg
        self.client_metadata: dict[str, object] = {}

    @property
    def is_public(self) -> bool:
        return self.row.secret_hash is None

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.row.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return ""
        allowed = set(scope_to_list(self.row.scope))
        return str(list_to_scope([s for s in scope_to_list(scope) if s in allowed]))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.row.redirect_uris

    def check_post_logout_redirect_uri(self, uri: str) -> bool:
        return uri in self.row.post_logout_redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.row.secret_hash is None:
            return False
        return hmac.compare_digest(self.row.secret_hash, hash_secret(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            return method == "none" and endpoint in ("token", "revocation")
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.row.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.row.grant_types


class ClientCache:
    """Registered clients kept per process for a few seconds: most token requests then need no
    database round trip. A client changed or removed is seen everywhere within `ttl` seconds."""

    def __init__(self, *, load: Callable[[str], Client | None], ttl: float) -> None:
        self._load = load
        self._ttl = ttl
        self._entries: dict[str, tuple[float, RegisteredClient]] = {}
        self._lock = threading.Lock()

    def get(self, client_id: str) -> RegisteredClient | None:
        """authlib's `query_client`: the registered client, or None (also for malformed ids)."""
        if not isinstance(client_id, str) or len(client_id) > MAX_CLIENT_ID_LENGTH:
            return None
        now = time.monotonic()
        with self._lock:
            cached = self._entries.get(client_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        row = self._load(client_id)
        if row is None:
            return None
        client = RegisteredClient(row)
        with self._lock:
            if len(self._entries) >= MAX_CACHED_CLIENTS:
                self._entries.clear()
            self._entries[client_id] = (now + self._ttl, client)
        return client
