"""A new set of recovery codes, shown once: on the account page, and right after the first second
factor is set up in a sign-in. Kept minutes outside the session (page_secrets) to be downloaded once."""

from __future__ import annotations

from flask import Response

from idp.auth.recovery import code_factors, new_codes
from idp.store.tables import FactorKind, User
from idp.views import page_secrets
from idp.web import durable_store
from idp.words import _

FRESH_CODES = "fresh_recovery_codes"
DOWNLOADABLE_FOR = 300


def issue(user: User) -> list[str]:
    """Replace the user's recovery codes with a new set, kept a few minutes for the page to show."""
    store = durable_store()
    store.factors.lock_of_user(user.id)  # a parallel regeneration waits, then replaces this set too
    store.factors.remove_all(user.id, FactorKind.RECOVERY_CODE)
    codes = new_codes()
    for factor in code_factors(user.id, codes):
        store.factors.add(factor)
    page_secrets.keep(FRESH_CODES, {"user_id": user.id, "codes": codes}, ttl=DOWNLOADABLE_FOR)
    return codes


def shown(user: User) -> list[str] | None:
    """The codes just issued to `user` in this browser, while they may still be shown."""
    fresh = page_secrets.peek(FRESH_CODES)
    return list(fresh["codes"]) if fresh is not None and fresh["user_id"] == user.id else None


def forget() -> None:
    page_secrets.take(FRESH_CODES)


def download(user: User) -> Response | None:
    """The codes just issued, once, as a text file; afterwards only their digests exist."""
    fresh = page_secrets.take(FRESH_CODES)
    if fresh is None or fresh["user_id"] != user.id:
        return None
    codes: list[str] = fresh["codes"]
    heading = _("Recovery codes for %(name)s", name=user.username)
    hint = _("Each works once, in place of your second factor.")
    body = "{}\n{}\n\n{}\n".format(heading, hint, "\n".join(codes))
    return Response(
        body,
        mimetype="text/plain",
        headers={
            "Content-Disposition": "attachment; filename=recovery-codes.txt",
            "Cache-Control": "no-store",
        },
    )
