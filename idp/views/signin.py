"""Hosted sign-in pages: each verifies one factor, records the proof, and hands back to the pipeline.

A page acts only when the pipeline asks for what it verifies (`at_step`); otherwise the user is sent
back to the authorization request, which routes them to the page the pipeline does ask for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp import observability
from idp.auth.email_codes import CodeRefused
from idp.auth.factors import EMAIL, RECOVERY_CODE, TOTP
from idp.auth.pipeline import NeedEnrolment, NeedFactor, NeedPassword, Step
from idp.auth.policy import Amr, Method
from idp.auth.recovery import lookup_key as recovery_lookup_key
from idp.auth.throttle import Blocked, Gate, account_subject, address_subject
from idp.mail import DeliveryFailed
from idp.store.tables import User
from idp.views import flow, oidc, passkeys, totp_enrolment
from idp.views.email_codes import send_code
from idp.web import audit, durable_store, services

blueprint = Blueprint("signin", __name__, url_prefix="/signin")

WRONG_CREDENTIALS = "The username or password is not right."
MAX_INPUT = 1024
EXPIRED = "This sign-in has expired or was already completed. Return to the application and start again."
NOT_NOW = "This is not what this sign-in needs now."
RECOVERY_REFUSED = "That recovery code is not valid or was used already."

Pending = flow.PendingAuthorization
View = TypeVar("View", bound=Callable[..., Any])


def at_step(
    wanted: type[Step] | tuple[type[Step], ...], method: Method | None = None, *, json: bool = False
) -> Callable[[View], View]:
    """Run the view as `view(pending, step, user)` when the pipeline's next step is `wanted` (for
    `method`); otherwise send the user back to the authorization request (or answer JSON)."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(pending_id: str) -> BaseResponse:
            pending = flow.load_pending(pending_id)
            if pending is None:
                return passkeys.json_error(EXPIRED) if json else _expired()
            step, user = flow.decide(pending)
            needs_user = not isinstance(step, NeedPassword)
            offered = method is None or method in getattr(step, "methods", ())
            if not isinstance(step, wanted) or not offered or (needs_user and user is None):
                return passkeys.json_error(NOT_NOW, status=409) if json else _resume(pending)
            response: BaseResponse = view(pending, step, user)
            return response

        return guarded  # type: ignore[return-value]

    return decorate


def _resume(pending: Pending) -> BaseResponse:
    return redirect(url_for("oidc.resume", pending_id=pending.id))


def _next(pending: Pending) -> BaseResponse:
    """After a proof: straight on to what the pipeline asks next (a page, or the client's code)."""
    return oidc.continue_sign_in(pending)


def _expired() -> BaseResponse:
    return Response(render_template("error.html", title="Sign-in expired", message=EXPIRED), status=400)


def _field(name: str) -> str:
    return request.form.get(name, "")[:MAX_INPUT]


def _refused(pending: Pending, user: User | None, step_name: str, *attempts: tuple[Gate, str]) -> None:
    """Audit a failed step and count it against its throttles."""
    for gate, subject in attempts:
        services().throttle.failed(gate, subject)
    observability.SIGN_INS.labels("failure", "").inc()
    audit(
        "sign_in",
        "failure",
        user_id=user.id if user else None,
        client_id=pending.client_id or None,
        detail={"step": step_name},
    )


def _throttled(
    pending: Pending, user: User | None, step_name: str, *attempts: tuple[Gate, str]
) -> Blocked | None:
    """Whether guessing is paused for these subjects; audited when it is."""
    blocked = services().throttle.blocked(*attempts)
    if blocked is not None:
        observability.SIGN_INS.labels("throttled", "").inc()
        audit(
            "sign_in",
            "throttled",
            user_id=user.id if user else None,
            client_id=pending.client_id or None,
            detail={"step": step_name, "retry_after": blocked.retry_after, "locked": blocked.locked},
        )
    return blocked


def _second_factor_attempt(user: User) -> tuple[Gate, str]:
    return (services().throttle.second_factor, user.id)


def _too_many(response: Response, blocked: Blocked) -> Response:
    response.status_code = 429
    if blocked.retry_after:
        response.headers["Retry-After"] = str(blocked.retry_after)
    return response


# -- first factor --------------------------------------------------------------------------------


