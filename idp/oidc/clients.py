"""Registered clients: authlib's ClientMixin over the durable row; secrets stored as SHA-256."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit

from authlib.oauth2.rfc6749 import ClientMixin, list_to_scope, scope_to_list
from authlib.oauth2.rfc8628 import DEVICE_CODE_GRANT_TYPE

from idp.oidc.client_keys import CLIENT_JWT_ALGORITHMS, load_public_jwks, validate_jwks_uri
from idp.store.tables import Client

MAX_CACHED_CLIENTS = 10_000
MAX_CLIENT_ID_LENGTH = 64
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
# How a client may register to authenticate (besides "none", a public client).
AUTH_METHODS = (*SECRET_AUTH_METHODS, "private_key_jwt")
CONFIDENTIAL_AUTH_METHODS = list(AUTH_METHODS)
PUBLIC_CLIENT_ENDPOINTS = ("token", "revocation", "pushed_authorization_request", "device_authorization")
REQUEST_OBJECT_ALGORITHMS = (*CLIENT_JWT_ALGORITHMS, "none")
# A device grant (RFC 8628) needs no redirect URI: the user approves on the provider's /device page.
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials", DEVICE_CODE_GRANT_TYPE)
DEFAULT_USER_GRANTS = ("authorization_code", "refresh_token")
# OIDC Core 11: a refresh token that outlives the user's browser session.
OFFLINE_ACCESS = "offline_access"
# RFC 8252 7.3: loopback IP literals (not "localhost", 8.3), whose port the app picks at run time.
LOOPBACK_ADDRESSES = ("127.0.0.1", "::1")
# RFC 8252 7.1: a native app's private-use scheme is a domain name it controls, reversed (com.example.app).
PRIVATE_USE_SCHEME = re.compile(r"[a-z][a-z0-9-]*(\.[a-z0-9-]+)+")


@dataclass(frozen=True)
class LogoutChannel:
    """Where a client is told its user's browser session ended, and whether it needs `iss` and `sid`
    to tell which session (OpenID Back-Channel Logout 1.0 2.2, Front-Channel Logout 1.0 2)."""

    uri: str
    session_required: bool = False


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
    introspect_audiences: Sequence[str] = (),
    token_endpoint_auth_method: str | None = None,
    jwks: dict[str, Any] | None = None,
    jwks_uri: str | None = None,
    request_object_signing_alg: str | None = None,
    require_pushed_authorization_requests: bool = False,
    third_party: bool = False,
    backchannel_logout: LogoutChannel | None = None,
    frontchannel_logout: LogoutChannel | None = None,
    dpop_bound_access_tokens: bool = False,
) -> NewClient:
    """Validate a registration (OIDC Registration 2, RFC 9126 6) and mint the client id and secret."""
    grants = tuple(grant_types) or (("client_credentials",) if not redirect_uris else DEFAULT_USER_GRANTS)
    unknown = set(grants) - set(GRANT_TYPES)
    if unknown:
        raise ClientRegistrationError(f"unknown grant type(s) {sorted(unknown)}; known: {list(GRANT_TYPES)}")
    if public and "client_credentials" in grants:
        raise ClientRegistrationError("a public client cannot use client_credentials")
    if "authorization_code" in grants and not redirect_uris:
        raise ClientRegistrationError("authorization_code needs at least one --redirect-uri")
    if OFFLINE_ACCESS in scope_to_list(scope) and "refresh_token" not in grants:
        raise ClientRegistrationError(f"the {OFFLINE_ACCESS} scope needs the refresh_token grant")
    if public and introspect_audiences:
        raise ClientRegistrationError("a public client cannot introspect: it has no secret to authenticate")
    for uri in (*redirect_uris, *post_logout_redirect_uris):
        _validate_redirect_uri(uri)
    for channel in (backchannel_logout, frontchannel_logout):
        if channel is not None:
            _validate_logout_uri(channel.uri)
    if default_max_age is not None and default_max_age < 0:
        raise ClientRegistrationError("default_max_age must be zero or more seconds")
    if id_token_signed_response_alg not in ("RS256", "ES256"):
        raise ClientRegistrationError("id_token_signed_response_alg must be RS256 or ES256")
    _validate_keys(jwks, jwks_uri)
    has_keys = jwks is not None or bool(jwks_uri)
    auth_method = _validate_auth_method(token_endpoint_auth_method, public=public, has_keys=has_keys)
    _validate_request_object_alg(request_object_signing_alg, has_keys=has_keys)
    secret = secrets.token_urlsafe(32) if auth_method in SECRET_AUTH_METHODS else None
    client = Client(
        client_id=secrets.token_hex(16),  # never starting with '-', which a command line takes for an option
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
        introspect_audiences=list(introspect_audiences),
        token_endpoint_auth_method=auth_method,
        jwks=jwks,
        jwks_uri=jwks_uri or None,
        request_object_signing_alg=request_object_signing_alg,
        require_pushed_authorization_requests=require_pushed_authorization_requests,
        third_party=third_party,
        backchannel_logout_uri=backchannel_logout.uri if backchannel_logout else None,
        backchannel_logout_session_required=bool(backchannel_logout and backchannel_logout.session_required),
        frontchannel_logout_uri=frontchannel_logout.uri if frontchannel_logout else None,
        frontchannel_logout_session_required=bool(
            frontchannel_logout and frontchannel_logout.session_required
        ),
        dpop_bound_access_tokens=dpop_bound_access_tokens,
    )
    return NewClient(client=client, secret=secret)


def _validate_keys(jwks: dict[str, Any] | None, jwks_uri: str | None) -> None:
    """Public keys inline or by URL, never both (OIDC Registration 2)."""
    if jwks is not None and jwks_uri:
        raise ClientRegistrationError("register the keys either inline (jwks) or by URL (jwks_uri), not both")
    try:
        if jwks is not None:
            load_public_jwks(jwks)
        if jwks_uri:
            validate_jwks_uri(jwks_uri)
    except ValueError as error:
        raise ClientRegistrationError(str(error)) from None


def _validate_auth_method(method: str | None, *, public: bool, has_keys: bool) -> str:
    """The token_endpoint_auth_method (OIDC Registration 2): "none" exactly for public clients."""
    if public:
        if method not in (None, "none"):
            raise ClientRegistrationError("a public client has no credentials to authenticate with")
        return "none"
    chosen = method or "client_secret_basic"
    if chosen not in AUTH_METHODS:
        raise ClientRegistrationError(f"token_endpoint_auth_method must be one of {list(AUTH_METHODS)}")
    if chosen == "private_key_jwt" and not has_keys:
        raise ClientRegistrationError("private_key_jwt needs the client's public keys (jwks or jwks_uri)")
    return chosen


def _validate_request_object_alg(alg: str | None, *, has_keys: bool) -> None:
    """request_object_signing_alg (OIDC Registration 2): "none" opts in to unsigned request objects."""
    if alg is None:
        return
    if alg not in REQUEST_OBJECT_ALGORITHMS:
        known = list(REQUEST_OBJECT_ALGORITHMS)
        raise ClientRegistrationError(f"request_object_signing_alg must be one of {known}")
    if alg != "none" and not has_keys:
        raise ClientRegistrationError(f"signed request objects ({alg}) need the client's public keys")


def _validate_redirect_uri(uri: str) -> None:
    """https, http on this machine, or a native app's private-use scheme (RFC 8252 7.1, 7.3, 8.4):
    never a scheme that runs or embeds content (javascript:, data:) or any other."""
    parts = urlsplit(uri)
    if parts.fragment or not parts.scheme:
        raise ClientRegistrationError(f"redirect URI {uri!r} must be absolute and have no fragment")
    if parts.scheme in ("http", "https"):
        if not parts.hostname or not _has_valid_port(parts):
            raise ClientRegistrationError(f"redirect URI {uri!r} must name a host, and a port only in digits")
        if parts.scheme == "http" and parts.hostname not in ("localhost", *LOOPBACK_ADDRESSES):
            raise ClientRegistrationError(f"redirect URI {uri!r}: plain http is allowed only for localhost")
        return
    if not PRIVATE_USE_SCHEME.fullmatch(parts.scheme):
        raise ClientRegistrationError(
            f"redirect URI {uri!r}: the scheme must be https, http for localhost, or a native app's "
            "private-use scheme named after its domain in reverse order, like com.example.app:/callback"
        )
    if parts.netloc or not parts.path.startswith("/"):
        raise ClientRegistrationError(
            f"redirect URI {uri!r}: a private-use scheme is followed by a single slash and a path, "
            "like com.example.app:/callback (RFC 8252 7.1)"
        )


def _validate_logout_uri(uri: str) -> None:
    """A logout URI is https, or http on this machine; absolute, without a fragment (Back-Channel
    Logout 1.0 2.2, Front-Channel Logout 1.0 2): the provider itself calls it, or frames it."""
    parts = urlsplit(uri)
    if parts.fragment or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientRegistrationError(
            f"logout URI {uri!r} must be an absolute http(s) URL without a fragment"
        )
    if not _has_valid_port(parts):
        raise ClientRegistrationError(f"logout URI {uri!r} must name a port only in digits")
    if parts.scheme == "http" and parts.hostname not in ("localhost", *LOOPBACK_ADDRESSES):
        raise ClientRegistrationError(f"logout URI {uri!r}: plain http is allowed only for localhost")


def _has_valid_port(parts: SplitResult) -> bool:
    try:
        parts.port  # noqa: B018 (urllib checks the port when it is read)
    except ValueError:
        return False
    return True


def _is_loopback_with_any_port(registered: SplitResult, requested: str) -> bool:
    """`requested` is the loopback redirect URI `registered` without a port, on some port (RFC 8252 7.3)."""
    if registered.scheme != "http" or registered.hostname not in LOOPBACK_ADDRESSES or registered.port:
        return False
    asked = urlsplit(requested)
    if not _has_valid_port(asked) or not asked.port:
        return False
    same_but_the_port = asked._replace(netloc=registered.netloc) == registered
    return same_but_the_port and asked.netloc == f"{registered.netloc}:{asked.port}"


class RegisteredClient(ClientMixin):
    """What authlib asks of a client, answered from the durable row."""

    def __init__(self, row: Client) -> None:
        self.row = row
        self.client_id = row.client_id
        self.id_token_signed_response_alg = row.id_token_signed_response_alg
        self.client_metadata: dict[str, object] = {}

    @property
    def is_public(self) -> bool:
        return self.row.token_endpoint_auth_method == "none"

    def get_client_id(self) -> str:
        return self.row.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.row.redirect_uris
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        """The requested scopes this client registered, the others dropped (as at authorization)."""
        if not scope:
            return ""
        allowed = set(scope_to_list(self.row.scope))
        return str(list_to_scope([s for s in scope_to_list(scope) if s in allowed]))

    def registered_every_scope(self, scope: str | None) -> bool:
        """Every requested scope is one this client registered (none requested: trivially)."""
        return set(scope_to_list(scope) or []) <= set(scope_to_list(self.row.scope))

    def may_introspect_for(self, audience: Sequence[str]) -> bool:
        """A resource server registered for one of a token's audiences (`idp clients create --introspect`)."""
        return not set(audience).isdisjoint(self.row.introspect_audiences)

    @property
    def requires_dpop(self) -> bool:
        """Registered with dpop_bound_access_tokens (RFC 9449 5.2): every token request needs a proof."""
        return self.row.dpop_bound_access_tokens

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """A registered URI exactly, or a loopback one registered portless on any port (RFC 8252 7.3)."""
        return redirect_uri in self.row.redirect_uris or any(
            _is_loopback_with_any_port(urlsplit(registered), redirect_uri)
            for registered in self.row.redirect_uris
        )

    def redirect_uri_for(self, requested: str | None) -> str | None:
        """Where an error may go before the request is validated (RFC 6749 4.1.2.1): the registered
        URI the request names, else the client's only one; None when the request names another."""
        if requested:
            return requested if self.check_redirect_uri(requested) else None
        return self.get_default_redirect_uri()

    def check_post_logout_redirect_uri(self, uri: str) -> bool:
        return uri in self.row.post_logout_redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.row.secret_hash is None:
            return False
        return hmac.compare_digest(self.row.secret_hash, hash_secret(client_secret))

    def authenticates_with_secret(self, secret: str | None, *, method: str, endpoint: str) -> bool:
        """`secret` is this client's, sent by a secret method it may use at `endpoint`: authlib's two
        checks, asked before a guess is counted (a right secret is never counted, only its gate read)."""
        if not secret or method not in SECRET_AUTH_METHODS:
            return False
        return self.check_endpoint_auth_method(method, endpoint) and self.check_client_secret(secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        """Only the registered method: a secret either way (Basic or form), or the client's keys."""
        registered = self.row.token_endpoint_auth_method
        if registered == "none":
            return method == "none" and endpoint in PUBLIC_CLIENT_ENDPOINTS
        if registered == "private_key_jwt":
            return method == "private_key_jwt"
        return method in SECRET_AUTH_METHODS

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
        cached = self.peek(client_id, now=now)
        if cached is not None:
            return cached
        row = self._load(client_id)
        if row is None:
            return None
        client = RegisteredClient(row)
        with self._lock:
            if len(self._entries) >= MAX_CACHED_CLIENTS:
                self._entries.clear()
            self._entries[client_id] = (now + self._ttl, client)
        return client

    def peek(self, client_id: str, *, now: float | None = None) -> RegisteredClient | None:
        """The client if this process has it fresh in the cache; None says only "not cached"."""
        with self._lock:
            cached = self._entries.get(client_id)
        if cached is not None and cached[0] > (time.monotonic() if now is None else now):
            return cached[1]
        return None
