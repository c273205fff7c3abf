"""Token material: JWT access tokens (RFC 9068), opaque refresh tokens, and their revocation.

Every access token issued is also recorded in the ephemeral store, under the hash of its value, until
it expires: its claims (the JWT's payload, byte for byte). An introspection can then answer from the
record (`record_query`, `recorded_claims`) with no signature to verify and no database to read; a
token without a record (issued before records were kept, or the store flushed) is verified as before.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc.jws import JWSRegistry

from idp.oidc.authorization_details import Approval
from idp.oidc.keys import MAX_JWT_LENGTH, KeyRing, SigningKey
from idp.store.ephemeral import Entry, EphemeralStore
from idp.store.tables import User

ACCESS_TOKEN_TYPE = "at+jwt"
# Access tokens whose signature, type and issuer were checked, kept per process (see verify_access_token).
MAX_VERIFIED_TOKENS = 10_000
# The claims of an access token, serialized once for its payload and its record.
_COMPACT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_URL_SAFE = bytes.maketrans(b"+/", b"-_")  # base64 to base64url (RFC 4648 5)


@dataclass(frozen=True)
class Authentication:
    """What the user proved for a grant: carried by codes, refresh tokens and every token issued."""

    acr: str
    amr: tuple[str, ...]
    auth_time: int
    sid: str

    def to_json(self) -> dict[str, Any]:
        return {field.name: getattr(self, field.name) for field in fields(self)}  # asdict: 6x the CPU

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Authentication:
        return cls(acr=data["acr"], amr=tuple(data["amr"]), auth_time=data["auth_time"], sid=data["sid"])


@dataclass(frozen=True)
class GrantSubject:
    """The `user` authlib hands to token generation: the account, how it authenticated, the grant."""

    user: User
    authentication: Authentication
    grant_id: str
    approval: Approval | None = None  # the authorization details (RFC 9396) the user approved

    @property
    def holder(self) -> Holder:
        return Holder(self.user.id, self.authentication, self.grant_id, self.approval)


@dataclass(frozen=True)
class Holder:
    """Whose access token: what the token says of the account, how it authenticated and the grant."""

    subject: str  # the account's id
    authentication: Authentication
    grant_id: str
    approval: Approval | None = None


def new_grant_id() -> str:
    return str(uuid.uuid4())


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def record_key(token: str) -> str:
    """Where an access token's record is kept: under the hash of its value, never the value."""
    return f"access-token:{digest(token)}"


def account_changed_key(user_id: str) -> str:
    return f"account-changed:{user_id}"


def note_account_change(ephemeral: EphemeralStore, user_id: str, *, access_token_lifetime: int) -> None:
    """An account disabled, enabled or deleted: until every access token issued before the change has
    expired, its tokens' records answer nothing and the database decides (`Users.may_hold_tokens`).
    Written before the change commits: should the commit fail, the database still decides."""
    ephemeral.put(account_changed_key(user_id), b"1", ttl=access_token_lifetime)


class Undecided(enum.Enum):
    """A record cannot answer for the token (none is kept, or its account changed state since)."""

    UNDECIDED = "undecided"


UNDECIDED = Undecided.UNDECIDED


@dataclass(frozen=True)
class RecordQuery:
    """What answers for one access token from its record, in one read (`keys`): the record, the markers
    that make the token inactive (it, or its grant, revoked) and, for a user's token, the one that
    leaves the answer to the database (its account changed state). The keys are named by the token's
    payload, read unverified: it counts only when the record, kept under the hash of the whole token,
    holds exactly that payload."""

    record: str
    revocations: tuple[str, ...]
    account: str | None
    payload: bytes
    claims: dict[str, Any]

    @property
    def keys(self) -> list[str]:
        return [self.record, *self.revocations, *([self.account] if self.account else [])]


@dataclass(frozen=True)
class Issued:
    """A token response, and the record of its access token yet to be stored (`TokenService.record`;
    none for a token issued already expired, which nothing answers for)."""

    response: dict[str, Any]
    record: Entry | None


