"""New passwords, per NIST SP 800-63B 5.1.1.2: a minimum length and a blocklist, no composition rules."""

from __future__ import annotations

from functools import cache
from itertools import pairwise
from pathlib import Path

from idp.words import _

MAX_LENGTH = 256
BLOCKLIST = Path(__file__).resolve().parent.parent / "data" / "common_passwords.txt"


class PasswordRejected(Exception):
    """Why a new password is refused, said so that the user can choose a better one."""


def check_new_password(password: str, *, min_length: int, username: str) -> None:
    if len(password) < min_length:
        raise PasswordRejected(
            _("Use at least %(count)s characters; a short sentence works well.", count=min_length)
        )
    if len(password) > MAX_LENGTH:
        raise PasswordRejected(_("Use at most %(count)s characters.", count=MAX_LENGTH))
    folded = password.casefold()
    if folded in _blocklist() or folded.strip("0123456789!.") in _blocklist():
        raise PasswordRejected(_("This password is among the most common ones; choose another."))
    if username and username.casefold() in folded:
        raise PasswordRejected(_("The password must not contain your username."))
    if len(set(folded)) <= 2 or _is_sequence(folded):
        raise PasswordRejected(_("Repeated or sequential characters are easy to guess; choose another."))


def _is_sequence(text: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in pairwise(text)}
    return len(steps) == 1 and steps.pop() in (-1, 1)


@cache
def _blocklist() -> frozenset[str]:
    lines = BLOCKLIST.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().casefold() for line in lines if line.strip() and not line.startswith("#"))
