"""The account pages: what a signed-in user sees of their factors, sessions and sign-in history.

Every change needs a fresh MFA sign-in (the same step-up as relying parties get), is audited, and
is told to the user's verified addresses. Each page's module puts its routes on `blueprint`;
`routes` gathers them for the app (importing them here would make an import cycle).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Blueprint, Response, flash, g, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.factors import EMAIL, RECOVERY_CODE, TOTP, WEBAUTHN
from idp.auth.pipeline import Done, requirement_for
from idp.mail import DeliveryFailed, compose
from idp.store.tables import Factor, User
from idp.views import flow
from idp.web import audit, durable_store, services

blueprint = Blueprint("account", __name__, url_prefix="/account")

View = TypeVar("View", bound=Callable[..., Any])


def signed_in(*, fresh: bool) -> Callable[[View], View]:
    """Run the view for a user whose session reaches the minimum level (within the reauthentication
    age when `fresh`); otherwise send them through the sign-in that gets there and back."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            outcome = _authenticated_user(fresh=fresh)
            if not isinstance(outcome, User):
                return outcome
            g.user = outcome
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def _authenticated_user(*, fresh: bool) -> User | BaseResponse:
    found = services()
    max_age = found.settings.account.reauthentication_max_age if fresh else None
    requirement = requirement_for(
        policy=found.policy,
        scopes=[],
        acr_values=None,
        claims=None,
        max_age=None if max_age is None else str(max_age),
        prompt=None,
        client_default_acr_values=[],
        client_default_max_age=None,
        now=flow.step_up_time() or time.time(),
    )
    step, user = flow.decide_requirement(requirement)
    if isinstance(step, Done) and user is not None:
        return user
    return_to = request.path if request.method == "GET" else url_for("account.overview")
    pending = flow.stash(
        {},
        client_id="",
        client_name="Your account",
        redirect_uri="",
        requirement=requirement,
        return_to=return_to,
    )
    target = url_for("oidc.resume", pending_id=pending.id)
    if request.is_json:
        response = jsonify(error="Confirm it is you first.", redirect=target)
        response.status_code = 401
        return response
    return redirect(target)


def current_user() -> User:
    user: User = g.user
    return user


def record_change(user: User, change: str, *, detail: dict[str, Any] | None = None) -> None:
    """Audit an account change and tell the user's verified addresses about it."""
    audit("account_change", "success", user_id=user.id, detail={"change": change, **(detail or {})})
    found = services()
    for factor in durable_store().factors.of_user(user.id, EMAIL):
        message = compose(
            sender=found.settings.smtp.from_address,
            to=factor.name,
            subject="A change to your account",
            template="account_change",
            username=user.username,
            change=change,
            when=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            ip=request.remote_addr,
            account_url=url_for("account.overview", _external=True),
        )
        try:
            found.mailer.send(message)
        except DeliveryFailed:
            audit("notice", "failure", user_id=user.id, detail={"change": change})


def redirect_with(target: str, message: str, category: str) -> BaseResponse:
    """Redirect after a change, with a message kept in the session (not the URL: no spoofed notices)."""
    flash(message, category)
    return redirect(target)


def page(template: str, *, status: int = 200, **context: Any) -> Response:
    response = Response(render_template(template, user=current_user(), **context), status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def describe(factor: Factor) -> dict[str, object]:
    kinds = {TOTP: "Authenticator app", EMAIL: "Email address", RECOVERY_CODE: "Recovery code"}
    if factor.kind == WEBAUTHN:
        kind = "Synced passkey" if factor.data.get("backup_eligible") else "Device-bound security key"
    else:
        kind = kinds.get(factor.kind, factor.kind)
    return {
        "id": factor.id,
        "name": factor.name,
        "kind": kind,
        "created_at": factor.created_at,
        "last_used_at": factor.last_used_at,
    }


@blueprint.route("")
@signed_in(fresh=False)
def overview() -> BaseResponse:
    user = current_user()
    factors = durable_store().factors.of_user(user.id)
    listed = [describe(f) for f in factors if f.kind != RECOVERY_CODE]
    recovery_left = sum(1 for f in factors if f.kind == RECOVERY_CODE)
    return page("account.html", factors=listed, recovery_left=recovery_left)
