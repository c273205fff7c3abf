"""Hosted sign-in pages: each verifies one factor, records the proof, and hands back to the pipeline.

A page acts only when the pipeline asks for what it verifies (`at_step`); otherwise the user is sent
back to the authorization request, which routes them to the page the pipeline does ask for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, Response, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.email_codes import CodeRefused
from idp.auth.pipeline import Fail, NeedEnrolment, NeedFactor, NeedNewPassword, NeedPassword, Step
from idp.auth.policy import METHOD_AMR, Method
from idp.auth.recovery import lookup_key as recovery_lookup_key
from idp.auth.throttle import Blocked, account_subject, address_subject
from idp.config import LevelSettings
from idp.languages import N_
from idp.mail import DeliveryFailed
from idp.management.context import Conflict, Invalid
from idp.management.users import replace_temporary_password
from idp.store.tables import FactorKind, User
from idp.views import approvals, errors, guessing, passkeys, session_state, totp_enrolment
from idp.views import recovery_codes as fresh_codes
from idp.views import sign_in_request as sign_ins
from idp.views.continuation import continue_sign_in, refuse_sign_in
from idp.views.email_codes import send_code
from idp.views.guessing import Event, Guessed
from idp.views.language import localized
from idp.views.management import management_as
from idp.views.sign_in_request import AccountPage, ClientRedirect, SignInRequest
from idp.web import audit, durable_store, services
from idp.words import _

blueprint = Blueprint("signin", __name__, url_prefix="/signin")

WRONG_CREDENTIALS = N_("The username or password is not right.")
MAX_INPUT = 1024
NOT_NOW = N_("This is not what this sign-in needs now.")
RECOVERY_REFUSED = N_("That recovery code is not valid or was used already.")
CANCELLED = "The user cancelled the sign-in."  # the client's error_description (for its developer)
NOT_SAVED = N_("Tick the box once you have saved your recovery codes.")

View = TypeVar("View", bound=Callable[..., Any])


def at_step(
    wanted: type[Step] | tuple[type[Step], ...],
    method: Method | None = None,
    *,
    json: bool = False,
    page_on_last_proof: bool = False,
) -> Callable[[View], View]:
    """Run the view as `view(sign_in, step, user)` when the pipeline's next step is `wanted` (for
    `method`); otherwise send the user back to the sign-in's next page (or answer JSON).

    `page_on_last_proof`: the view's GET only shows the page; it is decided on the account as the
    session's last proof found it (`sign_in_request.preview`, no database read) and gets no user.
    The form it posts is decided on the account read afresh."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(sign_in_id: str) -> BaseResponse:
            sign_in = sign_ins.load(sign_in_id)
            if sign_in is None:
                return passkeys.json_error(_(errors.SIGN_IN_EXPIRED)) if json else errors.sign_in_expired()
            previewed = (
                sign_ins.preview(sign_in.requirement)
                if page_on_last_proof and request.method == "GET"
                else None
            )
            if isinstance(previewed, wanted) and (
                method is None or method in getattr(previewed, "methods", ())
            ):
                shown: BaseResponse = view(sign_in, previewed, None)
                return shown
            # Anything else is decided on the account read afresh: what the last proof saw may be
            # out of date (a method added since), and a page sent back to resume would come here again.
            step, user = sign_ins.decide(sign_in.requirement)
            needs_user = not isinstance(step, NeedPassword)
            offered = method is None or method in getattr(step, "methods", ())
            if not isinstance(step, wanted) or not offered or (needs_user and user is None):
                return passkeys.json_error(_(NOT_NOW), status=409) if json else _resume(sign_in)
            response: BaseResponse = view(sign_in, step, user)
            return response

        return cast(View, guarded)

    return decorate


def _resume(sign_in: SignInRequest) -> BaseResponse:
    return redirect(url_for("oidc.resume", sign_in_id=sign_in.id))


def _field(name: str) -> str:
    return request.form.get(name, "")[:MAX_INPUT]


# -- first factor --------------------------------------------------------------------------------


