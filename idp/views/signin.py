"""Hosted sign-in pages: each verifies one factor, records the proof, and hands back to the pipeline."""

from __future__ import annotations

import time

from flask import Blueprint, Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.email_codes import CodeRefused
from idp.auth.factors import EMAIL, RECOVERY_CODE
from idp.auth.pipeline import NeedEnrolment, NeedFactor, NeedPassword, Step
from idp.auth.policy import Amr, Method
from idp.auth.recovery import lookup_key as recovery_lookup_key
from idp.mail import DeliveryFailed
from idp.views import flow, passkeys, totp_enrolment
from idp.views.email_codes import send_code
from idp.web import audit, durable_store, services

blueprint = Blueprint("signin", __name__, url_prefix="/signin")

WRONG_CREDENTIALS = "The username or password is not right."
MAX_INPUT = 1024
EXPIRED = "This sign-in has expired or was already completed. Return to the application and start again."
NOT_NOW = "A passkey is not what this sign-in needs now."


def _resume(pending: flow.PendingAuthorization) -> BaseResponse:
    return redirect(url_for("oidc.resume", pending_id=pending.id))


def _pending_or_none(pending_id: str) -> flow.PendingAuthorization | None:
    return flow.load_pending(pending_id)


def _expired() -> BaseResponse:
    return Response(render_template("error.html", title="Sign-in expired", message=EXPIRED), status=400)


def _field(name: str) -> str:
    return request.form.get(name, "")[:MAX_INPUT]


@blueprint.route("/<pending_id>", methods=["GET", "POST"])
def password(pending_id: str) -> BaseResponse:
    pending = _pending_or_none(pending_id)
    if pending is None:
        return _expired()
    step, _user = flow.decide(pending)
    if not isinstance(step, NeedPassword):
        return _resume(pending)
    if request.method == "GET":
        return _password_page(pending)
    username, password = _field("username").strip(), _field("password")
    store = durable_store()
    user = store.users.by_username(username)
    usable = user is not None and not user.disabled
    check = services().passwords.verify(
        stored_hash=user.password_hash if usable and user else None, password=password
    )
    if not check.valid or user is None:
        audit(
            "sign_in",
            "failure",
            user_id=user.id if user else None,
            client_id=pending.client_id,
            detail={"step": "password"},
        )
        return _password_page(pending, error=WRONG_CREDENTIALS, username=username, status=401)
    if check.new_hash is not None:
        user.password_hash = check.new_hash
    flow.record_proof(user, Method.PASSWORD, frozenset({Amr.PWD}))
    return _resume(pending)


def _password_page(
    pending: flow.PendingAuthorization, *, error: str | None = None, username: str = "", status: int = 200
) -> BaseResponse:
    body = render_template("signin_password.html", pending=pending, error=error, username=username)
    return Response(body, status=status)


@blueprint.route("/<pending_id>/factor", methods=["GET", "POST"])
def factor(pending_id: str) -> BaseResponse:
    pending = _pending_or_none(pending_id)
    if pending is None:
        return _expired()
    step, user = flow.decide(pending)
    if not isinstance(step, NeedFactor) or user is None:
        return _resume(pending)
    if request.method == "GET" or Method.TOTP not in step.methods:
        return _factor_page(pending, step)
    code = _field("code").replace(" ", "")
    now = time.time()
    secret_box = services().secret_box
    for candidate in flow.factor_of(user, "totp"):
        assert candidate.secret is not None
        secret = secret_box.open(candidate.secret).decode()
        if services().totp.verify(factor_id=candidate.id, secret=secret, code=code, now=now):
            durable_store().factors.mark_used(candidate.id, int(now))
            flow.record_proof(user, Method.TOTP, frozenset({Amr.OTP}))
            return _resume(pending)
    audit("sign_in", "failure", user_id=user.id, client_id=pending.client_id, detail={"step": "totp"})
    return _factor_page(pending, step, error=totp_enrolment.WRONG_CODE, status=401)


def _factor_page(
    pending: flow.PendingAuthorization,
    step: Step,
    *,
    error: str | None = None,
    status: int = 200,
    sent_to: str | None = None,
) -> BaseResponse:
    body = render_template(
        "signin_factor.html", pending=pending, step=step, error=error, Method=Method, sent_to=sent_to
    )
    return Response(body, status=status)


@blueprint.route("/<pending_id>/recovery", methods=["POST"])
def recovery_code(pending_id: str) -> BaseResponse:
    """A recovery code in place of the second factor: single use, then the user is urged to review."""
    pending = _pending_or_none(pending_id)
    if pending is None:
        return _expired()
    step, user = flow.decide(pending)
    if not isinstance(step, NeedFactor) or Method.RECOVERY_CODE not in step.methods or user is None:
        return _resume(pending)
    store = durable_store()
    if not store.factors.consume(user.id, recovery_lookup_key(_field("recovery_code"))):
        audit(
            "sign_in",
            "failure",
            user_id=user.id,
            client_id=pending.client_id or None,
            detail={"step": "recovery_code"},
        )
        return _factor_page(
            pending, step, error="That recovery code is not valid or was used already.", status=401
        )
    audit("recovery_code_used", "success", user_id=user.id, client_id=pending.client_id or None)
    flow.record_proof(user, Method.RECOVERY_CODE, frozenset({Amr.OTP}))
    left = len(store.factors.of_user(user.id, RECOVERY_CODE))
    body = render_template(
        "recovery_used.html", left=left, next_url=url_for("oidc.resume", pending_id=pending.id)
    )
    return Response(body)


