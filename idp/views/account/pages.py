"""What every account page shares: rendering, notices after a change, and telling the user of it."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, redirect, render_template, url_for
from werkzeug.wrappers import Response as BaseResponse

from idp.auth.factors import PasskeyData
from idp.languages import N_
from idp.mail import DeliveryFailed, compose
from idp.store.tables import Factor, FactorKind, User
from idp.views.account.guard import account_holder
from idp.views.account_changes import Change, in_reader_language, recorded
from idp.views.plain_words import occasion
from idp.web import audit, durable_store, services
from idp.words import _


def record_change(user: User, *changes: Change, detail: dict[str, Any] | None = None) -> None:
    """Audit an account change and tell the user's verified addresses about it."""
    change = recorded(changes)
    audit("account_change", "success", user_id=user.id, detail={"change": change, **(detail or {})})
    found = services()
    for address in sorted(verified_addresses(user)):
        message = compose(
            sender=found.settings.smtp.from_address,
            to=address,
            subject=_("A change to your account"),
            template="account_change",
            username=user.username,
            change=in_reader_language(change),
            **occasion(),
            # From the configured issuer: a request's Host header is the client's to forge.
            account_url=found.settings.issuer + url_for("account.overview"),
        )
        try:
            found.mailer.send(message)
        except DeliveryFailed:
            audit("notice", "failure", user_id=user.id, detail={"change": change})


def verified_addresses(user: User) -> set[str]:
    """The addresses the user proved (bound on the account pages) or the operator vouched for."""
    bound = {factor.name for factor in durable_store().factors.of_user(user.id, FactorKind.EMAIL)}
    return bound | ({user.email} if user.email and user.email_verified else set())


def redirect_with(target: str, message: str, category: str) -> BaseResponse:
    """Redirect after a change, with a message kept in the session (not the URL: no spoofed notices)."""
    flash(message, category)
    return redirect(target)


def confirmation(*, title: str, message: str, action: str, button: str) -> Response:
    """ "Are you sure?" before a change that cannot be undone: the form posts to `action`; Cancel goes
    back to the overview."""
    return page("account_confirm.html", title=title, message=message, action=action, button=button)


def page(template: str, *, status: int = 200, **context: Any) -> Response:
    response = Response(render_template(template, user=account_holder(), **context), status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


FACTOR_KINDS = {
    FactorKind.TOTP: N_("Authenticator app"),
    FactorKind.EMAIL: N_("Email address"),
    FactorKind.RECOVERY_CODE: N_("Recovery code"),
}


def describe(factor: Factor) -> dict[str, object]:
    """A sign-in method as the account and console pages list it; its kind in the reader's language
    (a passkey's make as its metadata names it)."""
    if factor.kind == FactorKind.WEBAUTHN:
        passkey = PasskeyData.of(factor)
        kind = (passkey.model or _("Attested security key")) if passkey.attested else _("Passkey")
    else:
        kind = _(FACTOR_KINDS[FactorKind(factor.kind)])
    return {
        "id": factor.id,
        "name": factor.name,
        "kind": kind,
        "created_at": factor.created_at,
        "last_used_at": factor.last_used_at,
    }
