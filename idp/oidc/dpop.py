"""DPoP (RFC 9449): a client proves it holds a key, and the tokens it gets are bound to that key.

One module for both sides of the protocol:
- proofs (`verify_proof`, 4.3), each `jti` accepted once, and the nonces the provider may demand (8);
- the token endpoint, as an authlib grant extension (`DpopTokenBinding`, 5): a proof binds the access
  token (`cnf.jkt`, token type DPoP) and a public client's refresh token to the proof's key;
- protected resources, the provider's userinfo and `idp.resource` (`check_presentation`, 7): a bound
  token only with the DPoP scheme and a proof by its key, never as a bearer token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import InvalidRequestError
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

from idp.config import DpopSettings
from idp.oidc.client_keys import PRIVATE_MEMBERS
from idp.oidc.clients import RegisteredClient
from idp.store.ephemeral import EphemeralStore

PROOF_TYPE = "dpop+jwt"
HEADER = "DPoP"
NONCE_HEADER = "DPoP-Nonce"
# Asymmetric algorithms joserfc verifies; Ed25519 is EdDSA's fully-specified name (RFC 9864).
ALGORITHMS = ("ES256", "EdDSA", "Ed25519", "RS256", "PS256")
KEY_TYPES = {"ES256": "EC", "EdDSA": "OKP", "Ed25519": "OKP", "RS256": "RSA", "PS256": "RSA"}
MIN_RSA_BYTES = 256  # a 2048-bit modulus
MAX_PROOF_LENGTH = 8192
MAX_JTI_LENGTH = 256
THUMBPRINT_LENGTH = 43  # base64url of a SHA-256 digest (RFC 7638 3)
SHA256_BYTES = 32
NONCE_BUCKET_BYTES = 8
NONCE_MAC_BYTES = 16
REPLAY_KEY_PREFIX = "dpop-jti:"


class _ProofRegistry(jws.JWSRegistry):
    """joserfc's limits, with room in the header for the public key (an RSA one up to 4096 bits)."""

    max_header_length = 2048
    max_payload_length = 4096


PROOF_REGISTRY = _ProofRegistry(algorithms=list(ALGORITHMS))
# joserfc warns on every use of "EdDSA" (deprecated by RFC 9864); clients still send it, and we accept it.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", module="joserfc")


class ProofRefused(Exception):
    """A DPoP proof that cannot be accepted; the message, a sentence for the client, says why."""


class NonceRequired(ProofRefused):
    """The proof carries no nonce, or one the provider no longer accepts (RFC 9449 8)."""

    def __init__(self) -> None:
        super().__init__("The server requires a DPoP nonce: retry with the one in the DPoP-Nonce header.")


class TokenMisused(Exception):
    """An access token presented with the wrong scheme for its binding (RFC 9449 7.1, 7.2)."""


@dataclass(frozen=True)
class Proof:
    """A verified proof: the RFC 7638 thumbprint of its key, and its id."""

    jkt: str
    jti: str


