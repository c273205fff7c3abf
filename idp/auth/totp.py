"""TOTP (RFC 6238: SHA-1, 6 digits, 30 s): verification with single use per step, and enrolment."""

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

    def verify(self, *, factor_id: str, secret: str, code: str, now: float) -> bool:
        """True once per factor and step: a code accepted anywhere is refused everywhere after."""
        step = self.matching_step(secret=secret, code=code, now=now)
        if step is None:
            return False
        window = (2 * self._drift_steps + 2) * STEP_SECONDS
        return self._ephemeral.incr(f"totp-used:{factor_id}:{step}", ttl=window) == 1