@blueprint.route("/<sign_in_id>", methods=["GET", "POST"])
@at_step(NeedPassword)
def password(sign_in: SignInRequest, _step: NeedPassword, user: User | None) -> BaseResponse:
    if request.method == "GET":  # signing in again (a step-up, prompt=login): as the session's user
        return _password_page(sign_in, username=user.username if user else "")
    username, password = _field("username").strip(), _field("password")
    throttle = services().throttle
    guess = guessing.reserve(
        Guessed(Event.SIGN_IN, "password", client_id=sign_in.client_id),
        (throttle.password_account, account_subject(username)),
        (throttle.password_address, address_subject(request.remote_addr)),
    )
    if isinstance(guess, Blocked):
        return guessing.too_many(_password_page(sign_in, error=guess.message, username=username), guess)
    with guess:
        user = durable_store().users.by_username_with_factors(username)
        usable = user is not None and not user.disabled
        check = services().passwords.verify(
            stored_hash=user.password_hash if usable and user else None, password=password
        )
        if not check.valid or user is None:
            guess.wrong(user_id=user.id if user else None)
            return _password_page(sign_in, error=_(WRONG_CREDENTIALS), username=username, status=401)
        guess.right()
    if check.new_hash is not None:
        user.password_hash = check.new_hash
    session_state.record_proof(user, Method.PASSWORD, METHOD_AMR[Method.PASSWORD])
    return continue_sign_in(sign_in)


def _password_page(
    sign_in: SignInRequest, *, error: str | None = None, username: str = "", status: int = 200
) -> Response:
    body = render_template(
        "signin_password.html",
        sign_in=sign_in,
        error=error,
        username=username,
        transaction=approvals.transaction_of(sign_in),
    )
    return Response(body, status=status)


@blueprint.route("/<sign_in_id>/password/new", methods=["GET", "POST"])
@at_step(NeedNewPassword)
def new_password(sign_in: SignInRequest, _step: NeedNewPassword, user: User) -> BaseResponse:
    """The one-time password just proven is replaced by the user's own before anything else."""
    if request.method == "GET":
        return _new_password_page(sign_in)
    new, repeated = _field("password"), _field("repeat")
    try:
        if new != repeated:
            raise Invalid(_("The two passwords differ."))
        replace_temporary_password(
            management_as("sign-in", user.id), user, new, keep_sid=session.get(session_state.SID_KEY)
        )
    except Conflict as spent:
        return errors.cannot_continue(str(spent))
    except Invalid as rejected:
        return _new_password_page(sign_in, error=str(rejected), status=400)
    return continue_sign_in(sign_in)


def _new_password_page(sign_in: SignInRequest, *, error: str | None = None, status: int = 200) -> Response:
    min_length = services().settings.passwords.min_length
    body = render_template("signin_new_password.html", sign_in=sign_in, error=error, min_length=min_length)
    return Response(body, status=status)


# -- second factors ------------------------------------------------------------------------------


@blueprint.route("/<sign_in_id>/factor", methods=["GET", "POST"])
@at_step(NeedFactor, page_on_last_proof=True)
def factor(sign_in: SignInRequest, step: NeedFactor, user: User | None) -> BaseResponse:
    """The second-factor page: every method the pipeline offers; the form posted here is TOTP."""
    if request.method == "GET" or Method.TOTP not in step.methods:
        return _factor_page(sign_in, step)
    assert user is not None  # a POST is decided on the account read afresh
    code = _field("code").replace(" ", "")
    refusal = _prove_second_factor(sign_in, step, user, Method.TOTP, lambda: _verify_totp(user, code))
    return refusal or continue_sign_in(sign_in)


def _verify_totp(user: User, code: str) -> str | None:
    """Any of the user's authenticator apps; each accepted code is spent for its time step. The
    refusal says the code was reused only when it was right but its step already spent."""
    now = time.time()
    found = services()
    reused = False
    for candidate in durable_store().factors.of_user(user.id, FactorKind.TOTP):
        assert candidate.secret is not None
        secret = found.secret_box.open(candidate.secret).decode()
        step = found.totp.matching_step(secret=secret, code=code, now=now)
        if step is not None and durable_store().factors.claim_step(candidate.id, step=step, at=int(now)):
            return None
        reused = reused or step is not None
    return _(totp_enrolment.REUSED_CODE if reused else totp_enrolment.WRONG_CODE)


