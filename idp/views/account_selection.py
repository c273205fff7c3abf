"""prompt=select_account (OIDC Core 3.1.2.1): the provider keeps one account per browser session, so
the choice is to continue as the account signed in here or to sign in with another one."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.pipeline import Fail
from idp.store.tables import User
from idp.views import errors, session_state
from idp.views import sign_in_request as sign_ins
from idp.views.continuation import continue_sign_in, refuse_sign_in
from idp.views.sign_in_request import SignInRequest
from idp.web import audit

blueprint = Blueprint("account_selection", __name__)

NOT_WITHOUT_PAGES = "The user must choose an account, which needs a page."


def ask_for_account(sign_in: SignInRequest) -> BaseResponse:
    """The choice page when an account is signed in here; account_selection_required when the
    request allows no pages; with no account here, the sign-in simply begins."""
    user = session_state.signed_in_user()
    if user is None:
        return continue_sign_in(sign_in)
    if not sign_in.requirement.interactive:
        return refuse_sign_in(sign_in, Fail("account_selection_required", NOT_WITHOUT_PAGES), user)
    return redirect(url_for("account_selection.page", sign_in_id=sign_in.id))


@blueprint.route("/signin/<sign_in_id>/account", methods=["GET", "POST"])
def page(sign_in_id: str) -> BaseResponse:
    """Continue as the account signed in here, or end its proofs and sign in with another one."""
    sign_in = sign_ins.load(sign_in_id)
    if sign_in is None:
        return errors.sign_in_expired()
    user = session_state.signed_in_user()
    if user is None:
        return continue_sign_in(sign_in)
    if request.method == "GET":
        return _choice_page(sign_in, user)
    choice = request.form.get("choice")
    if choice == "another":
        audit("sign_out", "success", user_id=user.id, detail={"reason": "another account"})
        session_state.start_over()
    elif choice != "continue":
        return _choice_page(sign_in, user, status=400)
    return continue_sign_in(sign_in)


def _choice_page(sign_in: SignInRequest, user: User, *, status: int = 200) -> Response:
    return Response(render_template("select_account.html", sign_in=sign_in, user=user), status=status)
