"""RP-Initiated Logout 1.0: end the session, then return only to a registered post-logout URI."""

from __future__ import annotations

from authlib.common.urls import add_params_to_uri
from flask import Blueprint, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from idp.oidc.clients import RegisteredClient
from idp.views import errors, session_state
from idp.web import audit, durable_store, services

blueprint = Blueprint("logout", __name__)


def _hinted_audience(id_token_hint: str) -> str | None:
    """The client an ID token we signed was issued to (expired hints are fine, forged ones are not)."""
    token = services().keyring.decode(id_token_hint)
    if token is None or token.claims.get("iss") != services().settings.issuer:
        return None
    audience = token.claims.get("aud")
    return (
        audience[0]
        if isinstance(audience, list) and audience
        else audience
        if isinstance(audience, str)
        else None
    )


class LogoutRefused(Exception):
    pass


def _return_address(client_id: str | None) -> str | None:
    """The post-logout redirect URI with state, only when registered for the client (no open redirect)."""
    values = request.values
    target = values.get("post_logout_redirect_uri")
    if not target:
        return None
    row = durable_store().clients.get(client_id) if client_id else None
    if row is None or not RegisteredClient(row).check_post_logout_redirect_uri(target):
        raise LogoutRefused(
            "The address to return to after signing out is not registered for this application."
        )
    return add_params_to_uri(target, [("state", values["state"])]) if values.get("state") else target


@blueprint.route("/logout", methods=["GET", "POST"])
def end_session() -> BaseResponse:
    values = request.values
    hinted = _hinted_audience(values.get("id_token_hint", ""))
    if hinted and values.get("client_id") and values["client_id"] != hinted:
        return _refuse("client_id does not match the ID token hint.")
    client_id = values.get("client_id") or hinted
    try:
        target = _return_address(client_id)
    except LogoutRefused as refused:
        return _refuse(str(refused))
    if hinted is None:
        # Without an ID token proving the RP sent the user, ask before ending the session (spec 2).
        fields = {
            name: values[name]
            for name in ("client_id", "post_logout_redirect_uri", "state")
            if values.get(name)
        }
        return Response(render_template("logout_confirm.html", fields=fields))
    return _sign_out(target)


@blueprint.route("/logout/confirm", methods=["POST"])
def confirm() -> BaseResponse:
    try:
        target = _return_address(request.form.get("client_id"))
    except LogoutRefused as refused:
        return _refuse(str(refused))
    return _sign_out(target)


def _sign_out(target: str | None) -> BaseResponse:
    user = session_state.signed_in_user()
    if user is not None:
        audit("sign_out", "success", user_id=user.id)
    session_state.end_session()
    if target:
        return redirect(target)
    return Response(render_template("signed_out.html"))


def _refuse(message: str) -> Response:
    return errors.cannot_sign_out(message)
