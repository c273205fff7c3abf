"""The consent page (OIDC Core 3.1.2.4): once the sign-in is done, the user allows the client the
scopes it asked for, or denies it (access_denied to the client; the user stays signed in here)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.pipeline import Done, Fail
from idp.oidc.consent import ConsentRequest
from idp.store.tables import User
from idp.views.continuation import consent_to_ask, continue_sign_in, refuse_sign_in
from idp.views.sign_in_request import SignInRequest
from idp.views.signin import at_step
from idp.web import audit, durable_store

blueprint = Blueprint("consent", __name__)

# What each scope releases, in the user's terms (idp.oidc.claims); other scopes are shown by name.
SCOPE_WORDING = {
    "openid": "Know that you are signed in, and an identifier for your account",
    "profile": "Your user name",
    "email": "Your email address",
    "offline_access": "Keep access while you are not using it",
}
DENIED = "The user did not allow this client access."


@blueprint.route("/signin/<sign_in_id>/consent", methods=["GET", "POST"])
@at_step(Done)
def page(sign_in: SignInRequest, _step: Done, user: User) -> BaseResponse:
    """Ask, then allow (remembered) or deny; with nothing (left) to ask, the sign-in continues."""
    asked = consent_to_ask(sign_in, user)
    if asked is None:
        return continue_sign_in(sign_in)
    if request.method == "GET":
        return _consent_page(sign_in, asked, user)
    decision = request.form.get("decision")
    if decision == "deny":
        audit("consent", "refused", user_id=user.id, client_id=asked.client_id)
        return refuse_sign_in(sign_in, Fail("access_denied", DENIED), user)
    if decision != "allow":
        return _consent_page(sign_in, asked, user, status=400)
    durable_store().consents.grant(
        user_id=user.id, client_id=asked.client_id, scopes=asked.allowed_after, at=int(time.time())
    )
    audit(
        "consent",
        "success",
        user_id=user.id,
        client_id=asked.client_id,
        detail={"scope": " ".join(asked.scopes)},
    )
    return continue_sign_in(sign_in, consented=True)


def _consent_page(
    sign_in: SignInRequest, asked: ConsentRequest, user: User, *, status: int = 200
) -> Response:
    described = [SCOPE_WORDING.get(scope, scope) for scope in asked.scopes]
    body = render_template("consent.html", sign_in=sign_in, asked=asked, scopes=described, user=user)
    return Response(body, status=status)
