"""The consent page (OIDC Core 3.1.2.4): once the sign-in is done, the user allows the client the
scopes it asked for, or denies it (access_denied to the client; the user stays signed in here)."""

from __future__ import annotations

import time
from collections.abc import Iterable

from flask import Blueprint, Response, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.pipeline import Done, Fail
from idp.languages import N_
from idp.oidc.consent import ConsentRequest
from idp.store.tables import User
from idp.views.continuation import consent_to_ask, continue_sign_in, refuse_sign_in
from idp.views.sign_in_request import SignInRequest
from idp.views.signin import at_step
from idp.web import audit, durable_store
from idp.words import _

blueprint = Blueprint("consent", __name__)

# What each scope releases, in the user's terms (idp.oidc.claims); other scopes are shown by name.
SCOPE_WORDING = {
    "openid": N_("Know that you are signed in, and an identifier for your account"),
    "profile": N_("Your user name"),
    "email": N_("Your email address"),
    "offline_access": N_("Keep access while you are not using it"),
}
DENIED = "The user did not allow this client access."  # the client's error_description


def scope_wording() -> dict[str, str]:
    """SCOPE_WORDING in the reader's language."""
    return {scope: _(words) for scope, words in SCOPE_WORDING.items()}


def described(scopes: Iterable[str]) -> list[str]:
    """What each scope releases, as the consent and device pages list them."""
    wording = scope_wording()
    return [wording.get(scope, scope) for scope in scopes]


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
    body = render_template(
        "consent.html", sign_in=sign_in, asked=asked, scopes=described(asked.scopes), user=user
    )
    return Response(body, status=status)