@blueprint.route("/<pending_id>", methods=["GET", "POST"])
@at_step(NeedPassword)
def password(pending: Pending, _step: NeedPassword, _user: User | None) -> BaseResponse:
    if request.method == "GET":
        return _password_page(pending)
    username, password = _field("username").strip(), _field("password")
    throttle = services().throttle
    attempts = (
        (throttle.password_account, account_subject(username)),
        (throttle.password_address, address_subject(request.remote_addr)),
    )
    blocked = _throttled(pending, None, "password", *attempts)
    if blocked is not None:
        return _too_many(_password_page(pending, error=blocked.message, username=username), blocked)
    user = durable_store().users.by_username(username)
    usable = user is not None and not user.disabled
    check = services().passwords.verify(
        stored_hash=user.password_hash if usable and user else None, password=password
    )
    if not check.valid or user is None:
        _refused(pending, user, "password", *attempts)
        return _password_page(pending, error=WRONG_CREDENTIALS, username=username, status=401)
    throttle.succeeded(*attempts[0])
    if check.new_hash is not None:
        user.password_hash = check.new_hash
    flow.record_proof(user, Method.PASSWORD, frozenset({Amr.PWD}))
    return _next(pending)


def _password_page(
    pending: Pending, *, error: str | None = None, username: str = "", status: int = 200
) -> Response:
    body = render_template("signin_password.html", pending=pending, error=error, username=username)
    return Response(body, status=status)


# -- second factors ------------------------------------------------------------------------------


@blueprint.route("/<pending_id>/factor", methods=["GET", "POST"])
@at_step(NeedFactor)
def factor(pending: Pending, step: NeedFactor, user: User) -> BaseResponse:
    """The second-factor page: every method the pipeline offers; the form posted here is TOTP."""
    if request.method == "GET" or Method.TOTP not in step.methods:
        return _factor_page(pending, step)
    code = _field("code").replace(" ", "")
    refusal = _prove_second_factor(pending, step, user, Method.TOTP, lambda: _verify_totp(user, code))
    return refusal or _next(pending)


def _verify_totp(user: User, code: str) -> str | None:
    """Any of the user's authenticator apps; each accepted code is spent for its time step."""
    now = time.time()
    found = services()
    for candidate in flow.factor_of(user, TOTP):
        assert candidate.secret is not None
        secret = found.secret_box.open(candidate.secret).decode()
        step = found.totp.matching_step(secret=secret, code=code, now=now)
        if step is not None and durable_store().factors.claim_step(candidate.id, step=step, at=int(now)):
            return None
    return totp_enrolment.WRONG_CODE


SECOND_FACTOR_AMR = {
    Method.TOTP: frozenset({Amr.OTP}),
    Method.RECOVERY_CODE: frozenset({Amr.OTP}),
    Method.EMAIL_CODE: frozenset({Amr.EMAIL}),
}


def _prove_second_factor(
    pending: Pending, step: NeedFactor, user: User, method: Method, verify: Callable[[], str | None]
) -> Response | None:
    """Throttle, verify one second factor (`verify` answers None, or why it refused), count the
    outcome and record the proof. Returns the refusal page, or None once the factor is proven."""
    attempt = _second_factor_attempt(user)
    blocked = _throttled(pending, user, method.value, attempt)
    if blocked is not None:
        return _too_many(_factor_page(pending, step, error=blocked.message), blocked)
    refused = verify()
    if refused is not None:
        _refused(pending, user, method.value, attempt)
        return _factor_page(pending, step, error=refused, status=401)
    services().throttle.succeeded(*attempt)
    flow.record_proof(user, method, SECOND_FACTOR_AMR[method])
    return None


def _factor_page(
    pending: Pending, step: NeedFactor, *, error: str | None = None, status: int = 200
) -> Response:
    """Every method offered; the email code field shows once a code was sent for this sign-in."""
    sent_to = (
        services().email_codes.pending_address(purpose=_email_purpose(pending))
        if Method.EMAIL_CODE in step.methods
        else None
    )
    body = render_template(
        "signin_factor.html",
        pending=pending,
        step=step,
        error=error,
        Method=Method,
        sent_to=mask_address(sent_to) if sent_to else None,
    )
    return Response(body, status=status)


def _email_purpose(pending: Pending) -> str:
    return f"signin:{pending.id}"


@blueprint.route("/<pending_id>/recovery", methods=["POST"])
@at_step(NeedFactor, Method.RECOVERY_CODE)
def recovery_code(pending: Pending, step: NeedFactor, user: User) -> BaseResponse:
    """A recovery code in place of the second factor: single use, then the user is urged to review."""
    store = durable_store()
    code = recovery_lookup_key(_field("recovery_code"))
    refusal = _prove_second_factor(
        pending,
        step,
        user,
        Method.RECOVERY_CODE,
        lambda: None if store.factors.consume(user.id, code) else RECOVERY_REFUSED,
    )
    if refusal is not None:
        return refusal
    audit("recovery_code_used", "success", user_id=user.id, client_id=pending.client_id or None)
    left = len(store.factors.of_user(user.id, RECOVERY_CODE))
    next_url = url_for("oidc.resume", pending_id=pending.id)
    return Response(render_template("recovery_used.html", left=left, next_url=next_url))


