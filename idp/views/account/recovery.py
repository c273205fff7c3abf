"""Recovery codes: ten single-use codes, shown once (and downloadable once, for a few minutes),
replacing any earlier set."""

from __future__ import annotations

from flask import redirect, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.store.tables import FactorKind
from idp.views import recovery_codes as fresh_codes
from idp.views.account.blueprint import blueprint
from idp.views.account.guard import account_holder, fresh_login_required, login_required
from idp.views.account.pages import confirmation, page, record_change
from idp.views.account_changes import NEW_RECOVERY_CODES, Change
from idp.web import durable_store
from idp.words import _


@blueprint.route("/recovery-codes")
@login_required
def recovery_codes() -> BaseResponse:
    left = len(durable_store().factors.of_user(account_holder().id, FactorKind.RECOVERY_CODE))
    return page("account_recovery.html", left=left, codes=None)


@blueprint.route("/recovery-codes/new")
@login_required
def confirm_new_recovery_codes() -> BaseResponse:
    return confirmation(
        title=_("Generate new recovery codes?"),
        message=_("The recovery codes you have now will stop working."),
        action=url_for("account.regenerate_recovery_codes"),
        button=_("Generate new codes"),
    )


@blueprint.route("/recovery-codes", methods=["POST"])
@fresh_login_required
def regenerate_recovery_codes() -> BaseResponse:
    user = account_holder()
    codes = fresh_codes.issue(user)
    record_change(user, Change(NEW_RECOVERY_CODES))
    return page("account_recovery.html", left=len(codes), codes=codes)


@blueprint.route("/recovery-codes.txt")
@fresh_login_required
def download_recovery_codes() -> BaseResponse:
    """The codes just generated, once, as a text file; afterwards only their digests exist."""
    return fresh_codes.download(account_holder()) or redirect(url_for("account.recovery_codes"))
