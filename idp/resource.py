"""For resource servers: validate our access tokens and demand step-up with RFC 9470 challenges.

Usable from any WSGI app (`check` and `RequireAuthentication`) and from Flask (`require`):

    validator = JwksValidator(issuer="https://login.example.com", audience="my-api")

    @app.post("/transfer")
    @require(validator, acr=("phr", "phrh"), max_age=300)
    def transfer(): ...

A transaction the user approved (RFC 9396 authorization details) is checked against the one about to
run: `require_details(validator, "payment", match=lambda: request.get_json())` runs the view only when
the token carries a `payment` detail with those values, and answers a challenge naming them otherwise.
A token approved for a `one_time` type is spent by its first accepted use.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, KeySetSerialization

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

ACCESS_TOKEN_TYPE = "at+jwt"
ALGORITHMS = ("ES256", "RS256")
HEADER_MEMBERS = frozenset({"alg", "kid", "typ"})  # all our tokens' header holds: no crit, jku, x5u, ...
MAX_TOKEN_LENGTH = 8192
LAST_NUMERIC_DATE = 253_402_300_799  # 9999-12-31T23:59:59Z
HTTP_REASONS = {401: "Unauthorized", 403: "Forbidden", 503: "Service Unavailable"}


@dataclass(frozen=True)
class AccessToken:
    subject: str
    client_id: str
    scopes: frozenset[str]
    acr: str | None
    amr: tuple[str, ...]
    auth_time: int | None
    claims: dict[str, Any]
    authorization_details: tuple[dict[str, Any], ...] = ()  # RFC 9396, as the user approved them
    one_time: bool = False  # spent by its first accepted use

    def approved(self, demand: DetailsDemand) -> bool:
        """Whether a detail of the demanded type carries every demanded value, exactly."""
        return any(
            detail.get("type") == demand.type
            and all(detail.get(name, _ABSENT) == value for name, value in demand.expected.items())
            for detail in self.authorization_details
        )


_ABSENT = object()


@dataclass(frozen=True)
class DetailsDemand:
    """The transaction a resource server is about to execute: its type and the values it runs with."""

    type: str
    expected: Mapping[str, Any]

    def detail(self) -> dict[str, Any]:
        return {**self.expected, "type": self.type}


@dataclass(frozen=True)
class Challenge:
    """A refusal: the HTTP status and the WWW-Authenticate header that tells the client what to do."""

    status: int
    www_authenticate: str
    error: str | None = None

    def body(self) -> bytes:
        return json.dumps({"error": self.error or "unauthorized"}).encode()


class ProviderUnreachable(Exception):
    """The provider's metadata, JWKS or introspection endpoint did not answer: fail closed."""


class TokenValidator(Protocol):
    def validate(self, token: str) -> AccessToken | None:
        """The token's facts when it is valid, active and ours; None otherwise."""
        ...

    def spend(self, token: AccessToken) -> bool:
        """Spend a single-use token; True only for its first use."""
        ...


class SpentTokens(Protocol):
    """Where a resource server remembers the single-use tokens it accepted, until they expire."""

    def spend(self, jti: str, *, expires_at: int) -> bool:
        """Atomically: True the first time a jti is spent, False after."""
        ...


