"""Continue a sign-in: ask the pipeline, then send the user to the one page it asks for, or finish
(an authorization code for the client once it has the user's consent, or back to the provider's own
page)."""

from __future__ import annotations

import logging
import time

from authlib.oauth2 import OAuth2Error
from flask import Response, redirect, render_template, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp import observability
from idp.auth.pipeline import (
    Done,
    Fail,
    NeedEnrolment,
    NeedFactor,
    NeedNewPassword,
    NeedPassword,
    SetPassword,
    Step,
    latest_proof_since,
)
from idp.auth.policy import Method
from idp.oidc import device_flow
from idp.oidc.authorization_details import Approval
from idp.oidc.consent import ConsentRequest, pending_consent
from idp.oidc.delivery import deliver_error
from idp.oidc.error_descriptions import describe
from idp.oidc.server import StoredAuthorizationRequest
from idp.oidc.tokens import Authentication, GrantSubject, new_grant_id
from idp.store.tables import User
from idp.views import approvals, errors, session_state
from idp.views import sign_in_request as sign_ins
from idp.views.sign_in_request import AccountPage, ClientRedirect, DeviceApproval, SignInRequest
from idp.web import audit, authorization_server, services

log = logging.getLogger(__name__)


def continue_sign_in(sign_in: SignInRequest, *, consented: bool = False) -> BaseResponse:
    """Finish when the pipeline says Done (and the user consented, where the client must ask, or
    `consented` says they just did); otherwise send the user to the one page it asks for."""
    step, user = sign_ins.decide(sign_in.requirement)
    if isinstance(step, Done):
        assert user is not None
        asked = None if consented else _ask_consent(sign_in, user)
        return asked or _finish(sign_in, step, user)
    if isinstance(step, Fail):
        return _fail(sign_in, step, user)
    return redirect(url_for(_page_for(step), sign_in_id=sign_in.id))


def consent_to_ask(sign_in: SignInRequest, user: User) -> ConsentRequest | None:
    """What the client must have the user allow before its code is issued, if anything."""
    destination = sign_in.destination
    if not isinstance(destination, ClientRedirect):
        return None
    return pending_consent(
        authorization_server().context,
        user_id=user.id,
        client_id=destination.client_id,
        params=destination.params,
        lifetime=services().settings.consent.lifetime,
        now=time.time(),
    )


def _ask_consent(sign_in: SignInRequest, user: User) -> BaseResponse | None:
    """The consent page when consent is still to be given (OIDC Core 3.1.2.4), consent_required
    when the request allows no pages; None when there is nothing to ask."""
    if consent_to_ask(sign_in, user) is None:
        return None
    if not sign_in.requirement.interactive:
        return refuse_sign_in(
            sign_in, Fail("consent_required", "The user has not allowed this client yet."), user
        )
    return redirect(url_for("consent.page", sign_in_id=sign_in.id))


def _page_for(step: Step) -> str:
    if isinstance(step, NeedPassword):
        return "signin.password"
    if isinstance(step, NeedNewPassword):
        return "signin.new_password"
    if isinstance(step, NeedFactor):
        return "signin.factor"
    if isinstance(step, SetPassword):
        return "password_reset.new_password"
    assert isinstance(step, NeedEnrolment)
    return "signin.enrol_totp" if Method.TOTP in step.methods else "signin.enrol_passkey"


def _finish(sign_in: SignInRequest, done: Done, user: User) -> BaseResponse:
    if not sign_ins.finish(sign_in):
        return errors.sign_in_expired()
    destination = sign_in.destination
    if isinstance(destination, DeviceApproval):
        return _approve_device(destination, done, user)
    if isinstance(destination, AccountPage):
        # Only a proof made for this request makes the session fresh for the account pages.
        requested_at = sign_in.requirement.requested_at
        proved_at = latest_proof_since(session_state.current_state(), requested_at)
        if proved_at is not None:
            session_state.remember_reauthentication(requested_at=requested_at, proved_at=proved_at)
        _record_sign_in(user, done, client_id=None, sid=session_state.session_sid())
        return redirect(destination.path)
    transaction = approvals.transaction_of(sign_in)
    return _issue_code(destination, done, user, approval=transaction.approval() if transaction else None)


