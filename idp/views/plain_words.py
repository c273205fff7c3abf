"""What the pages say instead of protocol values: sign-in methods, devices and activity in plain words.

No page shows an acr, an amr value or a factor id: they come through here. Each phrase is whole
(never a sentence assembled from fragments), so that it translates as one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from flask import request
from ua_parser import parse

from idp.auth.policy import FACTOR_METHOD, Amr, Method
from idp.store.tables import AuditEvent, FactorKind

METHOD_WORDS: dict[str, str] = {
    Method.PASSWORD: "password",
    Method.WEBAUTHN: "passkey or security key",
    Method.TOTP: "authenticator app",
    Method.EMAIL_CODE: "email code",
    Method.RECOVERY_CODE: "recovery code",
    Method.RESET_LINK: "password reset link",
}
# For sign-ins recorded before their methods were: what each amr value says of the method.
AMR_WORDS: dict[str, str] = {
    Amr.PWD: "password",
    Amr.OTP: "one-time code",
    Amr.EMAIL: "email code",
    Amr.HWK: "security key",
    Amr.SWK: "passkey",
}
UNKNOWN_DEVICE = "Unknown browser"


def listed(items: Sequence[str]) -> str:
    """ "a", "a and b", "a, b and c"."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def methods_used(detail: Mapping[str, object]) -> str:
    """How a sign-in was made, from its audit detail: "password and authenticator app"."""
    methods = detail.get("methods")
    if isinstance(methods, list) and methods:
        return listed([METHOD_WORDS.get(str(method), str(method)) for method in methods])
    amr = detail.get("amr")
    words = [AMR_WORDS[value] for value in AMR_WORDS if isinstance(amr, list) and value in amr]
    return listed(words)


@lru_cache(maxsize=1024)
def device(user_agent: str | None) -> str:
    """ "Firefox on Ubuntu", from a User-Agent header (ua-parser); "Unknown browser" when it says nothing."""
    if not user_agent:
        return UNKNOWN_DEVICE
    parsed = parse(user_agent)
    browser = parsed.user_agent.family if parsed.user_agent else None
    system = parsed.os.family if parsed.os else None
    if browser and browser != "Other" and system and system != "Other":
        return f"{browser} on {system}"
    if browser and browser != "Other":
        return browser
    return UNKNOWN_DEVICE


def occasion() -> dict[str, str]:
    """When and from where this request came, for a message telling the user about it."""
    return {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "ip": request.remote_addr or "an unknown address",
        "device": device(request.user_agent.string),
    }


def activity(event: AuditEvent, app_names: Mapping[str, str]) -> str:
    """One history row's "what", as a sentence."""
    app = app_names.get(event.client_id or "", "") or "your account"
    detail = event.detail or {}
    succeeded = event.outcome == "success"
    match event.event:
        case "sign_in" if succeeded:
            how = methods_used(detail)
            return f"Signed in to {app} with {how}" if how else f"Signed in to {app}"
        case "sign_in" if event.outcome == "throttled":
            return f"Sign-in to {app} held back after too many tries"
        case "sign_in":
            step = METHOD_WORDS.get(str(detail.get("step", "")))
            return f"Sign-in to {app} failed: wrong {step}" if step else f"Sign-in to {app} did not finish"
        case "factor_enrolment" if succeeded:
            kind = str(detail.get("kind", ""))
            method = FACTOR_METHOD.get(FactorKind(kind)) if kind in set(FactorKind) else None
            return f"Set up {METHOD_WORDS[method]}" if method else "Set up a sign-in method"
        case "factor_enrolment":
            return "Setting up a sign-in method failed"
        case "consent" if succeeded:
            return f"Allowed {app} to use your account"
        case "consent":
            return f"Did not allow {app}"
        case "account_change":
            change = str(detail.get("change", "account changed"))
            return change[:1].upper() + change[1:] if succeeded else f"Refused: {change}"
        case "sign_out":
            return "Signed out"
    return event.event.replace("_", " ").capitalize()


def one_row_per_action(events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """Newest first; a method set up on the account pages is told once (as the account change that
    follows its enrolment event), not twice."""
    ordered = list(events)
    return [
        event
        for index, event in enumerate(ordered)
        if not (
            event.event == "factor_enrolment"
            and event.outcome == "success"
            and index > 0
            and ordered[index - 1].event == "account_change"
            and ordered[index - 1].at - event.at <= 2
        )
    ]
