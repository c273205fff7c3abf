"""Binding an email address: usable for codes only once a code sent to it comes back."""

from __future__ import annotations

import time
import uuid

from flask import redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.email_codes import CodeRefused
from idp.email_address import AddressRejected, canonical_address
from idp.mail import DeliveryFailed
from idp.store.tables import Factor, FactorKind, User
from idp.views.account.blueprint import blueprint
from idp.views.account.guard import account_holder, fresh_login_required
from idp.views.account.pages import page, record_change, redirect_with
from idp.views.account_changes import EMAIL_ADDED, Change
from idp.views.email_codes import send_code
from idp.web import audit, durable_store, services
from idp.words import _


def _purpose(user: User) -> str:
    return f"bind:{user.id}"


def _cannot_bind(user: User, address: str) -> str | None:
    """Why `address` cannot be bound to `user`, or None: asked before the code is sent and again, under
    the address's lock, when it comes back (other accounts may have bound the address in between)."""
    holders = durable_store().addresses.holders(address)
    if user.id in holders.bound:
        return _("This address is already on your account.")
    limit = services().settings.factors.email.max_users_per_email
    if holders.full_for(user.id, limit=limit):
        return _("This address is already used by %(limit)s accounts, the most allowed.", limit=limit)
    return None


def _record_proof_of(user: User, address: str) -> None:
    """The account's email claim becomes the address just proven, unless it is another address the
    operator vouched for: `email_verified` (OIDC Core 5.1) is true only for a proven address."""
    if user.email == address or not user.email_verified:
        user.email, user.email_verified = address, True


@blueprint.route("/email/new", methods=["GET", "POST"])
@fresh_login_required
def new_email() -> BaseResponse:
    user = account_holder()
    if request.method == "GET":
        return page("account_email.html")
    try:
        address = canonical_address(request.form.get("address", ""))
    except AddressRejected as rejected:
        return page("account_email.html", error=str(rejected), status=400)
    refusal = _cannot_bind(user, address)
    if refusal is not None:
        return page("account_email.html", error=refusal, status=400)
    try:
        send_code(
            user,
            purpose=_purpose(user),
            address=address,
            reason=_("confirm this address for your account"),
            app=_("Your account"),
        )
    except CodeRefused as refused:
        return page("account_email.html", error=str(refused), status=429)
    except DeliveryFailed:
        return page(
            "account_email.html",
            status=502,
            error=_("The code could not be sent to this address. Check it and try again."),
        )
    return redirect(url_for("account.verify_email"))


@blueprint.route("/email/verify", methods=["GET", "POST"])
@fresh_login_required
def verify_email() -> BaseResponse:
    user = account_holder()
    codes = services().email_codes
    if request.method == "GET":
        pending = codes.pending_address(purpose=_purpose(user))
        if pending is None:
            return redirect(url_for("account.new_email"))
        return page("account_email_verify.html", address=pending)
    try:
        address = codes.verify(purpose=_purpose(user), code=request.form.get("code", ""))
    except CodeRefused as refused:
        audit("factor_enrolment", "failure", user_id=user.id, detail={"kind": FactorKind.EMAIL})
        pending = codes.pending_address(purpose=_purpose(user))
        if pending is None:  # expired, used or killed: the way on is a new code
            return page("account_email.html", error=str(refused), status=400)
        return page("account_email_verify.html", address=pending, error=str(refused), status=400)
    store = durable_store()
    store.addresses.lock(address)
    refusal = _cannot_bind(user, address)
    if refusal is not None:
        audit("factor_enrolment", "failure", user_id=user.id, detail={"kind": FactorKind.EMAIL})
        return page("account_email.html", error=refusal, status=400)
    store.factors.add(
        Factor(
            id=str(uuid.uuid4()),
            user_id=user.id,
            kind=FactorKind.EMAIL,
            name=address,
            secret=None,
            data={},
            created_at=int(time.time()),
            last_used_at=None,
        )
    )
    _record_proof_of(user, address)
    record_change(user, Change(EMAIL_ADDED, {"address": address}))
    return redirect_with(
        url_for("account.overview"), _("%(address)s is verified.", address=address), "success"
    )
