"""Sending one-time codes by email, for sign-in step-up and for binding an address."""

from __future__ import annotations

from idp.mail import DeliveryFailed, compose
from idp.store.tables import User
from idp.views.plain_words import occasion
from idp.web import audit, services
from idp.words import _


def send_code(user: User, *, purpose: str, address: str, reason: str, app: str) -> None:
    """Send a fresh code to `address`, saying which `app` asks it and why (`reason` completes "to ...");
    raises CodeRefused (throttled) or DeliveryFailed (not sent)."""
    found = services()
    code = found.email_codes.issue(purpose=purpose, user_id=user.id, address=address)
    message = compose(
        sender=found.settings.smtp.from_address,
        to=address,
        subject=_("Your code: %(code)s", code=code),
        template="code",
        code=code,
        reason=reason,
        app=app,
        username=user.username,
        minutes=found.settings.factors.email.code_lifetime // 60,
        **occasion(),
    )
    try:
        found.mailer.send(message)
    except DeliveryFailed:
        found.email_codes.withdraw(purpose=purpose)
        audit("email_code", "failure", user_id=user.id, detail={"purpose": purpose.split(":")[0]})
        raise
    audit("email_code", "success", user_id=user.id, detail={"purpose": purpose.split(":")[0]})
