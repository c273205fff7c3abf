"""Apps with offline access (OIDC Core 11), whose refresh tokens outlive sign-out: listed and revoked here."""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.views.account.blueprint import blueprint
from idp.views.account.guard import account_holder, fresh_login_required, login_required
from idp.views.account.pages import page, record_change, redirect_with
from idp.views.account_changes import OFFLINE_ACCESS_REVOKED, Change
from idp.web import authorization_server, durable_store
from idp.words import _


@dataclass(frozen=True)
class OfflineGrant:
    """One app's offline access as the page shows it."""

    grant_id: str
    client_name: str
    scope: str
    granted_at: int  # when the user signed in to grant it
    last_used_at: int  # the last refresh


def load_offline_grants(user_id: str) -> list[OfflineGrant]:
    found = durable_store().refresh_tokens.offline_of_user(user_id, now=int(time.time()))
    return [
        OfflineGrant(
            grant_id=token.family_id,
            client_name=client.name,
            scope=token.scope,
            granted_at=int(token.authentication["auth_time"]),
            last_used_at=token.issued_at,
        )
        for token, client in found
    ]


@blueprint.route("/offline-access")
@login_required
def offline_access() -> BaseResponse:
    return page("account_offline_access.html", grants=load_offline_grants(account_holder().id))


@blueprint.route("/offline-access/<grant_id>/revoke", methods=["POST"])
@fresh_login_required
def revoke_offline_access(grant_id: str) -> BaseResponse:
    """End one of the user's own offline grants: its refresh token and its access tokens."""
    user = account_holder()
    grant = next((g for g in load_offline_grants(user.id) if g.grant_id == grant_id), None)
    if grant is None:
        return redirect_with(url_for("account.offline_access"), _("No such app has offline access."), "error")
    authorization_server().context.revoke_grant(grant.grant_id, reason="revoked on the account page")
    record_change(user, Change(OFFLINE_ACCESS_REVOKED, {"app": grant.client_name}))
    return redirect_with(
        url_for("account.offline_access"),
        _("%(app)s no longer has offline access.", app=grant.client_name),
        "success",
    )
