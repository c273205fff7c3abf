"""The account pages: the user's factors, and adding a passkey (which needs a fresh MFA sign-in)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.factors import TOTP, WEBAUTHN
from idp.auth.pipeline import Done, requirement_for
from idp.store.tables import Factor, User
from idp.views import flow, passkeys
from idp.web import durable_store, services

blueprint = Blueprint("account", __name__, url_prefix="/account")


def _signed_in(*, fresh: bool) -> User | BaseResponse:
    """The user when the session reaches the minimum level (within the reauthentication age when
    `fresh`); otherwise the sign-in that gets there and comes back."""
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
        now=time.time(),
    )
    step, user = flow.decide_requirement(requirement)
    if isinstance(step, Done) and user is not None:
        return user
    return_to = request.path if request.method == "GET" else url_for("account.overview")
    pending = flow.stash(
        {},
        client_id="",
        client_name="your account",
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


@blueprint.route("")
def overview() -> BaseResponse:
    user = _signed_in(fresh=False)
    if not isinstance(user, User):
        return user
    factors = durable_store().factors.of_user(user.id)
    return Response(render_template("account.html", user=user, factors=[_describe(f) for f in factors]))


def _describe(factor: Factor) -> dict[str, object]:
    if factor.kind == WEBAUTHN:
        kind = "Synced passkey" if factor.data.get("backup_eligible") else "Device-bound security key"
    elif factor.kind == TOTP:
        kind = "Authenticator app"
    else:
        kind = factor.kind
    return {
        "id": factor.id,
        "name": factor.name,
        "kind": kind,
        "created_at": factor.created_at,
        "last_used_at": factor.last_used_at,
    }


@blueprint.route("/passkeys/new")
def new_passkey() -> BaseResponse:
    user = _signed_in(fresh=True)
    if not isinstance(user, User):
        return user
    body = render_template(
        "passkey_new.html",
        lead="Sign in with it instead of a password, or use it as your second factor.",
        options_url=url_for("account.passkey_options"),
        verify_url=url_for("account.add_passkey"),
        back_url=url_for("account.overview"),
    )
    return Response(body)


@blueprint.route("/passkeys/options", methods=["POST"])
def passkey_options() -> BaseResponse:
    user = _signed_in(fresh=True)
    return passkeys.begin_registration(user) if isinstance(user, User) else user


@blueprint.route("/passkeys", methods=["POST"])
def add_passkey() -> BaseResponse:
    user = _signed_in(fresh=True)
    if not isinstance(user, User):
        return user
    return passkeys.finish_registration(user, next_url=url_for("account.overview"))
