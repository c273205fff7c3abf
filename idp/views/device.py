"""The verification page of the device flow (RFC 8628 3.3): the user types the code their device shows,
confirms the application and what it asks for, then signs in as for any application; or denies it.

The user code is a guessed secret: every code typed passes the guessing guard, per address.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.pipeline import RequestRejected
from idp.auth.throttle import Blocked, address_subject
from idp.languages import N_
from idp.oidc import device_flow
from idp.oidc.device_flow import DeviceAuthorization
from idp.views import errors, guessing
from idp.views import sign_in_request as sign_ins
from idp.views.consent import described
from idp.views.continuation import continue_sign_in, device_decided
from idp.views.guessing import Event, Guessed
from idp.views.sign_in_request import DeviceApproval
from idp.web import audit, authorization_server, services
from idp.words import _

blueprint = Blueprint("device", __name__)

MAX_TYPED = 64
WRONG_CODE = N_("That code is not valid or has expired. Check the code your device shows.")


@blueprint.route(device_flow.VERIFICATION_PATH, methods=["GET"])
def enter_code() -> Response:
    """The code form; verification_uri_complete fills it in (?user_code=), the user still submits it."""
    return _code_page(typed=request.args.get("user_code", "")[:MAX_TYPED])


@blueprint.route(device_flow.VERIFICATION_PATH, methods=["POST"])
def check_code() -> BaseResponse:
    """A code (guarded), then the confirmation; `decision` allow signs the user in, deny refuses."""
    typed = request.form.get("user_code", "")[:MAX_TYPED]
    guess = guessing.reserve(
        Guessed(Event.DEVICE_USER_CODE, "user_code"),
        (services().throttle.user_code_address, address_subject(request.remote_addr)),
    )
    if isinstance(guess, Blocked):
        return guessing.too_many(_code_page(typed=typed, error=guess.message), guess)
    with guess:
        code = device_flow.normalized_user_code(typed)
        context = authorization_server().context
        authorization = None if code is None else device_flow.pending_authorization(context, code)
        if authorization is None:
            guess.wrong()
            return _code_page(typed=typed, error=_(WRONG_CODE), status=400)
        guess.right()
    decision = request.form.get("decision")
    if decision is None:
        return _confirm_page(authorization)
    client = context.clients.get(authorization.client_id)
    if decision == "deny" or client is None:
        device_flow.decide(context, authorization, None)
        audit("device_authorization", "refused", client_id=authorization.client_id)
        return device_decided(client.row.name if client else _("The application"), approved=False)
    if decision != "allow":
        return _confirm_page(authorization, status=400)
    try:
        requirement = device_flow.requirement_of(services().policy, client, authorization, now=time.time())
    except RequestRejected as rejected:  # the policy changed since the device asked
        device_flow.decide(context, authorization, None)
        return errors.sign_in_refused(rejected.error, rejected.description)
    destination = DeviceApproval(
        client_id=client.get_client_id(), client_name=client.row.name, user_code=authorization.user_code
    )
    return continue_sign_in(sign_ins.start(destination, requirement))


def _code_page(*, typed: str, error: str | None = None, status: int = 200) -> Response:
    return Response(render_template("device.html", typed=typed, error=error), status=status)


def _confirm_page(authorization: DeviceAuthorization, *, status: int = 200) -> Response:
    client = authorization_server().context.clients.get(authorization.client_id)
    scopes = described(authorization.scope.split())
    body = render_template(
        "device_confirm.html",
        client_name=client.row.name if client else authorization.client_id,
        scopes=scopes,
        user_code=authorization.displayed_user_code,
    )
    return Response(body, status=status)