class ProcessSpentTokens:
    """Spent tokens in this process's memory: right for one process; several share `RedisSpentTokens`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._spent: dict[str, int] = {}

    def spend(self, jti: str, *, expires_at: int) -> bool:
        now = time.time()
        with self._lock:
            for expired in [known for known, until in self._spent.items() if until <= now]:
                del self._spent[expired]
            if jti in self._spent:
                return False
            self._spent[jti] = expires_at
            return True


class RedisSpentTokens:
    """Spent tokens in Redis (SET NX with the token's remaining lifetime), shared by every process."""

    def __init__(self, url: str, *, prefix: str = "spent-token:") -> None:
        import redis

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = prefix

    def spend(self, jti: str, *, expires_at: int) -> bool:
        ttl = max(1, expires_at - int(time.time()))
        return bool(self._redis.set(self._prefix + jti, b"1", nx=True, ex=ttl))


class JwksValidator:
    """Validates JWT access tokens (RFC 9068) locally against the provider's JWKS, cached."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | None = None,
        cache_seconds: int = 300,
        refetch_after: int = 30,
        spent: SpentTokens | None = None,
    ) -> None:
        self._issuer = issuer
        self._spent = spent or ProcessSpentTokens()
        self._audience = audience
        self._cache_seconds = cache_seconds
        self._refetch_after = refetch_after
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched_at = 0.0

    def validate(self, token: str) -> AccessToken | None:
        header = _validate_header(token)
        if header is None:
            return None
        try:
            decoded = jwt.decode(token, self._key_set(kid=header.get("kid")), algorithms=ALGORITHMS)
        except (JoseError, ValueError, KeyError, RecursionError):  # claims may nest past the JSON parser
            return None
        claims = dict(decoded.claims)
        access_token = validate_claims(claims)
        if access_token is None or claims.get("iss") != self._issuer or claims["exp"] <= time.time():
            return None
        if self._audience is not None and self._audience not in _as_list(claims.get("aud")):
            return None
        return access_token

    def spend(self, token: AccessToken) -> bool:
        """Spent here: this validator alone sees the token's uses."""
        return self._spent.spend(str(token.claims.get("jti", "")), expires_at=int(token.claims["exp"]))

    def _key_set(self, *, kid: str | None) -> KeySet:
        """The cached JWKS; fetched again when stale, or when a token names a kid it lacks (rotation)."""
        with self._lock:
            age = time.monotonic() - self._fetched_at
            known = self._keys is not None and (kid is None or any(key.kid == kid for key in self._keys.keys))
            if self._keys is None or age > self._cache_seconds or (not known and age > self._refetch_after):
                metadata = _get_json(f"{self._issuer}/.well-known/openid-configuration")
                # The provider's JWKS document; import_key_set refuses one that is not a key set.
                self._keys = KeySet.import_key_set(cast(KeySetSerialization, _get_json(metadata["jwks_uri"])))
                self._fetched_at = time.monotonic()
            return self._keys


class IntrospectionValidator:
    """Asks the provider (RFC 7662) on every call: sees revocation at once, costs a round trip."""

    def __init__(
        self, *, issuer: str, client_id: str, client_secret: str, audience: str | None = None
    ) -> None:
        self._endpoint = _get_json(f"{issuer}/.well-known/openid-configuration")["introspection_endpoint"]
        self._audience = audience
        credentials = f"{client_id}:{client_secret}".encode()
        self._authorization = "Basic " + base64.b64encode(credentials).decode()

    def validate(self, token: str) -> AccessToken | None:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        request = urllib.request.Request(  # noqa: S310 (the endpoint comes from the provider's metadata)
            self._endpoint,
            data=urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"}).encode(),
            headers={"Authorization": self._authorization},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                answer = json.load(response)
        except (OSError, ValueError) as error:
            raise ProviderUnreachable(f"introspection failed: {error}") from None
        if not answer.get("active") or answer.get("token_type") != "Bearer":
            return None
        if self._audience is not None and answer.get("client_id") != self._audience:
            return None
        return validate_claims(answer)

    def spend(self, token: AccessToken) -> bool:
        """The provider spent it when it answered `active` (to the first asker only)."""
        return True


def check(
    authorization: str | None,
    validator: TokenValidator,
    *,
    acr: Iterable[str] = (),
    max_age: int | None = None,
    scopes: Iterable[str] = (),
    now: float | None = None,
    details: DetailsDemand | None = None,
) -> AccessToken | Challenge:
    """The token when it satisfies every demand (the transaction it approved, with `details`) and, when
    single use, was not used before; otherwise the challenge to answer with."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return Challenge(401, "Bearer")  # RFC 6750 3.1: no error code when no token was sent
    try:
        token = validator.validate(value.strip())
    except ProviderUnreachable:
        return Challenge(503, 'Bearer error="temporarily_unavailable"', "temporarily_unavailable")
    if token is None:
        return Challenge(401, 'Bearer error="invalid_token"', "invalid_token")
    missing_scopes = set(scopes) - token.scopes
    if missing_scopes:
        scope = " ".join(sorted(scopes))
        return Challenge(403, f'Bearer error="insufficient_scope", scope="{scope}"', "insufficient_scope")
    acceptable = tuple(acr)
    # Every step-up challenge names the transaction when the token did not approve it: one sign-in does.
    unapproved = details if details is not None and not token.approved(details) else None
    if acceptable and token.acr not in acceptable:
        description = f"needs authentication at {' or '.join(acceptable)}"
        return _step_up(description, acceptable, max_age, details=unapproved)
    age = (now or time.time()) - (token.auth_time or 0)
    if max_age is not None and age > max_age:
        description = f"needs authentication within the last {max_age} seconds"
        return _step_up(description, acceptable, max_age, details=unapproved)
    if unapproved is not None:
        return _step_up("needs approval of this transaction", acceptable, max_age, details=unapproved)
    if token.one_time and not validator.spend(token):
        return Challenge(
            401, 'Bearer error="invalid_token", error_description="already used"', "invalid_token"
        )
    return token


def _step_up(
    description: str,
    acr_values: tuple[str, ...],
    max_age: int | None,
    *,
    details: DetailsDemand | None = None,
) -> Challenge:
    """RFC 9470 3: insufficient_user_authentication, with what would be enough; a transaction to approve
    as `authorization_details`: base64url (no padding) of the RFC 9396 JSON array to request."""
    parts = ['Bearer error="insufficient_user_authentication"', f'error_description="{description}"']
    if acr_values:
        parts.append(f'acr_values="{" ".join(acr_values)}"')
    if max_age is not None:
        parts.append(f"max_age={max_age}")
    if details is not None:
        encoded = base64.urlsafe_b64encode(json.dumps([details.detail()]).encode()).rstrip(b"=").decode()
        parts.append(f'authorization_details="{encoded}"')
    return Challenge(401, ", ".join(parts), "insufficient_user_authentication")


def challenged_details(www_authenticate: str) -> list[dict[str, Any]] | None:
    """For clients: the authorization details a challenge from `require_details` asks to approve."""
    for part in www_authenticate.split(","):
        name, _, value = part.strip().partition("=")
        if name == "authorization_details":
            encoded = value.strip('"')
            details: list[dict[str, Any]] = json.loads(
                base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
            )
            return details
    return None


View = TypeVar("View", bound=Callable[..., Any])


def require_details(
    validator: TokenValidator,
    type: str,
    *,
    match: Callable[[], Mapping[str, Any]],
    acr: Iterable[str] = (),
    max_age: int | None = None,
    scopes: Iterable[str] = (),
) -> Callable[[View], View]:
    """Flask decorator: as `require`, and the token must carry an approved detail of `type` with the
    values `match()` returns (called per request: what the view is about to execute)."""
    return require(
        validator,
        acr=acr,
        max_age=max_age,
        scopes=scopes,
        details=lambda: DetailsDemand(type, match()),
    )


def require(
    validator: TokenValidator,
    *,
    acr: Iterable[str] = (),
    max_age: int | None = None,
    scopes: Iterable[str] = (),
    details: Callable[[], DetailsDemand] | None = None,
) -> Callable[[View], View]:
    """Flask decorator: the view runs with `flask.g.access_token` set, or the client gets the challenge."""
    acceptable, wanted_scopes = tuple(acr), tuple(scopes)

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            from flask import Response, g, request

            outcome = check(
                request.headers.get("Authorization"),
                validator,
                acr=acceptable,
                max_age=max_age,
                scopes=wanted_scopes,
                details=details() if details else None,
            )
            if isinstance(outcome, Challenge):
                return Response(
                    outcome.body(),
                    status=outcome.status,
                    mimetype="application/json",
                    headers={"WWW-Authenticate": outcome.www_authenticate},
                )
            g.access_token = outcome
            return view(*args, **kwargs)

        return cast(View, guarded)

    return decorate


class RequireAuthentication:
    """WSGI middleware: every request needs a token meeting the demands; it is put in the environ."""

    ENVIRON_KEY = "idp.access_token"

    def __init__(
        self,
        app: WSGIApplication,
        validator: TokenValidator,
        *,
        acr: Iterable[str] = (),
        max_age: int | None = None,
        scopes: Iterable[str] = (),
    ) -> None:
        self._app = app
        self._validator = validator
        self._acr = tuple(acr)
        self._max_age = max_age
        self._scopes = tuple(scopes)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        outcome = check(
            environ.get("HTTP_AUTHORIZATION"),
            self._validator,
            acr=self._acr,
            max_age=self._max_age,
            scopes=self._scopes,
        )
        if isinstance(outcome, Challenge):
            body = outcome.body()
            start_response(
                f"{outcome.status} {HTTP_REASONS[outcome.status]}",
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("WWW-Authenticate", outcome.www_authenticate),
                ],
            )
            return [body]
        environ[self.ENVIRON_KEY] = outcome
        return self._app(environ, start_response)


def _validate_header(token: str) -> Mapping[str, Any] | None:
    """The JOSE header of a compact JWS (RFC 7515 7.1) shaped as ours are: an object of alg, kid and typ
    alone, typ at+jwt (RFC 9068 2.1), a string kid. Anything else (crit, jku, ...) is refused unread."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        header: object = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError):
        return None
    if not isinstance(header, dict) or not header.keys() <= HEADER_MEMBERS:
        return None
    if header.get("typ") != ACCESS_TOKEN_TYPE or header.get("alg") not in ALGORITHMS:
        return None
    return header if isinstance(header.get("kid", ""), str) else None


def _is_string(value: object) -> bool:
    return isinstance(value, str)


def _is_strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _is_numeric_date(value: object) -> bool:
    """RFC 7519 2 NumericDate as the provider writes it: whole seconds from 1970 to 9999, a float's reach."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= LAST_NUMERIC_DATE


CLAIM_SHAPES: dict[str, Callable[[object], bool]] = {  # RFC 7519 4.1, RFC 9068 2.2, RFC 8176, RFC 9470 3
    "iss": _is_string,
    "sub": _is_string,
    "client_id": _is_string,
    "jti": _is_string,
    "scope": _is_string,
    "acr": _is_string,
    "aud": lambda value: _is_string(value) or _is_strings(value),
    "amr": _is_strings,
    "exp": _is_numeric_date,
    "iat": _is_numeric_date,
    "auth_time": _is_numeric_date,
    "authorization_details": lambda value: (
        isinstance(value, list) and all(isinstance(d, dict) for d in value)
    ),
    "approval": lambda value: isinstance(value, dict) and isinstance(value.get("one_time", False), bool),
}
REQUIRED_CLAIMS = ("sub", "client_id", "exp")


def validate_claims(claims: dict[str, Any]) -> AccessToken | None:
    """The token's facts when each claim has its shape and none binds it to a key: a token with `cnf`
    (RFC 7800 3.1; DPoP, RFC 9449 6) is no bearer token (RFC 6750). None otherwise."""
    if "cnf" in claims or not all(name in claims for name in REQUIRED_CLAIMS):
        return None
    if not all(shape(claims[name]) for name, shape in CLAIM_SHAPES.items() if name in claims):
        return None
    return AccessToken(
        subject=claims["sub"],
        client_id=claims["client_id"],
        scopes=frozenset(claims.get("scope", "").split()),
        acr=claims.get("acr"),
        amr=tuple(claims.get("amr", ())),
        auth_time=claims.get("auth_time"),
        claims=claims,
        authorization_details=tuple(claims.get("authorization_details", ())),
        one_time=bool(claims.get("approval", {}).get("one_time", False)),
    )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _get_json(url: str) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (the provider's own URLs)
            return dict(json.load(response))
    except (OSError, ValueError) as error:
        raise ProviderUnreachable(f"{url}: {error}") from None
