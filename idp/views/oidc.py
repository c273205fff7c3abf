"""Protocol endpoints: authorization (begin and resume), token, userinfo, revocation, introspection."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError
from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import (
    Blueprint,
    jsonify,
    request,
)
from werkzeug.wrappers import Response as BaseResponse

from idp import observability
from idp.auth.pipeline import RequestRejected, requirement_for
from idp.auth.quotas import Usage
from idp.auth.throttle import Blocked
from idp.languages import first_supported
from idp.oidc import dpop
from idp.oidc.authorization_details import InvalidAuthorizationDetails, canonical_json
from idp.oidc.bearer import TokenSentTwice, challenge, presented_token
from idp.oidc.claims import user_claims
from idp.oidc.client_assertions import asserted_client_id
from idp.oidc.clients import GRANT_TYPES, RegisteredClient
from idp.oidc.delivery import RESPONSE_MODES
from idp.oidc.error_descriptions import describe
from idp.oidc.keys import MAX_JWT_LENGTH
from idp.oidc.prompts import Prompt, requested_prompts
from idp.oidc.request_objects import ECHOED
from idp.oidc.request_parameters import kept_parameters
from idp.views import errors, guessing, session_state
from idp.views import sign_in_request as sign_ins
from idp.views.account_selection import ask_for_account
from idp.views.continuation import answer_client_error, answer_protocol_error, continue_sign_in
from idp.views.guessing import Event, Guessed
from idp.views.sign_in_request import ClientRedirect
from idp.web import audit, authorization_server, durable_store, services

blueprint = Blueprint("oidc", __name__)

MAX_PARAMETER_LENGTH = MAX_JWT_LENGTH  # no parameter we accept is longer than the longest token
TOO_MANY_FAILURES = "Too many client authentications failed. Try again later."
TOO_MANY_SIGN_INS = "Too many sign-ins were started from this address. Try again later."
log = logging.getLogger(__name__)


@blueprint.route("/authorize", methods=["GET", "POST"])
def authorize() -> BaseResponse:
    """Validate the request (authlib), fix what it requires (pipeline), then sign the user in."""
    server = authorization_server()
    malformed = _malformed_parameters()
    if malformed is not None:
        return answer_protocol_error(malformed, response_mode=request.values.get("response_mode"))
    try:
        grant = server.get_consent_grant(end_user=session_state.signed_in_user())
    except OAuth2Error as error:
        return answer_protocol_error(error, response_mode=request.values.get("response_mode"))
    payload = grant.request.payload
    redirect_uri: str = payload.redirect_uri or grant.client.get_default_redirect_uri()
    response_mode = payload.data.get("response_mode")
    if response_mode is not None and response_mode not in RESPONSE_MODES:
        return answer_client_error(
            redirect_uri,
            error="invalid_request",
            description="The response mode must be query or form_post.",
            state=payload.state,
            response_mode="query",
        )
    client = grant.client.row
    try:
        details = _authorization_details(payload.data.get("authorization_details"))
    except InvalidAuthorizationDetails as refused:
        return answer_client_error(
            redirect_uri,
            error=refused.error,
            description=refused.get_error_description(),
            state=payload.state,
            response_mode=response_mode,
        )
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
            detail_levels=services().authorization_details.levels(details),
            approval=secrets.token_urlsafe(24) if details else None,
        )
    except RequestRejected as rejected:
        return answer_client_error(
            redirect_uri,
            error=rejected.error,
            description=rejected.description,
            state=payload.state,
            response_mode=response_mode,
        )
    try:
        canonical = {"authorization_details": canonical_json(details).decode()} if details else {}
        data = {**payload.data, **canonical}
        params = kept_parameters(data, redirect_uri=redirect_uri, state=payload.state)
    except OAuth2Error as error:
        return answer_protocol_error(error, response_mode=response_mode)
    destination = ClientRedirect(
        client_id=client.client_id, client_name=client.name, redirect_uri=redirect_uri, params=params
    )
    languages = str(payload.data.get("ui_locales") or "").split()
    language = first_supported(languages)
    sign_in = sign_ins.start(destination, requirement, language=language.tag if language else None)
    if Prompt.SELECT_ACCOUNT in requested_prompts(payload.data.get("prompt")):
        return ask_for_account(sign_in)
    return continue_sign_in(sign_in)


def _authorization_details(raw: str | None) -> tuple[dict[str, Any], ...]:
    """RFC 9396 2: validated against the configured types; none when the request carries none."""
    return () if raw is None else services().authorization_details.validate(raw)


@blueprint.route("/authorize/resume/<sign_in_id>")
def resume(sign_in_id: str) -> BaseResponse:
    sign_in = sign_ins.load(sign_in_id)
    if sign_in is None:
        return errors.sign_in_expired()
    return continue_sign_in(sign_in)


def _malformed_parameters() -> InvalidRequestError | None:
    """RFC 6749 3.1 and 3.2: no parameter repeated (in the query, the body, or across both), none
    longer than any value we issue or accept."""
    for name, values in request.values.lists():
        if len(values) > 1:
            return InvalidRequestError("A parameter is included more than once.")
        if len(name) > MAX_PARAMETER_LENGTH or len(values[0]) > MAX_PARAMETER_LENGTH:
            return InvalidRequestError("A parameter is too long.")
        if name in ECHOED and invalid_error_characters(values[0]):
            return InvalidRequestError(f"The {name} parameter is malformed.")
    return None


@blueprint.route("/token", methods=["POST"])
def token() -> BaseResponse:
    response = _with_client_authentication(
        lambda: authorization_server().create_token_response(), endpoint_name="token"
    )
    grant_type = request.form.get("grant_type", "")
    known = grant_type in GRANT_TYPES
    observability.TOKENS.labels(grant_type if known else "other", str(response.status_code)).inc()
    return response


@blueprint.route("/revoke", methods=["POST"])
def revoke() -> BaseResponse:
    return _with_client_authentication(
        lambda: authorization_server().create_endpoint_response("revocation"), endpoint_name="revocation"
    )


@blueprint.route("/par", methods=["POST"])
def pushed_authorization_request() -> BaseResponse:
    """RFC 9126: idp.oidc.pushed_requests."""
    return _with_client_authentication(
        lambda: authorization_server().create_endpoint_response("pushed_authorization_request"),
        endpoint_name="pushed_authorization_request",
    )


@blueprint.route("/device_authorization", methods=["POST"])
def device_authorization() -> BaseResponse:
    """RFC 8628 3.1: idp.oidc.device_flow; the user goes on at /device (idp.views.device). Each is a
    sign-in started: it counts in the address's quota of them, as at /authorize."""
    found = services()
    quota = found.quotas.sign_ins
    if found.quotas.use(quota, address=request.remote_addr) is not Usage.WITHIN:
        refusal = jsonify(error="slow_down", error_description=TOO_MANY_SIGN_INS)
        refusal.status_code = 429
        refusal.headers["Retry-After"] = str(quota.window)
        return refusal
    response = _with_client_authentication(
        lambda: authorization_server().create_endpoint_response("device_authorization"),
        endpoint_name="device_authorization",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/introspect", methods=["POST"])
def introspect() -> BaseResponse:
    response = _with_client_authentication(
        lambda: authorization_server().create_endpoint_response("introspection"),
        endpoint_name="introspection",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _with_client_authentication(endpoint: Callable[[], BaseResponse], *, endpoint_name: str) -> BaseResponse:
    """Endpoints where clients authenticate: failed authentications back off per client and address.
    A right secret is checked before it would be counted, so it is never counted: only whether its gate
    holds is read (many concurrent requests of one busy client must not make its own gate hold)."""
    refused = _malformed_parameters() or _malformed_basic_credentials()
    if refused is not None:
        response: BaseResponse = authorization_server().handle_error_response(request, refused)
        return response
    throttle = services().throttle
    client_id = _presented_client_id()
    client = authorization_server().context.clients.get(client_id)
    if client is None:
        # An id that names no client has no secret to guess: counting it would only store a key a try.
        response = endpoint()
        audit("client_authentication", "failure", client_id=client_id[:64] or None)
        return response
    attempt = throttle.client_authentication(client_id, request.remote_addr)
    if _presents_right_secret(client, client_id, endpoint_name) and not throttle.holding(attempt):
        return endpoint()
    guess = guessing.reserve(
        Guessed(Event.CLIENT_AUTHENTICATION, request.endpoint or "", client_id=client_id[:64]), attempt
    )
    if isinstance(guess, Blocked):
        refusal = jsonify(error="invalid_client", error_description=TOO_MANY_FAILURES)
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
        return InvalidClientError(status_code=401, description="The Basic credentials are malformed.")
    return None


def _presents_right_secret(client: RegisteredClient, client_id: str, endpoint_name: str) -> bool:
    """The request authenticates as `client_id` with that client's secret, by the one method authlib
    will try (`ProviderServer.authenticate_client`: HTTP Basic when the header is Basic, else the form)."""
    if request.headers.get("Authorization", "").lower().startswith("basic "):
        basic_id, secret = extract_basic_authorization(request.headers)
        method = "client_secret_basic"
    else:
        basic_id, secret = request.form.get("client_id"), request.form.get("client_secret")
        method = "client_secret_post"
    if basic_id != client_id:
        return False
    return client.authenticates_with_secret(secret, method=method, endpoint=endpoint_name)


def _presented_client_id() -> str:
    """The client id a request claims, before it is authenticated, read the way authlib reads it (HTTP
    Basic percent-decoded and leniently base64-decoded, else the form): disguises count as the client."""
    basic_id, _secret = extract_basic_authorization(request.headers)
    return str(basic_id or request.form.get("client_id") or asserted_client_id(request.form) or "")[:200]


def _client_authentication_failed(response: BaseResponse) -> bool:
    """authlib refuses with invalid_client: 401 after HTTP Basic, 400 when the form names no client. (Its
    other 401, unsupported_token_type, answers a client that did authenticate.)"""
    body = response.get_json(silent=True) if response.is_json else None
    return isinstance(body, dict) and body.get("error") == "invalid_client"


@blueprint.route("/userinfo", methods=["GET", "POST"])
def userinfo() -> BaseResponse:
    """OIDC Core 5.3: claims for the bearer of a valid access token with the openid scope; a DPoP-bound
    token only with the DPoP scheme and a proof by its key (RFC 9449 7)."""
    authorization = request.headers.get("Authorization", "")
    with_dpop = dpop.presented_with_dpop(authorization)
    try:
        token = with_dpop or presented_token(
            authorization=authorization, method=request.method, mimetype=request.mimetype, form=request.form
        )
    except TokenSentTwice as refused:
        return challenge("invalid_request", description=refused.description, status=400)
    if token is None:
        return challenge()
    claims = services().tokens.verify_access_token(token)
    if claims is None or "openid" not in str(claims.get("scope", "")).split() or "grant_id" not in claims:
        if with_dpop is not None:  # answered in the scheme it came with (RFC 9449 7.1)
            return _dpop_challenge(dpop.Refusal("invalid_token", describe("invalid_token", None)))
        return challenge("invalid_token")
    verifier = authorization_server().context.dpop
    refusal = dpop.check_presentation(
        sent_with_dpop=with_dpop is not None,
        bound_jkt=dpop.bound_key(claims),
        proof=lambda: verifier.verify(
            request.headers.getlist(dpop.HEADER),
            method=request.method,
            endpoint="/userinfo",
            access_token=token,
        ),
        fresh_nonce=verifier.fresh_nonce,
    )
    if refusal is not None:
        detail = {"endpoint": "userinfo", "reason": refusal.description}
        audit(
            "dpop_proof", "failure", user_id=claims["sub"], client_id=claims.get("client_id"), detail=detail
        )
        return _dpop_challenge(refusal)
    user = durable_store().users.get(claims["sub"])
    if user is None or user.disabled:
        return challenge("invalid_token")
    response = jsonify(user_claims(user, claims["scope"]))
    response.headers["Cache-Control"] = "no-store"
    return response


def _dpop_challenge(refusal: dpop.Refusal) -> BaseResponse:
    """RFC 9449 7.1: 401 with the DPoP challenge, and the nonce to retry with when one is needed (8)."""
    response = jsonify(error=refusal.error, error_description=refusal.description)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = refusal.www_authenticate
    if refusal.nonce is not None:
        response.headers[dpop.NONCE_HEADER] = refusal.nonce
    return response
