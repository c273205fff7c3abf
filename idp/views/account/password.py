"""Changing the password: a minimum length and a blocklist (NIST SP 800-63B), after the current
password (or a passkey) and a second factor are proven again; other sessions and apps are signed out
unless the user keeps them."""

from __future__ import annotations

from flask import request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.password_policy import PasswordRejected, check_new_password
from idp.store.tables import User
from idp.views.account.blueprint import blueprint
from idp.views.account.guard import account_holder, reauthentication_required
from idp.views.account.pages import page, record_change, redirect_with
from idp.views.account.sessions import end_sessions_of
from idp.views.account_changes import PASSWORD_CHANGED, SIGNED_OUT_ELSEWHERE, Change
from idp.web import authorization_server, services
from idp.words import _

MAX_INPUT = 1024
KEEP_OTHERS = "keep_signed_in_elsewhere"


@blueprint.route("/password", methods=["GET", "POST"])
@reauthentication_required
def change_password() -> BaseResponse:
    user = account_holder()
    found = services()
    if request.method == "GET":
        return page("account_password.html", min_length=found.settings.passwords.min_length)
    new, repeated = request.form.get("password", "")[:MAX_INPUT], request.form.get("repeat", "")[:MAX_INPUT]
    try:
        if new != repeated:
            raise PasswordRejected(_("The two passwords differ."))
        check_new_password(new, min_length=found.settings.passwords.min_length, username=user.username)
    except PasswordRejected as rejected:
        return page(
            "account_password.html",
            min_length=found.settings.passwords.min_length,
            error=str(rejected),
            status=400,
        )
    user.password_hash = found.passwords.hash(new)
    changes = [Change(PASSWORD_CHANGED)]
    if not request.form.get(KEEP_OTHERS):
        changes.append(sign_out_elsewhere(user))
    record_change(user, *changes)
    return redirect_with(url_for("account.overview"), _("Your password was changed."), "success")


def sign_out_elsewhere(user: User) -> Change:
    """End the user's other sessions and revoke every grant of theirs (refresh-token families and
    their access tokens): whoever knew the old password is signed out everywhere. Says what ended."""
    sessions = end_sessions_of(user)
    grants = authorization_server().context.revoke_user_grants(user.id, reason="password changed")
    return Change(SIGNED_OUT_ELSEWHERE, {"sessions": sessions, "grants": grants})
