"""RP-Initiated Logout 1.0: end the session, then return only to a registered post-logout URI."""

from __future__ import annotations

from dataclasses import dataclass

from authlib.common.urls import add_params_to_uri
from flask import Blueprint, Response, redirect, render_template, request, session
from werkzeug.wrappers import Response as BaseResponse

from idp.oidc.clients import RegisteredClient
from idp.oidc.logout import FrontChannelPage
from idp.security_headers import content_security_policy
from idp.views import errors, session_state
from idp.views.branding import image_sources
from idp.web import audit, durable_store, services
from idp.words import _

blueprint = Blueprint("logout", __name__)


@dataclass(frozen=True)
class IdTokenHint:
    """What an ID token we signed says about the sign-in it came from (RP-Initiated Logout 1.0 §2)."""

    audience: str
    subject: str | None
    sid: str | None


def verify_id_token_hint(id_token_hint: str) -> IdTokenHint | None:
    """An ID token we signed, with its client (expired hints are fine, forged ones are not)."""
    token = services().keyring.decode(id_token_hint)
    if token is None or token.claims.get("iss") != services().settings.issuer:
        return None
    audience = token.claims.get("aud")
    client_id = (
        audience[0]
        if isinstance(audience, list) and audience
        else audience
        if isinstance(audience, str)
        else None
    )
    if not isinstance(client_id, str):
        return None
    subject, sid = token.claims.get("sub"), token.claims.get("sid")
    return IdTokenHint(
        audience=client_id,
        subject=subject if isinstance(subject, str) else None,
        sid=sid if isinstance(sid, str) else None,
    )


def hint_names_this_session(hint: IdTokenHint) -> bool:
    """The hint was issued to this browser's session: its user and its `sid` (RP-Initiated Logout 1.0
    §2: otherwise the user must be asked). A browser signed in as no one has nothing to lose."""
    user = session_state.signed_in_user()
    if user is None:
        return True
    return hint.subject == user.id and hint.sid is not None and hint.sid == session.get(session_state.SID_KEY)


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
            _("The address to return to after signing out is not registered for this application.")
        )
    return add_params_to_uri(target, [("state", values["state"])]) if values.get("state") else target


@blueprint.route("/logout", methods=["GET", "POST"])
def end_session() -> BaseResponse:
    values = request.values
    hint = verify_id_token_hint(values.get("id_token_hint", ""))
    if hint and values.get("client_id") and values["client_id"] != hint.audience:
        return _refuse(_("The application that asked to sign you out is not the one you signed in to."))
    client_id = values.get("client_id") or (hint.audience if hint else None)
    try:
        target = _return_address(client_id)
    except LogoutRefused as refused:
        return _refuse(str(refused))
    if hint is None or not hint_names_this_session(hint):
        # Without an ID token of this very session, anyone could have sent the user: ask (spec 2).
        fields = {
            "client_id": client_id,
            "post_logout_redirect_uri": values.get("post_logout_redirect_uri"),
            "state": values.get("state"),
        }
        kept = {name: value for name, value in fields.items() if value}
        return Response(render_template("logout_confirm.html", fields=kept))
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
    pages = session_state.end_session()
    if target and not pages:
        return redirect(target)
    return _signed_out_page(pages, target)


def _signed_out_page(pages: tuple[FrontChannelPage, ...], target: str | None) -> Response:
    """The signed-out page, framing each front-channel logout URI (Front-Channel Logout 1.0 2) before
    it continues to `target`: its policy lets it frame exactly those origins, nothing else."""
    response = Response(render_template("signed_out.html", pages=pages, target=target))
    if pages:
        origins = " ".join(sorted({page.origin for page in pages}))
        policy = content_security_policy(images=image_sources(services().settings.branding))
        response.headers["Content-Security-Policy"] = f"{policy}; frame-src {origins}"
    return response


def _refuse(message: str) -> Response:
    return errors.cannot_sign_out(message)
