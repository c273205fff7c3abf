"""Binding an email address: usable for codes only once a code sent to it comes back."""

from __future__ import annotations

import time
import uuid

from flask import redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.email_codes import CodeRefused
from idp.auth.policy import FactorKind
from idp.mail import DeliveryFailed
from idp.store.tables import Factor, User
from idp.views.account.blueprint import blueprint
from idp.views.account.guard import account_holder, fresh_login_required
from idp.views.account.pages import page, record_change, redirect_with
from idp.views.email_codes import send_code
from idp.web import audit, durable_store, services

MAX_ADDRESS = 320


def _purpose(user: User) -> str:
    return f"bind:{user.id}"


def _cannot_bind(user: User, address: str) -> str | None:
    """Why `address` cannot be bound to `user`, or None: asked before the code is sent and again when
    it comes back (other accounts may have bound the address in between)."""
    store = durable_store()
    if any(f.name == address for f in store.factors.of_user(user.id, FactorKind.EMAIL)):
        return "This address is already on your account."
    limit = services().settings.factors.email.max_users_per_email
    if store.factors.count_named(FactorKind.EMAIL, address) >= limit:
        return f"This address is already used by {limit} accounts, the most allowed."
    return None


@blueprint.route("/email/new", methods=["GET", "POST"])
@fresh_login_required
def new_email() -> BaseResponse:
    user = account_holder()
    if request.method == "GET":
        return page("account_email.html")
    address = request.form.get("address", "").strip().lower()[:MAX_ADDRESS]
    local, _, domain = address.partition("@")
    if not local or "." not in domain or any(character.isspace() for character in address):
        return page("account_email.html", error="Enter an email address like name@example.com.", status=400)
    refusal = _cannot_bind(user, address)
    if refusal is not None:
        return page("account_email.html", error=refusal, status=400)
    try:
        send_code(
            user, purpose=_purpose(user), address=address, reason="confirm this address for your account"
        )
    except CodeRefused as refused:
        return page("account_email.html", error=str(refused), status=429)
    except DeliveryFailed:
        return page(
            "account_email.html",
            status=502,
            error="The code could not be sent to this address. Check it and try again.",
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
    refusal = _cannot_bind(user, address)
    if refusal is not None:
        audit("factor_enrolment", "failure", user_id=user.id, detail={"kind": FactorKind.EMAIL})
        return page("account_email.html", error=refusal, status=400)
    durable_store().factors.add(
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
    record_change(user, f"email address {address} added")
    return redirect_with(url_for("account.overview"), f"{address} is verified.", "success")
