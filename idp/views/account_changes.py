"""The changes to an account that its owner is told of, in the history and by mail: each a whole phrase
with named values. The audit log keeps them as English text, which administrators and logs read; the
owner's language is found again from that text, so that events recorded earlier read the same.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

from idp.languages import N_
from idp.words import _

PASSWORD_CHANGED = N_("password changed")
PASSWORD_RESET = N_("password reset")
SIGNED_OUT_ELSEWHERE = N_("%(sessions)s other session(s) ended and %(grants)s app grant(s) revoked")
SESSIONS_ENDED = N_("%(count)s other session(s) ended")
APP_ADDED = N_("authenticator app '%(name)s' added")
PASSKEY_ADDED = N_("passkey added")
METHOD_REMOVED = N_("sign-in method '%(name)s' removed")
LAST_METHOD_KEPT = N_("remove last second factor")
EMAIL_ADDED = N_("email address %(address)s added")
NEW_RECOVERY_CODES = N_("new recovery codes generated (the earlier ones no longer work)")
ACCESS_REMOVED = N_("access of %(app)s removed")
OFFLINE_ACCESS_REVOKED = N_("offline access of %(app)s revoked")
ACCOUNT_CHANGED = N_("account changed")  # an event recorded without saying what changed
PHRASES = (
    PASSWORD_CHANGED,
    PASSWORD_RESET,
    SIGNED_OUT_ELSEWHERE,
    SESSIONS_ENDED,
    APP_ADDED,
    PASSKEY_ADDED,
    METHOD_REMOVED,
    LAST_METHOD_KEPT,
    EMAIL_ADDED,
    NEW_RECOVERY_CODES,
    ACCESS_REMOVED,
    OFFLINE_ACCESS_REVOKED,
    ACCOUNT_CHANGED,
)
RECORDED_SEPARATOR = "; "
PLACEHOLDER = re.compile(r"%\\\((\w+)\\\)s")


@dataclass(frozen=True)
class Change:
    """One thing that changed: one of the PHRASES, and its values."""

    phrase: str
    values: Mapping[str, object] = field(default_factory=dict)

    def in_english(self) -> str:
        return self.phrase % self.values if self.values else self.phrase


def recorded(changes: Sequence[Change]) -> str:
    """What the audit log keeps: "password changed; 2 other session(s) ended and 1 app grant(s) revoked"."""
    return RECORDED_SEPARATOR.join(change.in_english() for change in changes)


def in_reader_language(text: str) -> str:
    """A change as recorded, in the reader's language; a part that is none of the PHRASES stays as is."""
    # Translators: between two changes told in one sentence ("password changed; 2 sessions ended").
    return _("; ").join(_said(part) for part in text.split(RECORDED_SEPARATOR))


def _said(part: str) -> str:
    for phrase in PHRASES:
        found = _pattern(phrase).fullmatch(part)
        if found is not None:
            return _(phrase, **found.groupdict())
    return part


@cache
def _pattern(phrase: str) -> re.Pattern[str]:
    """The phrase with each %(name)s read back as a named group."""
    return re.compile(PLACEHOLDER.sub(r"(?P<\1>.+?)", re.escape(phrase)), re.DOTALL)