@blueprint.route("/<pending_id>/email/send", methods=["POST"])
@at_step(NeedFactor, Method.EMAIL_CODE)
def send_email_code(pending: Pending, step: NeedFactor, user: User) -> BaseResponse:
    address = flow.factor_of(user, EMAIL)[0].name
    try:
        send_code(user, purpose=_email_purpose(pending), address=address, reason="confirm it is you")
    except CodeRefused as refused:
        return _factor_page(pending, step, error=str(refused), status=429)
    except DeliveryFailed:
        error = "The code could not be sent. Use another method or try again later."
        return _factor_page(pending, step, error=error, status=502)
    return _factor_page(pending, step)


@blueprint.route("/<pending_id>/email", methods=["POST"])
@at_step(NeedFactor, Method.EMAIL_CODE)
def email_code(pending: Pending, step: NeedFactor, user: User) -> BaseResponse:
    code = _field("email_code")

    def verify() -> str | None:
        try:
            services().email_codes.verify(purpose=_email_purpose(pending), code=code)
        except CodeRefused as refused:
            return str(refused)
        return None

    return _prove_second_factor(pending, step, user, Method.EMAIL_CODE, verify) or _next(pending)


def mask_address(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


# -- passkeys: alone (first page) or as the second factor ------------------------------------------


@blueprint.route("/<pending_id>/passkey/options", methods=["POST"])
@at_step((NeedPassword, NeedFactor), json=True)
def passkey_options(_pending: Pending, step: Step, user: User | None) -> BaseResponse:
    """Options for a passkey alone (usernameless, user verification required) or as a second factor."""
    usage = passkeys.usage_for(step, user)
    return passkeys.json_error(NOT_NOW, status=409) if usage is None else passkeys.begin_authentication(usage)


@blueprint.route("/<pending_id>/passkey", methods=["POST"])
@at_step((NeedPassword, NeedFactor), json=True)
def passkey(pending: Pending, step: Step, user: User | None) -> BaseResponse:
    usage = passkeys.usage_for(step, user)
    if usage is None:
        return passkeys.json_error(NOT_NOW, status=409)
    next_url = url_for("oidc.resume", pending_id=pending.id)
    return passkeys.finish_authentication(usage, client_id=pending.client_id, next_url=next_url)


# -- enrolment inside the sign-in ------------------------------------------------------------------


@blueprint.route("/<pending_id>/enrol/totp", methods=["GET", "POST"])
@at_step(NeedEnrolment, Method.TOTP)
def enrol_totp(pending: Pending, _step: NeedEnrolment, user: User) -> BaseResponse:
    """MFA is mandatory: a user without a second factor sets up TOTP inside the same sign-in."""
    key = f"enrol:{user.id}"  # per user: a sign-in restarted after a failure shows the same secret
    enrolment = totp_enrolment.draft(user, key=key)
    if request.method == "GET":
        return _enrol_page(pending, enrolment)
    code = _field("code").replace(" ", "")
    client_id = pending.client_id or None
    if totp_enrolment.confirm(user, key=key, code=code, name=_field("name"), client_id=client_id) is None:
        return _enrol_page(pending, enrolment, error=totp_enrolment.WRONG_CODE, status=401)
    flow.record_proof(user, Method.TOTP, frozenset({Amr.OTP}))
    return _next(pending)


def _enrol_page(
    pending: Pending, enrolment: object, *, error: str | None = None, status: int = 200
) -> Response:
    body = render_template("enrol_totp.html", pending=pending, enrolment=enrolment, error=error)
    response = Response(body, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/<pending_id>/enrol/passkey", methods=["GET"])
@at_step(NeedEnrolment, Method.WEBAUTHN)
def enrol_passkey(pending: Pending, step: NeedEnrolment, _user: User) -> BaseResponse:
    """Step-up to a level only a passkey reaches, when policy lets the user enrol one here."""
    body = render_template(
        "passkey_new.html",
        lead=f"{pending.client_name} asks for a passkey or security key ({step.level}). Create one now; "
        "you will then use it once to continue.",
        options_url=url_for("signin.enrol_passkey_options", pending_id=pending.id),
        verify_url=url_for("signin.enrol_passkey_finish", pending_id=pending.id),
        back_url=None,
    )
    return Response(body)


@blueprint.route("/<pending_id>/enrol/passkey/options", methods=["POST"])
@at_step(NeedEnrolment, Method.WEBAUTHN, json=True)
def enrol_passkey_options(_pending: Pending, _step: NeedEnrolment, user: User) -> BaseResponse:
    return passkeys.begin_registration(user)


@blueprint.route("/<pending_id>/enrol/passkey", methods=["POST"])
@at_step(NeedEnrolment, Method.WEBAUTHN, json=True)
def enrol_passkey_finish(pending: Pending, _step: NeedEnrolment, user: User) -> BaseResponse:
    return passkeys.finish_registration(user, next_url=url_for("oidc.resume", pending_id=pending.id))
