"""Forgotten passwords: a single-use link to a verified address, then a second factor, then a new
password; the pipeline decides when the reset is confirmed (`SetPassword`), never this module.

The link proves only that the user reads the address: it earns no amr, so a token still needs the
new password typed afterwards. Opening the link is a POST from a page (mail scanners that fetch
links do not spend them), and spends it for every other browser.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from flask import Blueprint, Response, flash, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.password_policy import PasswordRejected, check_new_password
from idp.auth.pipeline import NeedPassword, SetPassword
from idp.auth.policy import METHOD_AMR, Method
from idp.auth.quotas import Usage
from idp.auth.throttle import account_subject
from idp.email_address import AddressRejected, canonical_address
from idp.languages import N_
from idp.mail import DeliveryFailed, compose
from idp.store.tables import User
from idp.views import errors, session_state
from idp.views import sign_in_request as sign_ins
from idp.views.account.guard import account_requirement
from idp.views.account.pages import record_change, verified_addresses
from idp.views.account.password import sign_out_elsewhere
from idp.views.account_changes import PASSWORD_RESET, Change
from idp.views.continuation import continue_sign_in
from idp.views.plain_words import occasion
from idp.views.sign_in_request import AccountPage, SignInRequest
from idp.views.signin import at_step
from idp.web import audit, durable_store, services
from idp.words import _

blueprint = Blueprint("password_reset", __name__)

MAX_INPUT = 1024
LINK_EXPIRED = N_("This password reset link has expired or was used already. Ask for a new one.")


def _field(name: str) -> str:
    return request.form.get(name, "")[:MAX_INPUT]


def _minutes() -> int:
    return max(1, services().settings.account.reset_link_lifetime // 60)


# -- asking for a link ------------------------------------------------------------------------------


@blueprint.route("/signin/<sign_in_id>/forgot", methods=["GET", "POST"])
@at_step(NeedPassword)
def forgot(sign_in: SignInRequest, _step: NeedPassword, _user: User | None) -> BaseResponse:
    """The same answer whether or not an account matches; links go to verified addresses only."""
    if request.method == "GET":
        return _forgot_page(sign_in)
    found = services()
    if found.quotas.use(found.quotas.password_resets, address=request.remote_addr) is not Usage.WITHIN:
        too_many = _("Too many password resets were asked for from your network. Try again later.")
        response = _forgot_page(sign_in, error=too_many, status=429)
        response.headers["Retry-After"] = str(found.quotas.password_resets.window)
        return response
    for user, address in _recipients(_field("who").strip()):
        if found.reset_links.may_send(user_id=user.id):
            _send_link(user, address, sign_in)
    sent = _(
        "If an account matches, we sent a link to its verified email address. "
        "The link works once, for %(minutes)s minutes.",
        minutes=_minutes(),
    )
    return _forgot_page(sign_in, sent=sent)


def _forgot_page(
    sign_in: SignInRequest, *, error: str | None = None, sent: str | None = None, status: int = 200
) -> Response:
    body = render_template("forgot_password.html", sign_in=sign_in, error=error, sent=sent)
    return Response(body, status=status)


def _recipients(who: str) -> Iterator[tuple[User, str]]:
    """The active accounts named by `who` (a username, or an address one of them verified), each with
    the verified address its link goes to."""
    store = durable_store()
    if "@" not in who:
        named = store.users.by_username(who) if who else None
        if named is not None and not named.disabled:
            yield from ((named, address) for address in sorted(verified_addresses(named)))
        return
    try:
        address = canonical_address(who)
    except AddressRejected:
        return
    for user_id in sorted(store.addresses.holders(address).accounts):
        user = store.users.get(user_id)
        if user is not None and not user.disabled and address in verified_addresses(user):
            yield user, address


def _send_link(user: User, address: str, sign_in: SignInRequest) -> None:
    found = services()
    token = found.reset_links.issue(user_id=user.id, sign_in_id=sign_in.id)
    message = compose(
        sender=found.settings.smtp.from_address,
        to=address,
        subject=_("Reset your password"),
        template="reset_link",
        username=user.username,
        client_name=sign_in.client_name,
        link=reset_link_url(found.settings.issuer, token),
        minutes=_minutes(),
        **occasion(),
    )
    try:
        found.mailer.send(message)
    except DeliveryFailed:
        audit("password_reset", "failure", user_id=user.id, detail={"step": "link not delivered"})
        return
    audit("password_reset", "success", user_id=user.id, detail={"step": "link sent"})


def reset_link_url(issuer: str, token: str) -> str:
    """From the configured issuer: a request's Host header is the client's to forge."""
    return f"{issuer}/password/reset/{token}"


# -- opening the link -----------------------------------------------------------------------------


def _link_expired() -> Response:
    return errors.error_page(_("Link expired"), _(LINK_EXPIRED), status=400)


@blueprint.route("/password/reset/<token>", methods=["GET"])
def open_link(token: str) -> BaseResponse:
    """A page with one button: fetching the link (a mail scanner, a preview) spends nothing."""
    if not services().reset_links.is_live(token):
        return _link_expired()
    return _no_store(Response(render_template("reset_link.html", token=token)))


@blueprint.route("/password/reset/<token>", methods=["POST"])
def redeem_link(token: str) -> BaseResponse:
    """Spend the link and start the reset in this browser: the pipeline asks for a second factor."""
    link = services().reset_links.redeem(token)
    user = durable_store().users.get(link.user_id) if link else None
    if link is None or user is None or user.disabled:
        return _link_expired()
    asked_from = sign_ins.peek(link.sign_in_id) if link.sign_in_id else None
    session_state.record_proof(user, Method.RESET_LINK, METHOD_AMR[Method.RESET_LINK])
    if asked_from is not None:
        destination, requirement = asked_from.destination, asked_from.requirement
    else:
        destination, requirement = (
            AccountPage(path=url_for("account.overview")),
            account_requirement(fresh=False),
        )
    audit("password_reset", "success", user_id=user.id, detail={"step": "link opened"})
    try:
        language = asked_from.language if asked_from is not None else None
        sign_in = sign_ins.start(destination, replace(requirement, password_reset=True), language=language)
    except sign_ins.TooManySignIns as refused:
        return errors.too_many_sign_ins(refused.retry_after)
    return continue_sign_in(sign_in)


# -- choosing the new password ----------------------------------------------------------------------


@blueprint.route("/signin/<sign_in_id>/new-password", methods=["GET", "POST"])
@at_step(SetPassword)
def new_password(sign_in: SignInRequest, _step: SetPassword, user: User) -> BaseResponse:
    """Set the new password; other sessions and app grants end, the user is told by email, and the
    sign-in goes on as before the reset: the new password is asked for like any other."""
    found = services()
    min_length = found.settings.passwords.min_length
    if request.method == "GET":
        return _new_password_page(sign_in, min_length=min_length)
    new, repeated = _field("password"), _field("repeat")
    try:
        if new != repeated:
            raise PasswordRejected(_("The two passwords differ."))
        check_new_password(new, min_length=min_length, username=user.username)
    except PasswordRejected as rejected:
        return _new_password_page(sign_in, min_length=min_length, error=str(rejected), status=400)
    user.password_hash = found.passwords.hash(new)
    found.throttle.unlock(account_subject(user.username))
    record_change(user, Change(PASSWORD_RESET), sign_out_elsewhere(user))
    continued = replace(sign_in, requirement=replace(sign_in.requirement, password_reset=False))
    sign_ins.keep(continued)
    flash(_("Your password was changed."), "success")
    return continue_sign_in(continued)


def _new_password_page(
    sign_in: SignInRequest, *, min_length: int, error: str | None = None, status: int = 200
) -> Response:
    body = render_template("new_password.html", sign_in=sign_in, min_length=min_length, error=error)
    return _no_store(Response(body, status=status))


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response
