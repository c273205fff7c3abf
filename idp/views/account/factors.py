"""Adding and removing second factors: authenticator apps, passkeys."""

from __future__ import annotations

from flask import flash, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.factors import capabilities_of
from idp.auth.pipeline import keeps_minimum
from idp.languages import N_
from idp.views import passkeys, totp_enrolment
from idp.views.account.blueprint import blueprint
from idp.views.account.guard import account_holder, fresh_login_required, login_required
from idp.views.account.pages import confirmation, page, record_change, redirect_with
from idp.views.account_changes import APP_ADDED, LAST_METHOD_KEPT, METHOD_REMOVED, PASSKEY_ADDED, Change
from idp.web import audit, durable_store, services
from idp.words import _

TOTP_DRAFT = "account_totp_draft"
NO_SUCH_METHOD = N_("That sign-in method no longer exists.")


@blueprint.route("/totp/new", methods=["GET", "POST"])
@fresh_login_required
def new_totp() -> BaseResponse:
    """Another authenticator app: shown as a QR code, stored only once a code from it is confirmed."""
    user = account_holder()
    enrolment = totp_enrolment.draft(user, key=TOTP_DRAFT)
    if request.method == "GET":
        return page("account_totp.html", enrolment=enrolment)
    code = request.form.get("code", "")[:16].replace(" ", "")
    factor = totp_enrolment.confirm(user, key=TOTP_DRAFT, code=code, name=request.form.get("name", "")[:200])
    if factor is None:
        return page("account_totp.html", enrolment=enrolment, error=_(totp_enrolment.WRONG_CODE), status=400)
    name = factor.name
    record_change(user, Change(APP_ADDED, {"name": name}))
    return redirect_with(
        url_for("account.overview"), _("Authenticator app '%(name)s' added.", name=name), "success"
    )


@blueprint.route("/passkeys/new")
@fresh_login_required
def new_passkey() -> BaseResponse:
    return page(
        "passkey_new.html",
        lead=_("Sign in with it instead of a password, or use it as your second factor."),
        options_url=url_for("account.passkey_options"),
        verify_url=url_for("account.add_passkey"),
        back_url=url_for("account.overview"),
    )


@blueprint.route("/passkeys/options", methods=["POST"])
@fresh_login_required
def passkey_options() -> BaseResponse:
    return passkeys.begin_registration(account_holder())


@blueprint.route("/passkeys", methods=["POST"])
@fresh_login_required
def add_passkey() -> BaseResponse:
    user = account_holder()
    response = passkeys.finish_registration(user, next_url=url_for("account.overview"))
    if response.status_code == 200:
        record_change(user, Change(PASSKEY_ADDED))
        flash(_("Passkey added."), "success")
    return response


@blueprint.route("/factors/<factor_id>/remove", methods=["GET"])
@login_required
def confirm_factor_removal(factor_id: str) -> BaseResponse:
    user = account_holder()
    removing = next((f for f in durable_store().factors.of_user(user.id) if f.id == factor_id), None)
    if removing is None:
        return redirect_with(url_for("account.overview"), _(NO_SUCH_METHOD), "error")
    return confirmation(
        title=_("Remove %(name)s?", name=removing.name),
        message=_("You will no longer be able to sign in with %(name)s.", name=removing.name),
        action=url_for("account.remove_factor", factor_id=factor_id),
        button=_("Remove %(name)s", name=removing.name),
    )


@blueprint.route("/factors/<factor_id>/remove", methods=["POST"])
@fresh_login_required
def remove_factor(factor_id: str) -> BaseResponse:
    """Remove a factor, unless the account could then no longer reach the minimum level."""
    user = account_holder()
    store = durable_store()
    factors = store.factors.lock_of_user(user.id)  # a parallel removal waits, then sees this one
    removing = next((f for f in factors if f.id == factor_id), None)
    if removing is None:
        return redirect_with(url_for("account.overview"), _(NO_SUCH_METHOD), "error")
    remaining = capabilities_of(f for f in factors if f.id != factor_id)
    if not keeps_minimum(remaining, services().policy):
        audit("account_change", "refused", user_id=user.id, detail={"change": LAST_METHOD_KEPT})
        notice = _("This is your last second factor: add another one before removing it.")
        return redirect_with(url_for("account.overview"), notice, "error")
    store.factors.remove(user.id, factor_id)
    record_change(user, Change(METHOD_REMOVED, {"name": removing.name}), detail={"factor_id": factor_id})
    return redirect_with(url_for("account.overview"), _("'%(name)s' removed.", name=removing.name), "success")
