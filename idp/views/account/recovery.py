"""Recovery codes: ten single-use codes, shown once (and downloadable once, for a few minutes),
replacing any earlier set."""

from __future__ import annotations

from flask import Response, redirect, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.recovery import code_factors, new_codes
from idp.store.tables import FactorKind
from idp.views import page_secrets
from idp.views.account.blueprint import blueprint
from idp.views.account.guard import account_holder, fresh_login_required, login_required
from idp.views.account.pages import page, record_change
from idp.web import durable_store

FRESH_CODES = "fresh_recovery_codes"
DOWNLOADABLE_FOR = 300


@blueprint.route("/recovery-codes")
@login_required
def recovery_codes() -> BaseResponse:
    left = len(durable_store().factors.of_user(account_holder().id, FactorKind.RECOVERY_CODE))
    return page("account_recovery.html", left=left, codes=None)


@blueprint.route("/recovery-codes", methods=["POST"])
@fresh_login_required
def regenerate_recovery_codes() -> BaseResponse:
    user = account_holder()
    store = durable_store()
    store.factors.lock_of_user(user.id)  # a parallel regeneration waits, then replaces this set too
    store.factors.remove_all(user.id, FactorKind.RECOVERY_CODE)
    codes = new_codes()
    for factor in code_factors(user.id, codes):
        store.factors.add(factor)
    page_secrets.keep(FRESH_CODES, {"user_id": user.id, "codes": codes}, ttl=DOWNLOADABLE_FOR)
    record_change(user, "new recovery codes generated (the earlier ones no longer work)")
    return page("account_recovery.html", left=len(codes), codes=codes)


@blueprint.route("/recovery-codes.txt")
@fresh_login_required
def download_recovery_codes() -> BaseResponse:
    """The codes just generated, once, as a text file; afterwards only their digests exist."""
    user = account_holder()
    fresh = page_secrets.take(FRESH_CODES)
    if fresh is None or fresh["user_id"] != user.id:
        return redirect(url_for("account.recovery_codes"))
    codes: list[str] = fresh["codes"]
    body = "Recovery codes for {}\nEach works once, in place of your second factor.\n\n{}\n".format(
        user.username, "\n".join(codes)
    )
    return Response(
        body,
        mimetype="text/plain",
        headers={
            "Content-Disposition": "attachment; filename=recovery-codes.txt",
            "Cache-Control": "no-store",
        },
    )