@blueprint.route("/<pending_id>/email/send", methods=["POST"])
def send_email_code(pending_id: str) -> BaseResponse:
    pending = _pending_or_none(pending_id)
    if pending is None:
        return _expired()
    step, user = flow.decide(pending)
    if not isinstance(step, NeedFactor) or Method.EMAIL_CODE not in step.methods or user is None:
        return _resume(pending)
    addresses = [f.name for f in flow.factor_of(user, EMAIL)]
    try:
        send_code(user, purpose=f"signin:{pending.id}", address=addresses[0], reason="confirm it is you")
    except CodeRefused as refused:
        return _factor_page(pending, step, error=str(refused), status=429)
    except DeliveryFailed:
        return _factor_page(
            pending,
            step,
            status=502,
            error="The code could not be sent. Use another method or try again later.",
        )
    return _factor_page(pending, step, sent_to=mask_address(addresses[0]))


@blueprint.route("/<pending_id>/email", methods=["POST"])
def email_code(pending_id: str) -> BaseResponse:
    pending = _pending_or_none(pending_id)
    if pending is None:
        return _expired()
    step, user = flow.decide(pending)
    if not isinstance(step, NeedFactor) or Method.EMAIL_CODE not in step.methods or user is None:
        return _resume(pending)
    try:
        services().email_codes.verify(purpose=f"signin:{pending.id}", code=_field("email_code"))
    except CodeRefused as refused:
        audit(
            "sign_in",
            "failure",
            user_id=user.id,
            client_id=pending.client_id or None,
            detail={"step": "email_code"},
        )
        return _factor_page(pending, step, error=str(refused), status=401)
    flow.record_proof(user, Method.EMAIL_CODE, frozenset({Amr.EMAIL}))
    return _resume(pending)


def mask_address(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


@blueprint.route("/<pending_id>/passkey/options", methods=["POST"])
def passkey_options(pending_id: str) -> BaseResponse:
    """Options for a passkey alone (usernameless, user verification required) or as a second factor."""
    pending = _pending_or_none(pending_id)
    if pending is None:
        return passkeys.json_error(EXPIRED)
    step, user = flow.decide(pending)
    usage = passkeys.usage_for(step, user)
    if usage is None:
        return passkeys.json_error(NOT_NOW, status=409)
    return passkeys.begin_authentication(usage)


@blueprint.route("/<pending_id>/passkey", methods=["POST"])
def passkey(pending_id: str) -> BaseResponse:
    pending = _pending_or_none(pending_id)
    if pending is None:
        return passkeys.json_error(EXPIRED)
    step, user = flow.decide(pending)
    usage = passkeys.usage_for(step, user)
    if usage is None:
        return passkeys.json_error(NOT_NOW, status=409)
    return passkeys.finish_authentication(
        usage, client_id=pending.client_id, next_url=url_for("oidc.resume", pending_id=pending.id)
    )


@blueprint.route("/<pending_id>/enrol/passkey", methods=["GET", "POST"])
def enrol_passkey(pending_id: str) -> BaseResponse:
    """Step-up to a level only a passkey reaches, when policy lets the user enrol one here."""
    pending = _pending_or_none(pending_id)
    if pending is None:
        return _expired()
    step, user = flow.decide(pending)
    if not isinstance(step, NeedEnrolment) or Method.WEBAUTHN not in step.methods or user is None:
        return _resume(pending) if request.method == "GET" else passkeys.json_error(NOT_NOW, status=409)
    if request.method == "POST":
        return passkeys.finish_registration(user, next_url=url_for("oidc.resume", pending_id=pending.id))
    body = render_template(
        "passkey_new.html",
        lead=f"{pending.client_name} asks for a passkey or security key ({step.level}). Create one now; "
        "you will then use it once to continue.",
        options_url=url_for("signin.enrol_passkey_options", pending_id=pending.id),
        verify_url=url_for("signin.enrol_passkey", pending_id=pending.id),
        back_url=None,
    )
    return Response(body)


@blueprint.route("/<pending_id>/enrol/passkey/options", methods=["POST"])
def enrol_passkey_options(pending_id: str) -> BaseResponse:
    pending = _pending_or_none(pending_id)
    if pending is None:
        return passkeys.json_error(EXPIRED)
    step, user = flow.decide(pending)
    if not isinstance(step, NeedEnrolment) or Method.WEBAUTHN not in step.methods or user is None:
        return passkeys.json_error(NOT_NOW, status=409)
    return passkeys.begin_registration(user)


@blueprint.route("/<pending_id>/enrol/totp", methods=["GET", "POST"])
def enrol_totp(pending_id: str) -> BaseResponse:
    """MFA is mandatory: a user without a second factor sets up TOTP inside the same sign-in."""
    pending = _pending_or_none(pending_id)
    if pending is None:
        return _expired()
    step, user = flow.decide(pending)
    if not isinstance(step, NeedEnrolment) or Method.TOTP not in step.methods or user is None:
        return _resume(pending)
    key = f"enrol:{pending.id}"
    enrolment = totp_enrolment.draft(user, key=key)
    if request.method == "GET":
        return _enrol_page(pending, enrolment)
    code = _field("code").replace(" ", "")
    factor = totp_enrolment.confirm(
        user, key=key, code=code, name=_field("name"), client_id=pending.client_id or None
    )
    if factor is None:
        return _enrol_page(pending, enrolment, error=totp_enrolment.WRONG_CODE, status=401)
    flow.record_proof(user, Method.TOTP, frozenset({Amr.OTP}))
    return _resume(pending)


def _enrol_page(
    pending: flow.PendingAuthorization, enrolment: object, *, error: str | None = None, status: int = 200
) -> BaseResponse:
    body = render_template("enrol_totp.html", pending=pending, enrolment=enrolment, error=error)
    response = Response(body, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response