def verify_proof(
    proof: str,
    *,
    expected_method: str,
    expected_url: str,
    now: float,
    window: int,
    access_token: str | None = None,
    nonce_is_valid: Callable[[object], bool] | None = None,
) -> Proof:
    """RFC 9449 4.3 checks 1 to 11 but the replay of `jti` (the caller's store): raises ProofRefused."""
    header = _proof_header(proof)
    key = _public_key(header["jwk"], alg=header["alg"])
    try:
        payload = jws.deserialize_compact(
            proof, key, algorithms=[header["alg"]], registry=PROOF_REGISTRY
        ).payload
        claims = json.loads(payload)
    except (JoseError, ValueError, RecursionError):
        raise ProofRefused("The DPoP proof signature does not verify with the key in its header.") from None
    if not isinstance(claims, dict):
        raise ProofRefused("The DPoP proof payload is not a JSON object.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
        raise ProofRefused("The DPoP proof has no valid jti claim.")
    if claims.get("htm") != expected_method:
        raise ProofRefused("The DPoP proof is for another HTTP method.")
    htu = claims.get("htu")
    if not isinstance(htu, str) or normalized_url(htu) != normalized_url(expected_url):
        raise ProofRefused("The DPoP proof is for another URL.")
    iat = claims.get("iat")
    if not isinstance(iat, int) or isinstance(iat, bool) or abs(now - iat) > window:
        raise ProofRefused(f"The DPoP proof must be issued within {window} seconds of the server clock.")
    if access_token is not None and claims.get("ath") != access_token_hash(access_token):
        raise ProofRefused("The DPoP proof ath claim does not match the access token.")
    if nonce_is_valid is not None and not nonce_is_valid(claims.get("nonce")):
        raise NonceRequired()
    return Proof(jkt=key.thumbprint(), jti=jti)


def _proof_header(proof: str) -> dict[str, Any]:
    """The JOSE header of a DPoP proof (RFC 9449 4.2): typ dpop+jwt, an asymmetric alg, a public jwk."""
    if not isinstance(proof, str) or not proof or len(proof) > MAX_PROOF_LENGTH:
        raise ProofRefused("The DPoP header is not a DPoP proof JWT.")
    try:
        header: object = jws.extract_compact(proof.encode(), registry=PROOF_REGISTRY).headers()
    except (JoseError, ValueError, UnicodeError, RecursionError):
        raise ProofRefused("The DPoP header is not a DPoP proof JWT.") from None
    if not isinstance(header, dict) or header.get("typ") != PROOF_TYPE:
        raise ProofRefused("The DPoP proof must have the typ dpop+jwt.")
    if header.get("alg") not in ALGORITHMS:
        raise ProofRefused(f"The DPoP proof must be signed with one of {', '.join(ALGORITHMS)}.")
    if "crit" in header:
        raise ProofRefused("The DPoP proof has critical header parameters the server does not understand.")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict):
        raise ProofRefused("The DPoP proof header must hold the public key as jwk.")
    if PRIVATE_MEMBERS & set(jwk):
        raise ProofRefused("The DPoP proof header holds a private key: send the public key only.")
    return header


def _public_key(jwk: dict[str, Any], *, alg: str) -> Key:
    """The proof's key, of the type its alg signs with (an RSA key of 2048 bits at least)."""
    if jwk.get("kty") != KEY_TYPES[alg]:
        raise ProofRefused("The DPoP proof key is not of the type its alg needs.")
    try:
        key = JWKRegistry.import_key(jwk)
    except (JoseError, ValueError, TypeError, KeyError):
        raise ProofRefused("The DPoP proof key is malformed.") from None
    if jwk["kty"] == "RSA" and len(_unpadded(str(jwk.get("n", "")))) < MIN_RSA_BYTES:
        raise ProofRefused("The DPoP proof RSA key must be 2048 bits or longer.")
    return key


