"""Password reset links: single use, short-lived, stored only as digests in the ephemeral store."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass

from idp.store.ephemeral import EphemeralStore

MAX_TOKEN_LENGTH = 64
LINKS_PER_ACCOUNT_PER_HOUR = 3
HOUR = 3600


@dataclass(frozen=True)
class ResetLink:
    """What an opened link grants: a reset of `user_id`'s password; `sign_in_id` is the sign-in the
    user asked from (continued after the reset when it is in the same browser)."""

    user_id: str
    sign_in_id: str | None


@dataclass(frozen=True)
class ResetLinks:
    ephemeral: EphemeralStore
    lifetime: int

    def may_send(self, *, user_id: str) -> bool:
        """At most three links an hour per account: asking for more sends nothing (and says nothing)."""
        return self.ephemeral.incr(f"reset-link:sent:{user_id}", ttl=HOUR) <= LINKS_PER_ACCOUNT_PER_HOUR

    def issue(self, *, user_id: str, sign_in_id: str | None = None) -> str:
        """A new link token (256 random bits); only its digest is kept, for `lifetime` seconds."""
        token = secrets.token_urlsafe(32)
        record = {"user_id": user_id, "sign_in_id": sign_in_id}
        self.ephemeral.put(_key(token), json.dumps(record).encode(), ttl=self.lifetime)
        return token

    def redeem(self, token: str) -> ResetLink | None:
        """The link's grant, spent atomically: of two concurrent uses, one gets it; None when unknown,
        expired or used."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        raw = self.ephemeral.take(_key(token))
        if raw is None:
            return None
        record = json.loads(raw)
        return ResetLink(user_id=str(record["user_id"]), sign_in_id=record["sign_in_id"])

    def is_live(self, token: str) -> bool:
        """Whether the link would still work (the confirmation page shows before it is spent)."""
        return 0 < len(token) <= MAX_TOKEN_LENGTH and self.ephemeral.get(_key(token)) is not None


def _key(token: str) -> str:
    return "reset-link:" + hashlib.sha256(token.encode()).hexdigest()