def _prove_second_factor(
    sign_in: SignInRequest, step: NeedFactor, user: User, method: Method, verify: Callable[[], str | None]
) -> Response | None:
    """Throttle, verify one second factor (`verify` answers None, or why it refused), count the
    outcome and record the proof. Returns the refusal page, or None once the factor is proven."""
    guess = guessing.reserve(
        Guessed(Event.SIGN_IN, method.value, client_id=sign_in.client_id, user_id=user.id),
        (services().throttle.second_factor, user.id),
    )
    if isinstance(guess, Blocked):
        return guessing.too_many(_factor_page(sign_in, step, error=guess.message, failed=method), guess)
    with guess:
        refused = verify()
        if refused is not None:
            guess.wrong()
            return _factor_page(sign_in, step, error=refused, status=401, failed=method)
        guess.right()
    approvals.record_proof(user, method, METHOD_AMR[method], approvals.transaction_of(sign_in))
    return None


def _factor_page(
    sign_in: SignInRequest,
    step: NeedFactor,
    *,
    error: str | None = None,
    status: int = 200,
    failed: Method | None = None,
) -> Response:
    """Every method offered; the email code field shows once a code was sent for this sign-in, and
    the method that just `failed` stays open."""
    sent_to = (
        services().email_codes.pending_address(purpose=_email_purpose(sign_in))
        if Method.EMAIL_CODE in step.methods
        else None
    )
    body = render_template(
        "signin_factor.html",
        sign_in=sign_in,
        step=step,
        error=error,
        Method=Method,
        sent_to=mask_address(sent_to) if sent_to else None,
        transaction=approvals.transaction_of(sign_in),
        failed=failed,
        **asked_for(sign_in, step.level),
    )
    return Response(body, status=status)


def asked_for(sign_in: SignInRequest, level_name: str) -> dict[str, str]:
    """What the step-up page says is asked (the level's title and sentence) and why (the description
    of the first requested scope that has one); never the level's own name."""
    policy = services().policy
    level = next((level for level in policy.levels if level.name == level_name), None)
    scopes = (
        sign_in.destination.params.get("scope", "") if isinstance(sign_in.destination, ClientRedirect) else ""
    )
    reasons = [
        rule.description
        for scope in scopes.split()
        if (rule := policy.scope_rules.get(scope)) and rule.description
    ]
    return {
        "level_title": localized(level.title if level else LevelSettings.model_fields["title"].default),
        "level_sentence": localized(level.sentence) if level and level.sentence else "",
        "reason": localized(reasons[0]) if reasons else "",
    }


def _email_purpose(sign_in: SignInRequest) -> str:
    return f"signin:{sign_in.id}"


@blueprint.route("/<sign_in_id>/recovery", methods=["POST"])
@at_step(NeedFactor, Method.RECOVERY_CODE)
def recovery_code(sign_in: SignInRequest, step: NeedFactor, user: User) -> BaseResponse:
    """A recovery code in place of the second factor: single use, then the user is urged to review."""
    store = durable_store()
    code = recovery_lookup_key(_field("recovery_code"))
    refusal = _prove_second_factor(
        sign_in,
        step,
        user,
        Method.RECOVERY_CODE,
        lambda: None if store.factors.consume(user.id, code) else _(RECOVERY_REFUSED),
    )
    if refusal is not None:
        return refusal
    audit("recovery_code_used", "success", user_id=user.id, client_id=sign_in.client_id)
    left = len(store.factors.of_user(user.id, FactorKind.RECOVERY_CODE))
    next_url = url_for("oidc.resume", sign_in_id=sign_in.id)
    return Response(render_template("recovery_used.html", left=left, next_url=next_url))


