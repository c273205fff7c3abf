"""The applications the user allowed (consent), and removing that access."""

from __future__ import annotations

import time

from flask import url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.views.account.blueprint import blueprint
from idp.views.account.guard import account_holder, fresh_login_required, login_required
from idp.views.account.pages import page, record_change, redirect_with
from idp.views.account_changes import ACCESS_REMOVED, Change
from idp.views.consent import scope_wording
from idp.web import authorization_server, durable_store, services
from idp.words import _


@blueprint.route("/applications")
@login_required
def applications() -> BaseResponse:
    remembered_since = int(time.time()) - services().settings.consent.lifetime
    allowed = durable_store().consents.of_user(account_holder().id, granted_since=remembered_since)
    return page("account_applications.html", allowed=allowed, wording=scope_wording())


@blueprint.route("/applications/<client_id>/remove", methods=["POST"])
@fresh_login_required
def remove_application(client_id: str) -> BaseResponse:
    """Forget the consent, and end the grants the client holds for the user (its refresh tokens and
    their access tokens): its next sign-in asks again."""
    user = account_holder()
    store = durable_store()
    client = store.clients.get(client_id)
    if client is None or not store.consents.revoke(user.id, client_id):
        return redirect_with(url_for("account.applications"), _("That application has no access."), "error")
    for grant_id in store.refresh_tokens.families_of(user.id, client_id):
        authorization_server().context.revoke_grant(grant_id, reason="consent removed")
    record_change(user, Change(ACCESS_REMOVED, {"app": client.name}), detail={"client_id": client_id})
    return redirect_with(
        url_for("account.applications"), _("%(app)s no longer has access.", app=client.name), "success"
    )