def normalized_url(url: str) -> tuple[str, str, str]:
    """RFC 9449 4.3 (9), RFC 3986 6.2.2 and 6.2.3: scheme and host in lower case, no default port, no
    query or fragment; "" for a URL that is not absolute."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return ("", "", "")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ("", "", "")
    default = 443 if parts.scheme.lower() == "https" else 80
    host = parts.hostname if port in (None, default) else f"{parts.hostname}:{port}"
    return (parts.scheme.lower(), host, parts.path or "/")


def access_token_hash(access_token: str) -> str:
    """`ath` (RFC 9449 4.2): base64url of the SHA-256 of the access token."""
    return _b64(hashlib.sha256(access_token.encode("ascii", "replace")).digest())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unpadded(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return b""


def verify_request_proof(
    proofs: Sequence[str],
    *,
    seen: SeenProofs,
    expected_method: str,
    expected_url: str,
    now: float,
    window: int,
    access_token: str | None = None,
    nonce_is_valid: Callable[[object], bool] | None = None,
) -> Proof | None:
    """The one proof of a request (the values of its DPoP headers), verified and spent: RFC 9449 4.3
    with the replay check (12). None when the request has no proof; raises ProofRefused."""
    if not proofs:
        return None
    if len(proofs) > 1:
        raise ProofRefused("A request carries one DPoP proof in one DPoP header.")
    proof = verify_proof(
        proofs[0],
        expected_method=expected_method,
        expected_url=expected_url,
        now=now,
        window=window,
        access_token=access_token,
        nonce_is_valid=nonce_is_valid,
    )
    if not seen.first_use(proof, ttl=2 * window + 1):
        raise ProofRefused("The DPoP proof was already used: make a new proof for every request.")
    return proof


# -- replay and nonces ---------------------------------------------------------------------------


class SeenProofs(Protocol):
    def first_use(self, proof: Proof, *, ttl: int) -> bool:
        """Record the proof as used for `ttl` seconds; False when it was used before (atomic)."""
        ...


class StoredProofs:
    """Used proofs in the ephemeral store, shared by every node: one atomic increment per proof."""

    def __init__(self, ephemeral: EphemeralStore) -> None:
        self._ephemeral = ephemeral

    def first_use(self, proof: Proof, *, ttl: int) -> bool:
        key = f"{REPLAY_KEY_PREFIX}{hashlib.sha256(f'{proof.jkt}|{proof.jti}'.encode()).hexdigest()}"
        return self._ephemeral.incr(key, ttl=ttl) == 1


class RememberedProofs:
    """Used proofs in this process's memory (a resource server with one process, `idp.resource`)."""

    MAX_ENTRIES = 100_000

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def first_use(self, proof: Proof, *, ttl: int) -> bool:
        now = time.monotonic()
        with self._lock:
            if len(self._seen) >= self.MAX_ENTRIES:
                self._seen = {entry: until for entry, until in self._seen.items() if until > now}
            if len(self._seen) >= self.MAX_ENTRIES:
                return False  # full of live proofs: refuse rather than forget one
            until = self._seen.get((proof.jkt, proof.jti))
            if until is not None and until > now:
                return False
            self._seen[(proof.jkt, proof.jti)] = now + ttl
            return True