@blueprint.route("/<sign_in_id>/email/send", methods=["POST"])
@at_step(NeedFactor, Method.EMAIL_CODE)
def send_email_code(sign_in: SignInRequest, step: NeedFactor, user: User) -> BaseResponse:
    address = durable_store().factors.of_user(user.id, FactorKind.EMAIL)[0].name
    try:
        send_code(
            user,
            purpose=_email_purpose(sign_in),
            address=address,
            reason=_("confirm it is you"),
            app=sign_in.client_name,
        )
    except CodeRefused as refused:
        return _factor_page(sign_in, step, error=str(refused), status=429)
    except DeliveryFailed:
        error = _("The code could not be sent. Use another method or try again later.")
        return _factor_page(sign_in, step, error=error, status=502)
    return _factor_page(sign_in, step)


@blueprint.route("/<sign_in_id>/email", methods=["POST"])
@at_step(NeedFactor, Method.EMAIL_CODE)
def email_code(sign_in: SignInRequest, step: NeedFactor, user: User) -> BaseResponse:
    code = _field("email_code")

    def verify() -> str | None:
        try:
            services().email_codes.verify(purpose=_email_purpose(sign_in), code=code)
        except CodeRefused as refused:
            return str(refused)
        return None

    return _prove_second_factor(sign_in, step, user, Method.EMAIL_CODE, verify) or continue_sign_in(sign_in)


def mask_address(address: str) -> str:
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


@blueprint.route("/<sign_in_id>/cancel", methods=["POST"])
def cancel(sign_in_id: str) -> BaseResponse:
    """ "Cancel and go back": the client hears access_denied (with state and iss); the provider's own
    pages send the user back to the start page."""
    sign_in = sign_ins.load(sign_in_id)
    if sign_in is None:
        return errors.sign_in_expired()
    if isinstance(sign_in.destination, AccountPage):
        sign_ins.finish(sign_in)
        return redirect(url_for("home.index"))
    return refuse_sign_in(sign_in, Fail("access_denied", CANCELLED), session_state.signed_in_user())


# -- passkeys: alone (first page) or as the second factor ------------------------------------------


@blueprint.route("/<sign_in_id>/passkey/options", methods=["POST"])
@at_step((NeedPassword, NeedFactor), json=True)
def passkey_options(sign_in: SignInRequest, step: Step, user: User | None) -> BaseResponse:
    """Options for a passkey alone (usernameless, user verification required) or as a second factor."""
    usage = passkeys.usage_for(step, user, transaction=approvals.transaction_of(sign_in))
    if usage is None:
        return passkeys.json_error(_(NOT_NOW), status=409)
    return passkeys.begin_authentication(usage)


@blueprint.route("/<sign_in_id>/passkey", methods=["POST"])
@at_step((NeedPassword, NeedFactor), json=True)
def passkey(sign_in: SignInRequest, step: Step, user: User | None) -> BaseResponse:
    usage = passkeys.usage_for(step, user, transaction=approvals.transaction_of(sign_in))
    if usage is None:
        return passkeys.json_error(_(NOT_NOW), status=409)
    next_url = url_for("oidc.resume", sign_in_id=sign_in.id)
    return passkeys.finish_authentication(usage, client_id=sign_in.client_id, next_url=next_url)


# -- enrolment inside the sign-in ------------------------------------------------------------------


@blueprint.route("/<sign_in_id>/enrol/totp", methods=["GET", "POST"])
@at_step(NeedEnrolment, Method.TOTP)
def enrol_totp(sign_in: SignInRequest, step: NeedEnrolment, user: User) -> BaseResponse:
    """MFA is mandatory: a user without a second factor sets up TOTP inside the same sign-in."""
    key = f"enrol:{user.id}"  # per user: a sign-in restarted after a failure shows the same secret
    enrolment = totp_enrolment.draft(user, key=key)
    if request.method == "GET":
        return _enrol_page(sign_in, step, enrolment)
    code = _field("code").replace(" ", "")
    client_id = sign_in.client_id
    if totp_enrolment.confirm(user, key=key, code=code, name=_field("name"), client_id=client_id) is None:
        return _enrol_page(sign_in, step, enrolment, error=_(totp_enrolment.WRONG_CODE), status=401)
    session_state.record_proof(user, Method.TOTP, METHOD_AMR[Method.TOTP])
    if _issue_first_recovery_codes(user):
        return redirect(url_for("signin.first_recovery_codes", sign_in_id=sign_in.id))
    return continue_sign_in(sign_in)


