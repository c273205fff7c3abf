"""Protocol endpoints: authorization (begin and resume), token, userinfo, revocation, introspection."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from idp import observability
from idp.auth.pipeline import (
    Done,
    Fail,
    NeedEnrolment,
    NeedFactor,
    NeedPassword,
    RequestRejected,
    Step,
    requirement_for,
)
from idp.auth.policy import Method
from idp.auth.throttle import Blocked, address_subject
from idp.oidc.claims import user_claims
from idp.oidc.keys import MAX_JWT_LENGTH
from idp.oidc.server import ProviderServer, StoredAuthorizationRequest
from idp.oidc.tokens import Authentication, GrantSubject, new_grant_id
from idp.views import flow, guessing
from idp.views.delivery import RESPONSE_MODES, deliver_error
from idp.views.guessing import Event, Guessed
from idp.web import audit, durable_store, services

blueprint = Blueprint("oidc", __name__)

MAX_PARAMETER_LENGTH = MAX_JWT_LENGTH  # no parameter we accept is longer than the longest token
# Plain ASCII by their syntax (RFC 6749 A.3, A.6); authlib repeats them in its error descriptions, which
# must be too (RFC 6749 4.1.2.1), and raises ValueError instead of the error when they are not.
ECHOED = frozenset({"response_type", "redirect_uri"})
log = logging.getLogger(__name__)


def authorization_server() -> ProviderServer:
    server: ProviderServer = current_app.extensions["authlib.server"]
    return server


@blueprint.route("/authorize", methods=["GET", "POST"])
def authorize() -> BaseResponse:
    """Validate the request (authlib), fix what it requires (pipeline), then sign the user in."""
    server = authorization_server()
    malformed = _malformed_parameters()
    if malformed is not None:
        return _protocol_error(malformed)
    end_user = flow.signed_in_user()
    try:
        grant = server.get_consent_grant(end_user=end_user)
    except OAuth2Error as error:
        return _protocol_error(error)
    payload = grant.request.payload
    redirect_uri: str = payload.redirect_uri or grant.client.get_default_redirect_uri()
    response_mode = payload.data.get("response_mode")
    if response_mode is not None and response_mode not in RESPONSE_MODES:
        return deliver_error(
            redirect_uri,
            error="invalid_request",
            description="response_mode must be query or form_post",
            state=payload.state,
            response_mode="query",
        )
    client = grant.client.row
    try:
        requirement = requirement_for(
            policy=services().policy,
            scopes=(grant.request.scope or "").split(),
            acr_values=payload.data.get("acr_values"),
            claims=payload.data.get("claims"),
            max_age=payload.data.get("max_age"),
            prompt=payload.data.get("prompt"),
            client_default_acr_values=client.default_acr_values,
            client_default_max_age=client.default_max_age,
            now=time.time(),
        )
    except RequestRejected as rejected:
        return deliver_error(
            redirect_uri,
            error=rejected.error,
            description=rejected.description,
            state=payload.state,
            response_mode=response_mode,
        )
    pending = flow.stash(
        {key: str(value) for key, value in payload.data.items()},
        client_id=client.client_id,
        client_name=client.name,
        redirect_uri=redirect_uri,
        requirement=requirement,
    )
    return continue_sign_in(pending)


@blueprint.route("/authorize/resume/<pending_id>")
def resume(pending_id: str) -> BaseResponse:
    pending = flow.load_pending(pending_id)
    if pending is None:
        return _expired()
    return continue_sign_in(pending)


def continue_sign_in(pending: flow.PendingAuthorization) -> BaseResponse:
    """Issue the code when the pipeline says Done; otherwise send the user to the one page it asks for."""
    step, user = flow.decide(pending)
    if pending.return_to is not None:
        return _continue_to_own_page(pending, step)
    if isinstance(step, Done):
        assert user is not None
        return _issue_code(pending, step, user)
    if isinstance(step, Fail):
        flow.finish_pending(pending)
        audit(
            "sign_in",
            "failure",
            user_id=user.id if user else None,
            client_id=pending.client_id,
            detail={"error": step.error},
        )
        if step.error == "access_denied":
            flow.end_session()
        return deliver_error(
            pending.redirect_uri,
            error=step.error,
            description=step.description,
            state=pending.params.get("state"),
            response_mode=pending.params.get("response_mode"),
        )
    return _page_for(pending, step)


def _page_for(pending: flow.PendingAuthorization, step: Step) -> BaseResponse:
    if isinstance(step, NeedPassword):
        page = "signin.password"
    elif isinstance(step, NeedFactor):
        page = "signin.factor"
    elif isinstance(step, NeedEnrolment) and Method.TOTP in step.methods:
        page = "signin.enrol_totp"
    else:
        page = "signin.enrol_passkey"
    return redirect(url_for(page, pending_id=pending.id))


def _continue_to_own_page(pending: flow.PendingAuthorization, step: Step) -> BaseResponse:
    """A provider page (the account pages) asked for this sign-in: go back there when done."""
    assert pending.return_to is not None
    if isinstance(step, Done):
        flow.finish_pending(pending)
        flow.remember_step_up(pending)
        _record_sign_in(pending, step, flow.session_sid())
        return redirect(pending.return_to)
    if isinstance(step, Fail):
        flow.finish_pending(pending)
        body = render_template("error.html", title="You cannot continue", message=step.description)
        return Response(body, status=403)
    return _page_for(pending, step)


def _issue_code(pending: flow.PendingAuthorization, done: Done, user: Any) -> BaseResponse:
    if not flow.finish_pending(pending):
        return _expired()
    authentication = Authentication(
        acr=done.acr, amr=tuple(done.amr), auth_time=done.auth_time, sid=flow.session_sid()
    )
    subject = GrantSubject(user=user, authentication=authentication, grant_id=new_grant_id())
    stored = StoredAuthorizationRequest(url_for("oidc.authorize", _external=True), pending.params)
    server = authorization_server()
    try:
        grant = server.get_authorization_grant(stored)
    except OAuth2Error as error:
        return _protocol_error(error)
    response: BaseResponse = server.create_authorization_response(stored, grant_user=subject, grant=grant)
    _record_sign_in(pending, done, authentication.sid)
    return response


def _record_sign_in(pending: flow.PendingAuthorization, done: Done, sid: str) -> None:
    """A completed sign-in: counted, audited with what was proven, and shown on the session list."""
    user = flow.signed_in_user()
    observability.SIGN_INS.labels("success", done.acr).inc()
    durable_store().sessions.set_acr(sid, done.acr)
    audit(
        "sign_in",
        "success",
        user_id=user.id if user else None,
        client_id=pending.client_id or None,
        detail={"acr": done.acr, "amr": list(done.amr), "auth_time": done.auth_time},
    )


def _protocol_error(error: OAuth2Error) -> BaseResponse:
    """Errors with a validated redirect URI go to the client; the rest are shown here (RFC 6749 4.1.2.1)."""
    log.info("authorization request refused: %s", error.error)
    if error.redirect_uri:
        return deliver_error(
            error.redirect_uri,
            error=error.error,
            description=error.description or error.error,
            state=error.state,
            response_mode=request.values.get("response_mode"),
        )
    return Response(
        render_template(
            "error.html", title="This sign-in link is not valid", message=error.description or error.error
        ),
        status=400,
    )


def _malformed_parameters() -> InvalidRequestError | None:
    """RFC 6749 3.1 and 3.2: no parameter repeated (in the query, the body, or across both), none
    longer than any value we issue or accept."""
    for name, values in request.values.lists():
        if len(values) > 1:
            return InvalidRequestError("a parameter is included more than once")
        if len(name) > MAX_PARAMETER_LENGTH or len(values[0]) > MAX_PARAMETER_LENGTH:
            return InvalidRequestError("a parameter is too long")
        if name in ECHOED and invalid_error_characters(values[0]):
            return InvalidRequestError(f"{name} is malformed")
    return None


def _expired() -> BaseResponse:
    message = "This sign-in has expired or was already completed. Return to the application and start again."
    return Response(render_template("error.html", title="Sign-in expired", message=message), status=400)


@blueprint.route("/token", methods=["POST"])
def token() -> BaseResponse:
    response = _with_client_authentication(lambda: authorization_server().create_token_response())
    grant_type = request.form.get("grant_type", "")
    known = grant_type in ("authorization_code", "refresh_token", "client_credentials")
    observability.TOKENS.labels(grant_type if known else "other", str(response.status_code)).inc()
    return response


@blueprint.route("/revoke", methods=["POST"])
def revoke() -> BaseResponse:
    return _with_client_authentication(lambda: authorization_server().create_endpoint_response("revocation"))


@blueprint.route("/introspect", methods=["POST"])
def introspect() -> BaseResponse:
    response = _with_client_authentication(
        lambda: authorization_server().create_endpoint_response("introspection")
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _with_client_authentication(endpoint: Callable[[], BaseResponse]) -> BaseResponse:
    """Endpoints where clients authenticate: failed authentications back off per client and address."""
    refused = _malformed_parameters() or _malformed_basic_credentials()
    if refused is not None:
        response: BaseResponse = authorization_server().handle_error_response(request, refused)
        return response
    throttle = services().throttle
    client_id = _presented_client_id()
    guess = guessing.reserve(
        Guessed(Event.CLIENT_AUTHENTICATION, request.endpoint or "", client_id=client_id[:64]),
        (throttle.client_auth, f"{client_id}|{address_subject(request.remote_addr)}"),
    )
    if isinstance(guess, Blocked):
        refusal = jsonify(error="invalid_client", error_description="too many failed client authentications")
        return guessing.too_many(refusal, guess)
    with guess:
        response = endpoint()
        if _client_authentication_failed(response):
            guess.wrong()
        else:
            guess.right()
    return response


def _malformed_basic_credentials() -> InvalidClientError | None:
    """HTTP Basic credentials that are not base64 of UTF-8 (RFC 7617 2.1) authenticate no one."""
    try:
        extract_basic_authorization(request.headers)
    except ValueError:
        return InvalidClientError(status_code=401, description="malformed Basic credentials")
    return None


def _presented_client_id() -> str:
    """The client id a request claims, before it is authenticated, read the way authlib reads it (HTTP
    Basic percent-decoded and leniently base64-decoded, else the form): disguises count as the client."""
    basic_id, _secret = extract_basic_authorization(request.headers)
    return str(basic_id or request.form.get("client_id", ""))[:200]


def _client_authentication_failed(response: BaseResponse) -> bool:
    """authlib refuses with invalid_client: 401 after HTTP Basic, 400 when the form names no client. (Its
    other 401, unsupported_token_type, answers a client that did authenticate.)"""
    body = response.get_json(silent=True) if response.is_json else None
    return isinstance(body, dict) and body.get("error") == "invalid_client"


@blueprint.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> BaseResponse:
    """OIDC Core 5.3: claims for the bearer of a valid access token with the openid scope."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    claims = services().tokens.verify_access_token(token.strip()) if scheme.lower() == "bearer" else None
    if claims is None or "openid" not in str(claims.get("scope", "")).split() or "grant_id" not in claims:
        return _invalid_token()
    user = durable_store().users.get(claims["sub"])
    if user is None or user.disabled:
        return _invalid_token()
    response = jsonify(user_claims(user, claims["scope"]))
    response.headers["Cache-Control"] = "no-store"
    return response


def _invalid_token() -> BaseResponse:
    """RFC 6750 3.1: the bearer token is missing, expired, revoked or otherwise unusable."""
    response = jsonify(error="invalid_token")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response