def _issue_code(
    destination: ClientRedirect, done: Done, user: User, *, approval: Approval | None
) -> BaseResponse:
    authentication = Authentication(
        acr=done.acr, amr=tuple(done.amr), auth_time=done.auth_time, sid=session_state.session_sid()
    )
    subject = GrantSubject(
        user=user, authentication=authentication, grant_id=new_grant_id(), approval=approval
    )
    stored = StoredAuthorizationRequest(url_for("oidc.authorize", _external=True), destination.params)
    server = authorization_server()
    try:
        grant = server.get_authorization_grant(stored)
    except OAuth2Error as error:
        return answer_protocol_error(error, response_mode=destination.params.get("response_mode"))
    response: BaseResponse = server.create_authorization_response(stored, grant_user=subject, grant=grant)
    _record_sign_in(user, done, client_id=destination.client_id, sid=authentication.sid)
    return response


def _approve_device(destination: DeviceApproval, done: Done, user: User) -> BaseResponse:
    """The device gets its tokens at its next poll, carrying what this sign-in proved (RFC 8628 3.3)."""
    context = authorization_server().context
    authorization = device_flow.pending_authorization(context, destination.user_code)
    authentication = Authentication(
        acr=done.acr, amr=tuple(done.amr), auth_time=done.auth_time, sid=session_state.session_sid()
    )
    approval = device_flow.Approval(
        user_id=user.id, authentication=authentication.to_json(), grant_id=new_grant_id()
    )
    if authorization is None or not device_flow.decide(context, authorization, approval):
        return errors.device_code_expired()
    _record_sign_in(user, done, client_id=destination.client_id, sid=authentication.sid)
    return device_decided(destination.client_name, approved=True)


def device_decided(client_name: str, *, approved: bool) -> Response:
    """The page that tells the user to go back to their device."""
    return Response(render_template("device_done.html", client_name=client_name, approved=approved))


def _record_sign_in(user: User, done: Done, *, client_id: str | None, sid: str) -> None:
    """A completed sign-in: counted, audited with what was proven, and shown on the session list."""
    observability.SIGN_INS.labels("success", done.acr).inc()
    session_state.update_index(sid, acr=done.acr)
    audit(
        "sign_in",
        "success",
        user_id=user.id,
        client_id=client_id,
        detail={
            "acr": done.acr,
            "amr": list(done.amr),
            "methods": list(done.methods),
            "auth_time": done.auth_time,
        },
    )


def _fail(sign_in: SignInRequest, step: Fail, user: User | None) -> BaseResponse:
    """The pipeline refuses; a disabled account (access_denied) is also signed out of this browser."""
    if step.error == "access_denied" and not isinstance(sign_in.destination, AccountPage):
        session_state.end_session(reason="sign-in refused")
    return refuse_sign_in(sign_in, step, user)


def refuse_sign_in(sign_in: SignInRequest, step: Fail, user: User | None) -> BaseResponse:
    """Spend the sign-in, audit why, and tell the client (or the user, on the provider's own pages)."""
    sign_ins.finish(sign_in)
    audit(
        "sign_in",
        "failure",
        user_id=user.id if user else None,
        client_id=sign_in.client_id,
        detail={"error": step.error},
    )
    destination = sign_in.destination
    if isinstance(destination, DeviceApproval):
        _deny_device(destination)
    if not isinstance(destination, ClientRedirect) or sign_in.requirement.password_reset:
        return errors.sign_in_refused(step.error, describe(step.error, step.description))
    return answer_client_error(
        destination.redirect_uri,
        error=step.error,
        description=step.description,
        state=destination.params.get("state"),
        response_mode=destination.params.get("response_mode"),
    )


def _deny_device(destination: DeviceApproval) -> None:
    """A device whose sign-in cannot succeed hears access_denied at its next poll."""
    context = authorization_server().context
    authorization = device_flow.pending_authorization(context, destination.user_code)
    if authorization is not None:
        device_flow.decide(context, authorization, None)


def answer_client_error(
    redirect_uri: str, *, error: str, description: str, state: str | None, response_mode: str | None
) -> BaseResponse:
    """An OAuth error sent to the client's validated redirect URI, with our issuer (RFC 9207)."""
    return deliver_error(
        redirect_uri,
        error=error,
        description=description,
        state=state,
        response_mode=response_mode,
        issuer=services().settings.issuer,
    )


def answer_protocol_error(error: OAuth2Error, *, response_mode: str | None) -> BaseResponse:
    """Errors with a validated redirect URI go to the client; the rest are shown here (RFC 6749 4.1.2.1)."""
    log.info("authorization request refused: %s", error.error)
    if error.redirect_uri:
        return answer_client_error(
            error.redirect_uri,
            error=error.error,
            description=error.get_error_description(),
            state=error.state,
            response_mode=response_mode,
        )
    return errors.invalid_authorization_request(describe(error.error, error.get_error_description()))
