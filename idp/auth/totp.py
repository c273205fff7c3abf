"""TOTP (RFC 6238: SHA-1, 6 digits, 30 s): the step a code belongs to, and enrolment."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import pyotp
import segno

from idp.store.ephemeral import EphemeralStore

STEP_SECONDS = 30


@dataclass(frozen=True)
class Enrolment:
    secret: str
    uri: str

    def qr_svg(self) -> str:
        """The otpauth URI as an inline SVG QR code."""
        return str(segno.make(self.uri, error="m").svg_inline(scale=5, dark="#111", light="#fff"))


class Totp:
    def __init__(self, *, ephemeral: EphemeralStore, issuer_name: str, drift_steps: int) -> None:
        self._ephemeral = ephemeral
        self._issuer_name = issuer_name
        self._drift_steps = drift_steps

    def new_enrolment(self, account_name: str) -> Enrolment:
        secret = pyotp.random_base32()
        return self.enrolment_for(secret, account_name)

    def enrolment_for(self, secret: str, account_name: str) -> Enrolment:
        uri = pyotp.TOTP(secret).provisioning_uri(name=account_name, issuer_name=self._issuer_name)
        return Enrolment(secret=secret, uri=uri)

    def matching_step(self, *, secret: str, code: str, now: float) -> int | None:
        """The time step whose code equals `code`, within the allowed drift, or None."""
        if len(code) != 6 or not code.isdigit():
            return None
        totp = pyotp.TOTP(secret)
        current = int(now) // STEP_SECONDS
        for step in range(current - self._drift_steps, current + self._drift_steps + 1):
            if hmac.compare_digest(totp.generate_otp(step), code):
                return step
        return None

    def verify_draft(self, *, draft_id: str, secret: str, code: str, now: float) -> int | None:
        """The step of a code from an app being set up, once per draft and step, else None. A stored
        factor's steps are spent in the database instead (Factors.claim_step)."""
        step = self.matching_step(secret=secret, code=code, now=now)
        if step is None:
            return None
        window = (2 * self._drift_steps + 2) * STEP_SECONDS
        return step if self._ephemeral.incr(f"totp-draft:{draft_id}:{step}", ttl=window) == 1 else None
