"""What the pages say instead of protocol values: sign-in methods, devices and activity in plain words.

No page shows an acr, an amr value or a factor id: they come through here. Each phrase is whole
(never a sentence assembled from fragments), so that it translates as one; all are in the reader's
language (idp.words).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache

from babel.lists import format_list
from flask import request
from flask_babel import format_datetime, get_locale
from ua_parser import parse

from idp.auth.policy import FACTOR_METHOD, Amr, Method
from idp.languages import DEFAULT, N_
from idp.store.tables import AuditEvent, FactorKind
from idp.views.account_changes import ACCOUNT_CHANGED, in_reader_language
from idp.words import _

METHOD_WORDS: dict[str, str] = {
    Method.PASSWORD: N_("password"),
    Method.WEBAUTHN: N_("passkey or security key"),
    Method.TOTP: N_("authenticator app"),
    Method.EMAIL_CODE: N_("email code"),
    Method.RECOVERY_CODE: N_("recovery code"),
    Method.RESET_LINK: N_("password reset link"),
}
# For sign-ins recorded before their methods were: what each amr value says of the method.
AMR_WORDS: dict[str, str] = {
    Amr.PWD: N_("password"),
    Amr.OTP: N_("one-time code"),
    Amr.EMAIL: N_("email code"),
    Amr.HWK: N_("security key"),
    Amr.SWK: N_("passkey"),
}
UNKNOWN_DEVICE = N_("Unknown browser")


def listed(items: Sequence[str]) -> str:
    """ "a", "a and b", "a, b, and c": as the reader's language lists things (Unicode CLDR)."""
    return format_list(list(items), locale=get_locale() or DEFAULT.catalogue) if items else ""


def methods_used(detail: Mapping[str, object]) -> str:
    """How a sign-in was made, from its audit detail: "password and authenticator app"."""
    methods = detail.get("methods")
    if isinstance(methods, list) and methods:
        return listed([_(METHOD_WORDS.get(str(method), str(method))) for method in methods])
    amr = detail.get("amr")
    words = [_(AMR_WORDS[value]) for value in AMR_WORDS if isinstance(amr, list) and value in amr]
    return listed(words)


def device(user_agent: str | None) -> str:
    """ "Firefox on Ubuntu", from a User-Agent header (ua-parser); "Unknown browser" when it says nothing."""
    browser, system = _browser_and_system(user_agent or "")
    if browser and system:
        return _("%(browser)s on %(system)s", browser=browser, system=system)
    return browser or _(UNKNOWN_DEVICE)


@lru_cache(maxsize=1024)
def _browser_and_system(user_agent: str) -> tuple[str | None, str | None]:
    """The browser's and the operating system's names, where the User-Agent tells them."""
    if not user_agent:
        return None, None
    parsed = parse(user_agent)
    browser = parsed.user_agent.family if parsed.user_agent else None
    system = parsed.os.family if parsed.os else None
    known = browser if browser and browser != "Other" else None
    return known, system if known and system and system != "Other" else None


def moment(timestamp: float) -> str:
    """A moment as a page or a mail writes it for readers without script: in UTC, in their language."""
    # Translators: how a date and time is written, a Unicode CLDR pattern (yyyy year, MM or M month,
    # dd or d day, HH:mm hour and minute); the text between quotes is shown as it is.
    pattern = _("yyyy-MM-dd HH:mm 'UTC'")
    return str(format_datetime(datetime.fromtimestamp(timestamp, UTC), pattern))


def occasion() -> dict[str, str]:
    """When and from where this request came, for a message telling the user about it."""
    return {
        "when": moment(time.time()),
        "ip": request.remote_addr or _("an unknown address"),
        "device": device(request.user_agent.string),
    }


def activity(event: AuditEvent, app_names: Mapping[str, str]) -> str:
    """One history row's "what", as a sentence."""
    app = app_names.get(event.client_id or "", "") or _("your account")
    detail = event.detail or {}
    succeeded = event.outcome == "success"
    match event.event:
        case "sign_in" if succeeded:
            how = methods_used(detail)
            if how:
                return _("Signed in to %(app)s with %(how)s", app=app, how=how)
            return _("Signed in to %(app)s", app=app)
        case "sign_in" if event.outcome == "throttled":
            return _("Sign-in to %(app)s held back after too many tries", app=app)
        case "sign_in":
            step = METHOD_WORDS.get(str(detail.get("step", "")))
            if step:
                return _("Sign-in to %(app)s failed: wrong %(method)s", app=app, method=_(step))
            return _("Sign-in to %(app)s did not finish", app=app)
        case "factor_enrolment" if succeeded:
            kind = str(detail.get("kind", ""))
            method = FACTOR_METHOD.get(FactorKind(kind)) if kind in set(FactorKind) else None
            if method:
                return _("Set up %(method)s", method=_(METHOD_WORDS[method]))
            return _("Set up a sign-in method")
        case "factor_enrolment":
            return _("Setting up a sign-in method failed")
        case "consent" if succeeded:
            return _("Allowed %(app)s to use your account", app=app)
        case "consent":
            return _("Did not allow %(app)s", app=app)
        case "account_change":
            change = in_reader_language(str(detail.get("change", ACCOUNT_CHANGED)))
            return change[:1].upper() + change[1:] if succeeded else _("Refused: %(change)s", change=change)
        case "sign_out":
            return _("Signed out")
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
