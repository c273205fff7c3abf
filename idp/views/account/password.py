"""Changing the password: a minimum length and a blocklist (NIST SP 800-63B), after a fresh MFA sign-in."""

from __future__ import annotations

from flask import request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.password_policy import PasswordRejected, check_new_password
from idp.views.account.blueprint import blueprint
from idp.views.account.guard import account_holder, fresh_login_required
from idp.views.account.pages import page, record_change, redirect_with
from idp.web import services

MAX_INPUT = 1024


@blueprint.route("/password", methods=["GET", "POST"])
@fresh_login_required
def change_password() -> BaseResponse:
    user = account_holder()
    found = services()
    if request.method == "GET":
        return page("account_password.html", min_length=found.settings.passwords.min_length)
    new, repeated = request.form.get("password", "")[:MAX_INPUT], request.form.get("repeat", "")[:MAX_INPUT]
    try:
        if new != repeated:
            raise PasswordRejected("The two passwords differ.")
        check_new_password(new, min_length=found.settings.passwords.min_length, username=user.username)
    except PasswordRejected as rejected:
        return page(
            "account_password.html",
            min_length=found.settings.passwords.min_length,
            error=str(rejected),
            status=400,
        )
    user.password_hash = found.passwords.hash(new)
    record_change(user, "password changed")
    return redirect_with(url_for("account.overview"), "Your password was changed.", "success")