class CompactSigner:
    """JWS Compact Serialization (RFC 7515 7.1) of access tokens with one key: the header segment is
    made once, and the signature by the key's `cryptography` object, which joserfc checked fits the
    algorithm once (joserfc's `sign` finds and checks the object again for every token: a quarter of
    the signature's CPU)."""

    def __init__(self, key: SigningKey, algorithm: str) -> None:
        JWSRegistry.algorithms[algorithm].check_key(key)
        self._signature = _signature(key, algorithm)
        header = {"typ": ACCESS_TOKEN_TYPE, "alg": algorithm, "kid": key.kid}
        self.header_segment = _base64url(json.dumps(header, separators=(",", ":")).encode())

    def sign(self, payload: bytes) -> str:
        signing_input = self.header_segment + b"." + _base64url(payload)
        return (signing_input + b"." + _base64url(self._signature(signing_input))).decode()


def _signature(key: SigningKey, algorithm: str) -> Callable[[bytes], bytes]:
    """The JWS signature of RS256 or ES256 (RFC 7518 3.3, 3.4) with `key`."""
    private = key.get_op_key("sign")
    if algorithm == "RS256" and isinstance(private, RSAPrivateKey):
        padding, sha256 = PKCS1v15(), SHA256()
        return lambda signing_input: private.sign(signing_input, padding, sha256)
    if algorithm == "ES256" and isinstance(private, EllipticCurvePrivateKey):
        ecdsa = ECDSA(SHA256())

        def es256(signing_input: bytes) -> bytes:
            r, s = decode_dss_signature(private.sign(signing_input, ecdsa))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")  # R and S, 32 octets each

        return es256
    raise ValueError(f"{algorithm} cannot be signed with a {type(private).__name__}")


def _base64url(data: bytes) -> bytes:
    """base64url without padding (RFC 7515 2)."""
    return binascii.b2a_base64(data, newline=False).translate(_URL_SAFE).rstrip(b"=")