class Nonces:
    """Server nonces (RFC 9449 8) without state: a time bucket and its MAC under a key every node
    derives from the provider's session secret. A nonce is valid in its bucket and the next."""

    def __init__(self, *, secret: bytes, lifetime: int) -> None:
        self._key = hmac.new(secret, b"idp DPoP nonce", hashlib.sha256).digest()
        self._lifetime = lifetime

    def current(self, *, now: float) -> str:
        return self._nonce(int(now) // self._lifetime)

    def is_valid(self, nonce: object, *, now: float) -> bool:
        if not isinstance(nonce, str) or len(nonce) > 64 or not nonce.isascii():
            return False  # compare_digest compares ASCII strings only
        bucket = int(now) // self._lifetime
        return any(hmac.compare_digest(nonce, self._nonce(valid)) for valid in (bucket, bucket - 1))

    def _nonce(self, bucket: int) -> str:
        stamp = bucket.to_bytes(NONCE_BUCKET_BYTES, "big", signed=True)
        mac = hmac.new(self._key, stamp, hashlib.sha256).digest()[:NONCE_MAC_BYTES]
        return _b64(stamp + mac)


class DpopVerifier:
    """The provider's side: proofs sent to its own endpoints, whose URLs come from the configured
    issuer (never from the request's Host or forwarded headers); each proof accepted once."""

    def __init__(self, *, issuer: str, settings: DpopSettings, seen: SeenProofs, nonce_secret: bytes) -> None:
        self._issuer = issuer
        self._settings = settings
        self._seen = seen
        self._nonces = Nonces(secret=nonce_secret, lifetime=settings.nonce_lifetime)

    def verify(
        self, proofs: Sequence[str], *, method: str, endpoint: str, access_token: str | None = None
    ) -> Proof | None:
        """The request's one proof, verified and spent; None when it has none. Raises ProofRefused."""
        now = time.time()
        return verify_request_proof(
            proofs,
            seen=self._seen,
            expected_method=method,
            expected_url=f"{self._issuer}{endpoint}",
            now=now,
            window=self._settings.proof_window,
            access_token=access_token,
            nonce_is_valid=self._nonce_check(now) if self._settings.require_nonce else None,
        )

    def fresh_nonce(self) -> str:
        return self._nonces.current(now=time.time())

    def _nonce_check(self, now: float) -> Callable[[object], bool]:
        return lambda nonce: self._nonces.is_valid(nonce, now=now)


# -- the token endpoint (RFC 9449 5) ---------------------------------------------------------------


class InvalidDpopProofError(OAuth2Error):
    error = "invalid_dpop_proof"
    status_code = 400


class UseDpopNonceError(OAuth2Error):
    """RFC 9449 8: the error, and the nonce to retry with in the DPoP-Nonce header."""

    error = "use_dpop_nonce"
    status_code = 400

    def __init__(self, nonce: str) -> None:
        super().__init__(str(NonceRequired()))
        self.nonce = nonce

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = super().get_headers()
        return [*headers, (NONCE_HEADER, self.nonce)]


PROOF_ATTRIBUTE = "dpop_proof"  # where the token request keeps its verified proof, as authlib keeps `user`


class DpopTokenBinding:
    """authlib grant extension: verify the token request's proof before the grant looks anything up
    (a refused proof spends no code or refresh token), then enforce the client's and the refresh
    token's binding. The grants read the result with `proven_key` and `refresh_token_key`. Every
    refusal is audited (`dpop_proof`): a bound refresh token without its key is a stolen one."""

    def __init__(self, verifier: DpopVerifier, *, audit: Callable[..., None]) -> None:
        self._verifier = verifier
        self._audit = audit

    def __call__(self, grant: Any) -> None:
        grant.register_hook("after_validate_consent_request", self.validate_dpop_jkt)
        grant.register_hook("before_validate_token_request", self.verify_proof)
        grant.register_hook("after_validate_token_request", self.enforce_binding)

    def validate_dpop_jkt(self, grant: Any, redirect_uri: str) -> None:
        """RFC 9449 10: an authorization request may bind its code to a key, by the key's thumbprint."""
        jkt = grant.request.payload.data.get("dpop_jkt")
        if jkt is not None and not is_confirmation({"jkt": jkt}):
            description = "The dpop_jkt parameter must be a SHA-256 JWK thumbprint."
            raise InvalidRequestError(description, redirect_uri=redirect_uri)

    def verify_proof(self, grant: Any) -> None:
        request = grant.request
        try:
            proof = self._verifier.verify(
                _header_values(request.headers), method=request.method, endpoint="/token"
            )
        except NonceRequired:
            raise UseDpopNonceError(self._verifier.fresh_nonce()) from None
        except ProofRefused as refused:
            raise self._refused(request, str(refused), client_id=request.payload.client_id) from None
        setattr(request, PROOF_ATTRIBUTE, proof)

    def enforce_binding(self, grant: Any, _result: object = None) -> None:
        """A client registered with dpop_bound_access_tokens always sends a proof (5.2); a code whose
        request named a key (dpop_jkt, 10) and a bound refresh token (5) only with a proof by it."""
        request = grant.request
        jkt = proven_key(request)
        client: RegisteredClient = request.client
        if jkt is None and client.requires_dpop:
            description = "The client is registered to use DPoP: send a DPoP proof."
            raise self._refused(request, description, client_id=client.get_client_id())
        named = getattr(request.authorization_code, "dpop_jkt", None)
        if named is not None and jkt != named:
            description = "The DPoP proof is not signed with the key the authorization request named."
            raise self._refused(request, description, client_id=client.get_client_id())
        row = getattr(request.refresh_token, "row", None)
        bound = getattr(row, "dpop_jkt", None)
        if bound is not None and jkt != bound:
            description = (
                "The refresh token is bound to a DPoP key: send a proof by it."
                if jkt is None
                else "The DPoP proof is signed with another key than the refresh token is bound to."
            )
            user_id = getattr(row, "user_id", None)
            raise self._refused(request, description, client_id=client.get_client_id(), user_id=user_id)

    def _refused(
        self, request: Any, description: str, *, client_id: object, user_id: str | None = None
    ) -> InvalidDpopProofError:
        named = client_id[:64] if isinstance(client_id, str) and client_id else None
        detail = {
            "endpoint": "token",
            "grant_type": str(request.payload.grant_type)[:64],
            "reason": description,
        }
        self._audit("dpop_proof", "failure", user_id=user_id, client_id=named, detail=detail)
        return InvalidDpopProofError(description)


def proven_key(request: Any) -> str | None:
    """The thumbprint of the token request's verified proof: the key its tokens are bound to."""
    proof: Proof | None = getattr(request, PROOF_ATTRIBUTE, None)
    return None if proof is None else proof.jkt


def refresh_token_key(request: Any) -> str | None:
    """The key a refresh token is bound to: a public client's proof key; a confidential client's
    refresh tokens are bound to its authentication instead (RFC 9449 5)."""
    client: RegisteredClient = request.client
    return proven_key(request) if client.is_public else None


def _header_values(headers: Any) -> list[str]:
    """Every DPoP header of the request (werkzeug's headers have all of them; a mapping, one)."""
    if hasattr(headers, "getlist"):
        return list(headers.getlist(HEADER))
    value = headers.get(HEADER)
    return [] if value is None else [value]


# -- protected resources (RFC 9449 7) ---------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A protected resource's 401 (RFC 9449 7.1): the DPoP challenge, and a nonce when one is needed."""

    error: str
    description: str
    nonce: str | None = None

    @property
    def www_authenticate(self) -> str:
        algs = " ".join(ALGORITHMS)
        return f'DPoP error="{self.error}", error_description="{self.description}", algs="{algs}"'


def presented_with_dpop(authorization: str) -> str | None:
    """The access token of an `Authorization: DPoP <token>` header (RFC 9449 7.1); None otherwise."""
    scheme, _, credentials = authorization.partition(" ")
    return credentials.strip() or None if scheme.lower() == "dpop" else None


def bound_key(claims: dict[str, Any]) -> str | None:
    """The `cnf.jkt` of a token's claims (RFC 9449 6.1)."""
    confirmation = claims.get("cnf")
    jkt = confirmation.get("jkt") if isinstance(confirmation, dict) else None
    return jkt if isinstance(jkt, str) else None


def is_confirmation(value: object) -> bool:
    """A `cnf` as the provider writes it: exactly a SHA-256 thumbprint, {"jkt": 43 base64url characters}."""
    if not isinstance(value, dict) or value.keys() != {"jkt"} or not isinstance(value["jkt"], str):
        return False
    return (
        len(value["jkt"]) == THUMBPRINT_LENGTH
        and len(_unpadded(value["jkt"])) == hashlib.sha256().digest_size
    )


def check_presentation(
    *,
    sent_with_dpop: bool,
    bound_jkt: str | None,
    proof: Callable[[], Proof | None],
    fresh_nonce: Callable[[], str] | None = None,
) -> Refusal | None:
    """A valid token as it was presented: a bound one with the DPoP scheme and a proof by its key
    (`proof` verifies the request's proof with `ath`), an unbound one as a bearer token. None: accepted."""
    try:
        if bound_jkt is None and sent_with_dpop:
            raise TokenMisused("The access token is not DPoP-bound: send it as a Bearer token.")
        if bound_jkt is None:
            return None
        if not sent_with_dpop:
            raise TokenMisused("The access token is DPoP-bound: send it with the DPoP scheme and a proof.")
        verified = proof()
        if verified is None:
            raise ProofRefused("A DPoP-bound access token needs a DPoP proof.")
        if verified.jkt != bound_jkt:
            raise ProofRefused("The DPoP proof is signed with another key than the access token is bound to.")
    except TokenMisused as misused:
        return Refusal("invalid_token", str(misused))
    except NonceRequired as refused:
        return Refusal("use_dpop_nonce", str(refused), nonce=fresh_nonce() if fresh_nonce else None)
    except ProofRefused as refused:
        return Refusal("invalid_dpop_proof", str(refused))
    return None
