"""Recovery codes: ten single-use codes, shown once (and downloadable once), replacing any earlier set."""

from __future__ import annotations

from flask import Response, redirect, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.factors import RECOVERY_CODE
from idp.auth.recovery import code_factors, new_codes
from idp.views.account import blueprint, current_user, page, record_change, signed_in
from idp.web import durable_store

FRESH_CODES = "fresh_recovery_codes"


@blueprint.route("/recovery-codes")
@signed_in(fresh=False)
def recovery_codes() -> BaseResponse:
    left = len(durable_store().factors.of_user(current_user().id, RECOVERY_CODE))
    return page("account_recovery.html", left=left, codes=None)


@blueprint.route("/recovery-codes", methods=["POST"])
@signed_in(fresh=True)
def regenerate_recovery_codes() -> BaseResponse:
    user = current_user()
    store = durable_store()
    store.factors.lock_of_user(user.id)  # a parallel regeneration waits, then replaces this set too
    store.factors.remove_all(user.id, RECOVERY_CODE)
    codes = new_codes()
    for factor in code_factors(user.id, codes):
        store.factors.add(factor)
    session[FRESH_CODES] = codes
    record_change(user, "new recovery codes generated (the earlier ones no longer work)")
    return page("account_recovery.html", left=len(codes), codes=codes)


@blueprint.route("/recovery-codes.txt")
@signed_in(fresh=True)
def download_recovery_codes() -> BaseResponse:
    """The codes just generated, once, as a text file; afterwards only their digests exist."""
    codes = session.pop(FRESH_CODES, None)
    if not codes:
        return redirect(url_for("account.recovery_codes"))
    body = "Recovery codes for {}\nEach works once, in place of your second factor.\n\n{}\n".format(
        current_user().username, "\n".join(codes)
    )
    return Response(
        body,
        mimetype="text/plain",
        headers={
            "Content-Disposition": "attachment; filename=recovery-codes.txt",
            "Cache-Control": "no-store",
        },
    )