class TokenService:
    def __init__(
        self,
        *,
        issuer: str,
        keyring: KeyRing,
        algorithm: str,
        ephemeral: EphemeralStore,
        access_token_lifetime: int,
    ) -> None:
        self._issuer = issuer
        self._keyring = keyring
        self._algorithm = algorithm
        self._ephemeral = ephemeral
        self.access_token_lifetime = access_token_lifetime
        self._verified: dict[str, dict[str, Any]] = {}
        self._signer: CompactSigner | None = None  # made at the first token: the key ring is fixed

    def generate(
        self,
        *,
        grant_type: str,
        client: Any,
        user: GrantSubject | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
        confirmation: str | None = None,
    ) -> dict[str, Any]:
        """authlib's token generator hook: `issue`, then `record`."""
        issued = self.issue(
            client=client,
            holder=None if user is None else user.holder,
            scope=scope,
            expires_in=expires_in,
            refresh_token=new_refresh_token() if include_refresh_token else None,
            confirmation=confirmation,
        )
        self.record(issued)
        return issued.response

    def issue(
        self,
        *,
        client: Any,
        holder: Holder | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        refresh_token: str | None = None,
        confirmation: str | None = None,
    ) -> Issued:
        """One JWT access token, with `refresh_token` for an account's grant; bound to the DPoP key
        whose thumbprint is `confirmation` (RFC 9449 6.1) when there is one. Nothing is stored yet."""
        now = int(time.time())
        lifetime = expires_in or self.access_token_lifetime
        client_id = client.get_client_id()
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": holder.subject if holder else client_id,
            "aud": client_id,
            "client_id": client_id,
            "iat": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(16),
            "scope": scope or "",
        }
        if holder is not None:
            authentication = holder.authentication
            claims |= {
                "auth_time": authentication.auth_time,
                "acr": authentication.acr,
                "amr": list(authentication.amr),
                "sid": authentication.sid,
                "grant_id": holder.grant_id,
            }
            if holder.approval is not None:
                claims |= holder.approval.claims()
        if confirmation is not None:
            claims["cnf"] = {"jkt": confirmation}
        payload = _COMPACT_JSON.encode(claims).encode()
        access_token = self._signing().sign(payload)
        token: dict[str, Any] = {
            "token_type": "Bearer" if confirmation is None else "DPoP",
            "access_token": access_token,
            "expires_in": lifetime,
            "scope": scope or "",
        }
        if holder is not None and holder.approval is not None:
            # RFC 9396 7; an approved transaction is not renewed: no refresh token carries it on.
            token["authorization_details"] = list(holder.approval.details)
        elif holder is not None and refresh_token is not None:
            token["refresh_token"] = refresh_token
        record = Entry(record_key(access_token), payload, ttl=lifetime) if lifetime > 0 else None
        return Issued(token, record)

    def record(self, issued: Issued, *, unless_any: Sequence[str] = ()) -> bool:
        """Store the access token's record until the token expires, unless one of the keys
        `unless_any` is present (in one step): whether the token may be handed out."""
        if issued.record is None:
            return not any(value is not None for value in self._ephemeral.get_many(list(unless_any)))
        return self._ephemeral.put_unless_any(issued.record, keys=unless_any)

    def record_query(self, token: str) -> RecordQuery | None:
        """What to read to answer for `token` from its record; None for a value that is no access token
        this provider signs now (then its signature decides)."""
        parts = token.split(".")
        if (
            len(parts) != 3
            or len(token) > MAX_JWT_LENGTH
            or parts[0].encode() != self._signing().header_segment
        ):
            return None
        try:
            payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
            claims = json.loads(payload)
        except (binascii.Error, ValueError):  # undecodable base64, UTF-8 or JSON
            return None
        if (
            not isinstance(claims, dict)
            or claims.get("iss") != self._issuer
            or not isinstance(claims.get("sub"), str)
        ):
            return None
        return RecordQuery(
            record=record_key(token),
            revocations=tuple(_revocation_markers(claims)),
            account=account_changed_key(claims["sub"]) if "acr" in claims else None,
            payload=payload,
            claims=claims,
        )

    def recorded_claims(
        self, query: RecordQuery, values: Sequence[bytes | None]
    ) -> dict[str, Any] | Undecided | None:
        """From the values read for `query` (in its order): the claims of an active token, None for an
        expired or revoked one (as `verify_access_token`), or UNDECIDED when no record answers for it."""
        record, revoked = values[0], values[1 : 1 + len(query.revocations)]
        account_changed = query.account is not None and values[-1] is not None
        if record is None or record != query.payload or account_changed:
            return UNDECIDED
        if query.claims["exp"] <= time.time() or any(marker is not None for marker in revoked):
            return None
        return dict(query.claims)

    def verify_access_token(self, token: str) -> dict[str, Any] | None:
        """Claims of a valid, unexpired, unrevoked access token issued here; None otherwise."""
        claims = self._signed_here(token)
        if claims is None or claims["exp"] <= time.time():
            return None
        if any(marker is not None for marker in self._ephemeral.get_many(_revocation_markers(claims))):
            return None
        return claims

    def _signed_here(self, token: str) -> dict[str, Any] | None:
        """The claims of a token signed with our keys, typed as an access token, from this issuer.

        The answer cannot change while the process lives (its key ring is fixed at start), so a token
        already checked is looked up by its value instead of having its signature verified again;
        expiry and revocation are checked by the caller every time."""
        known = self._verified.get(token)
        if known is not None:
            return dict(known)
        decoded = self._keyring.decode(token)
        if decoded is None or decoded.header.get("typ") != ACCESS_TOKEN_TYPE:
            return None
        claims = dict(decoded.claims)
        if claims.get("iss") != self._issuer or not isinstance(claims.get("exp"), int):
            return None
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[token] = dict(claims)
        return claims

    def _signing(self) -> CompactSigner:
        if self._signer is None:
            self._signer = CompactSigner(self._keyring.signing_key(self._algorithm), self._algorithm)
        return self._signer

    def revoke_access_token(self, claims: dict[str, Any]) -> None:
        ttl = max(1, int(claims["exp"] - time.time()))
        self._ephemeral.put(f"revoked-jti:{claims['jti']}", b"1", ttl=ttl)

    def revoke_grant_access_tokens(self, grant_id: str) -> None:
        """Make every access token of a grant inactive (refresh reuse, code replay, revocation)."""
        self._ephemeral.put(f"revoked-grant:{grant_id}", b"1", ttl=self.access_token_lifetime)


def _revocation_markers(claims: dict[str, Any]) -> list[str]:
    """The keys whose presence makes an access token inactive: its own, its grant's."""
    markers = [f"revoked-jti:{claims.get('jti')}"]
    if claims.get("grant_id"):
        markers.append(f"revoked-grant:{claims['grant_id']}")
    return markers
