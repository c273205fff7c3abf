"""Token material: JWT access tokens (RFC 9068), opaque refresh tokens, and their revocation."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from joserfc import jwt

from idp.oidc.authorization_details import Approval
from idp.oidc.keys import KeyRing
from idp.store.ephemeral import EphemeralStore
from idp.store.tables import User

ACCESS_TOKEN_TYPE = "at+jwt"


@dataclass(frozen=True)
class Authentication:
    """What the user proved for a grant: carried by codes, refresh tokens and every token issued."""

    acr: str
    amr: tuple[str, ...]
    auth_time: int
    sid: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

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


def new_grant_id() -> str:
    return str(uuid.uuid4())


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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

    def generate(
        self,
        *,
        grant_type: str,
        client: Any,
        user: GrantSubject | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        """authlib's token generator hook: one JWT access token, and a refresh token for users."""
        now = int(time.time())
        lifetime = expires_in or self.access_token_lifetime
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": user.user.id if user else client.get_client_id(),
            "aud": client.get_client_id(),
            "client_id": client.get_client_id(),
            "iat": now,
            "exp": now + lifetime,
            "jti": secrets.token_urlsafe(16),
            "scope": scope or "",
        }
        if user is not None:
            authentication = user.authentication
            claims |= {
                "auth_time": authentication.auth_time,
                "acr": authentication.acr,
                "amr": list(authentication.amr),
                "sid": authentication.sid,
                "grant_id": user.grant_id,
            }
            if user.approval is not None:
                claims |= user.approval.claims()
        key = self._keyring.signing_key(self._algorithm)
        header = {"typ": ACCESS_TOKEN_TYPE, "alg": self._algorithm, "kid": key.kid}
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": jwt.encode(header, claims, key, algorithms=[self._algorithm]),
            "expires_in": lifetime,
            "scope": scope or "",
        }
        if user is not None and user.approval is not None:
            # RFC 9396 7; an approved transaction is not renewed: no refresh token carries it on.
            token["authorization_details"] = list(user.approval.details)
        elif user is not None and include_refresh_token:
            token["refresh_token"] = secrets.token_urlsafe(32)
        return token

    def verify_access_token(self, token: str) -> dict[str, Any] | None:
        """Claims of a valid, unexpired, unrevoked access token issued here; None otherwise."""
        decoded = self._keyring.decode(token)
        if decoded is None or decoded.header.get("typ") != ACCESS_TOKEN_TYPE:
            return None
        claims = dict(decoded.claims)
        if claims.get("iss") != self._issuer or not isinstance(claims.get("exp"), int):
            return None
        if claims["exp"] <= time.time():
            return None
        markers = [f"revoked-jti:{claims.get('jti')}"]
        if claims.get("grant_id"):
            markers.append(f"revoked-grant:{claims['grant_id']}")
        if any(marker is not None for marker in self._ephemeral.get_many(markers)):
            return None
        return claims

    def revoke_access_token(self, claims: dict[str, Any]) -> None:
        ttl = max(1, int(claims["exp"] - time.time()))
        self._ephemeral.put(f"revoked-jti:{claims['jti']}", b"1", ttl=ttl)

    def revoke_grant_access_tokens(self, grant_id: str) -> None:
        """Make every access token of a grant inactive (refresh reuse, code replay, revocation)."""
        self._ephemeral.put(f"revoked-grant:{grant_id}", b"1", ttl=self.access_token_lifetime)
