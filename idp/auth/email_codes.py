"""One-time email codes: 6 digits from a CSPRNG, hashed in the ephemeral store, few tries, throttled sends."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from idp.languages import N_
from idp.store.ephemeral import EphemeralStore
from idp.words import _

MAX_WRONG_TRIES = 5
RESEND_INTERVAL = 60
SENDS_PER_HOUR = 10
EXPIRED = N_("This code has expired or was used. Ask for a new one.")
KILLED = N_("Too many wrong codes: this one no longer works. Ask for a new one.")


class CodeRefused(Exception):
    """A code that cannot be sent or accepted; the message is for the page, in the reader's language."""


@dataclass(frozen=True)
class EmailCodes:
    ephemeral: EphemeralStore
    lifetime: int

    def issue(self, *, purpose: str, user_id: str, address: str) -> str:
        """A new code for `purpose` (replacing any earlier one), unless sending is throttled.

        Throttles: one send per minute per purpose, ten per hour per user and per address.
        """
        address_key = hashlib.sha256(address.lower().encode()).hexdigest()
        if self.ephemeral.incr(f"email-send:recent:{purpose}", ttl=RESEND_INTERVAL) > 1:
            raise CodeRefused(
                _("A code was sent less than a minute ago. Check your inbox, or wait a moment.")
            )
        for scope in (f"user:{user_id}", f"address:{address_key}"):
            if self.ephemeral.incr(f"email-send:hourly:{scope}", ttl=3600) > SENDS_PER_HOUR:
                raise CodeRefused(_("Too many codes were sent in the last hour. Try again later."))
        code = f"{secrets.randbelow(1_000_000):06d}"
        salt = secrets.token_hex(8)
        record = {"salt": salt, "digest": _digest(salt, code), "address": address}
        self.ephemeral.put(f"email-code:{purpose}", json.dumps(record).encode(), ttl=self.lifetime)
        self.ephemeral.delete(f"email-code-tries:{purpose}")
        return code

    def withdraw(self, *, purpose: str) -> None:
        """Forget a code that could not be delivered (and let the user ask again at once)."""
        self.ephemeral.delete(f"email-code:{purpose}", f"email-send:recent:{purpose}")

    def pending_address(self, *, purpose: str) -> str | None:
        raw = self.ephemeral.get(f"email-code:{purpose}")
        return None if raw is None else str(json.loads(raw)["address"])

    def verify(self, *, purpose: str, code: str) -> str:
        """The address the code was sent to, consuming the code; five wrong tries kill it.

        Each try is counted as it arrives, before it is weighed: guesses sent in parallel get no
        more tries than guesses sent one after another.
        """
        tries = self.ephemeral.incr(f"email-code-tries:{purpose}", ttl=self.lifetime)
        raw = self.ephemeral.get(f"email-code:{purpose}")
        if raw is None:
            raise CodeRefused(_(EXPIRED))
        if tries > MAX_WRONG_TRIES:
            self.ephemeral.delete(f"email-code:{purpose}")
            raise CodeRefused(_(KILLED))
        record = json.loads(raw)
        candidate = code.strip().replace(" ", "")[:12]
        if hmac.compare_digest(record["digest"], _digest(record["salt"], candidate)):
            if self.ephemeral.take(f"email-code:{purpose}") is None:
                raise CodeRefused(_(EXPIRED))
            self.ephemeral.delete(f"email-send:recent:{purpose}")  # done: the next address may follow
            return str(record["address"])
        if tries == MAX_WRONG_TRIES:
            self.ephemeral.delete(f"email-code:{purpose}")
            raise CodeRefused(_(KILLED))
        raise CodeRefused(_("That code is not right."))


def _digest(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()
