"""Recovery codes: ten single-use codes, shown once (and downloadable once, for a few minutes),
replacing any earlier set."""

from __future__ import annotations

import json
import secrets

from flask import Response, redirect, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.policy import FactorKind
from idp.auth.recovery import code_factors, new_codes
from idp.views.account.blueprint import blueprint
from idp.views.account.guard import account_holder, fresh_login_required, login_required
from idp.views.account.pages import page, record_change
from idp.web import durable_store, services

FRESH_CODES = "fresh_recovery_codes"  # in the session: the key of the download, never the codes
DOWNLOAD_PREFIX = "recovery-download:"
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
    store.factors.remove_all(user.id, FactorKind.RECOVERY_CODE)
    codes = new_codes()
    for factor in code_factors(user.id, codes):
        store.factors.add(factor)
    _keep_for_download(user.id, codes)
    record_change(user, "new recovery codes generated (the earlier ones no longer work)")
    return page("account_recovery.html", left=len(codes), codes=codes)


@blueprint.route("/recovery-codes.txt")
@fresh_login_required
def download_recovery_codes() -> BaseResponse:
    """The codes just generated, once, as a text file; afterwards only their digests exist."""
    user = account_holder()
    codes = _take_download(user.id)
    if not codes:
        return redirect(url_for("account.recovery_codes"))
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


def _keep_for_download(user_id: str, codes: list[str]) -> None:
    """The codes under an ephemeral key of their own, for a few minutes; the 12-hour session holds
    only that key, so the codes outlive neither the download nor the few minutes."""
    handle = secrets.token_urlsafe(24)
    services().ephemeral.put(
        DOWNLOAD_PREFIX + handle,
        json.dumps({"user_id": user_id, "codes": codes}).encode(),
        ttl=DOWNLOADABLE_FOR,
    )
    session[FRESH_CODES] = handle


def _take_download(user_id: str) -> list[str] | None:
    """The codes this browser may download once, for `user_id` only; None when gone or someone else's."""
    handle = session.pop(FRESH_CODES, None)
    raw = services().ephemeral.take(DOWNLOAD_PREFIX + handle) if isinstance(handle, str) else None
    if raw is None:
        return None
    kept = json.loads(raw)
    codes: list[str] = kept["codes"]
    return codes if kept["user_id"] == user_id else None