def _enrol_page(
    sign_in: SignInRequest,
    step: NeedEnrolment,
    enrolment: object,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    """The authenticator app, and first a passkey where the pipeline offers one (shown where the
    browser can make one)."""
    body = render_template(
        "enrol_totp.html",
        sign_in=sign_in,
        enrolment=enrolment,
        error=error,
        offers_passkey=Method.WEBAUTHN in step.methods,
        **asked_for(sign_in, step.level),
    )
    response = Response(body, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/<sign_in_id>/enrol/passkey", methods=["GET"])
@at_step(NeedEnrolment, Method.WEBAUTHN)
def enrol_passkey(sign_in: SignInRequest, step: NeedEnrolment, _user: User) -> BaseResponse:
    """Step-up to a level only a passkey reaches, when policy lets the user enrol one here."""
    asked = asked_for(sign_in, step.level)
    body = render_template(
        "passkey_new.html",
        lead=_(
            "%(app)s asks for %(level)s. Create one now; you will then use it once to continue.",
            app=sign_in.client_name,
            level=asked["level_title"],
        ),
        options_url=url_for("signin.enrol_passkey_options", sign_in_id=sign_in.id),
        verify_url=url_for("signin.enrol_passkey_finish", sign_in_id=sign_in.id),
        back_url=None,
    )
    return Response(body)


@blueprint.route("/<sign_in_id>/enrol/passkey/options", methods=["POST"])
@at_step(NeedEnrolment, Method.WEBAUTHN, json=True)
def enrol_passkey_options(_sign_in: SignInRequest, _step: NeedEnrolment, user: User) -> BaseResponse:
    return passkeys.begin_registration(user)


@blueprint.route("/<sign_in_id>/enrol/passkey", methods=["POST"])
@at_step(NeedEnrolment, Method.WEBAUTHN, json=True)
def enrol_passkey_finish(sign_in: SignInRequest, _step: NeedEnrolment, user: User) -> BaseResponse:
    """The new passkey, then (the first factor of the account) its recovery codes; then it is used."""
    first = not durable_store().factors.of_user(user.id, FactorKind.RECOVERY_CODE)
    next_url = url_for("signin.first_recovery_codes" if first else "oidc.resume", sign_in_id=sign_in.id)
    response = passkeys.finish_registration(user, next_url=next_url)
    if response.status_code == 200 and first:
        _issue_first_recovery_codes(user)
    return response


# -- recovery codes, right after the first second factor ------------------------------------------


def _issue_first_recovery_codes(user: User) -> bool:
    """An account's first second factor comes with recovery codes: issued now, shown next."""
    if durable_store().factors.of_user(user.id, FactorKind.RECOVERY_CODE):
        return False
    fresh_codes.issue(user)
    audit("factor_enrolment", "success", user_id=user.id, detail={"kind": FactorKind.RECOVERY_CODE})
    return True


@blueprint.route("/<sign_in_id>/recovery-codes", methods=["GET", "POST"])
def first_recovery_codes(sign_in_id: str) -> BaseResponse:
    """Shown once; the sign-in goes on when the user says they saved them."""
    sign_in = sign_ins.load(sign_in_id)
    if sign_in is None:
        return errors.sign_in_expired()
    user = session_state.signed_in_user()
    codes = fresh_codes.shown(user) if user else None
    if codes is None:
        return _resume(sign_in)
    if request.method == "POST" and request.form.get("saved") == "yes":
        fresh_codes.forget()
        return continue_sign_in(sign_in)
    error = _(NOT_SAVED) if request.method == "POST" else None
    body = render_template("first_recovery_codes.html", sign_in=sign_in, codes=codes, error=error)
    response = Response(body, status=400 if error else 200)
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.route("/<sign_in_id>/recovery-codes.txt")
def download_first_recovery_codes(sign_in_id: str) -> BaseResponse:
    sign_in = sign_ins.load(sign_in_id)
    user = session_state.signed_in_user()
    if sign_in is None or user is None:
        return errors.sign_in_expired()
    return fresh_codes.download(user) or redirect(
        url_for("signin.first_recovery_codes", sign_in_id=sign_in_id)
    )
