"""How much one client address may make the provider keep: uses counted per address over a window in
the ephemeral store, so that a flood from one address stops adding sign-ins and audit rows."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from idp.auth.throttle import address_subject
from idp.config import AddressLimitSettings
from idp.store.ephemeral import EphemeralStore

AUDIT_WINDOW = 3600


class Usage(Enum):
    """Where one more use leaves an address: within its quota, just past it (once a window), or past it."""

    WITHIN = "within"
    FIRST_OVER = "first over"
    OVER = "over"


@dataclass(frozen=True)
class AddressQuota:
    """At most `limit` uses per address within `window` seconds (from the first use)."""

    name: str
    limit: int
    window: int


class Quotas:
    def __init__(
        self, *, ephemeral: EphemeralStore, settings: AddressLimitSettings, sign_in_lifetime: int
    ) -> None:
        self._ephemeral = ephemeral
        self.sign_ins = AddressQuota("sign-ins", settings.sign_ins, sign_in_lifetime)
        self.audited_failures = AddressQuota("audited-failures", settings.audited_failures, AUDIT_WINDOW)
        self.password_resets = AddressQuota("password-resets", settings.password_resets, AUDIT_WINDOW)

    def use(self, quota: AddressQuota, *, address: str | None) -> Usage:
        """Count one use by `address` (IPv4 host, IPv6 /64) in one atomic step."""
        count = self._ephemeral.incr(f"quota:{quota.name}:{address_subject(address)}", ttl=quota.window)
        if count <= quota.limit:
            return Usage.WITHIN
        return Usage.FIRST_OVER if count == quota.limit + 1 else Usage.OVER
