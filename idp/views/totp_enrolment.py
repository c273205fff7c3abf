"""Setting up an authenticator app, at sign-in or on the account page: a draft secret kept for a
sign-in's lifetime (outside the session, page_secrets) until a code from the app confirms it; only
then is the factor stored (no orphan factor)."""

from __future__ import annotations

import time
import uuid

from idp.auth.totp import Enrolment
from idp.languages import N_
from idp.store.tables import Factor, FactorKind, User
from idp.views import page_secrets
from idp.web import audit, durable_store, services
from idp.words import _

WRONG_CODE = N_("That code is wrong or has expired. Enter the code your app shows now.")
REUSED_CODE = N_("That code was used already. Wait for your app to show the next one.")
DEFAULT_NAME = N_("Authenticator app")


def draft(user: User, *, key: str) -> Enrolment:
    """The secret being set up under `key` (created on first sight), as QR code and URI."""
    found = services()
    pending = page_secrets.peek(key)
    if pending is None:
        pending = {"factor_id": str(uuid.uuid4()), "secret": found.totp.new_enrolment(user.username).secret}
        page_secrets.keep(key, pending, ttl=found.settings.tokens.sign_in_lifetime)
    return found.totp.enrolment_for(pending["secret"], user.username)


def confirm(user: User, *, key: str, code: str, name: str, client_id: str | None = None) -> Factor | None:
    """Store the drafted authenticator when `code` comes from it; None (audited) otherwise."""
    found = services()
    pending = page_secrets.peek(key)
    if pending is None:
        return None
    now = time.time()
    step = found.totp.verify_draft(
        draft_id=pending["factor_id"], secret=pending["secret"], code=code, now=now
    )
    if step is None:
        audit(
            "factor_enrolment",
            "failure",
            user_id=user.id,
            client_id=client_id,
            detail={"kind": FactorKind.TOTP},
        )
        return None
    factor = Factor(
        id=pending["factor_id"],
        user_id=user.id,
        kind=FactorKind.TOTP,
        name=name.strip()[:100] or _(DEFAULT_NAME),
        secret=found.secret_box.seal(pending["secret"].encode()),
        data={},
        created_at=int(now),
        last_used_at=int(now),
        last_step=step,
    )
    durable_store().factors.add(factor)
    page_secrets.take(key)
    audit(
        "factor_enrolment", "success", user_id=user.id, client_id=client_id, detail={"kind": FactorKind.TOTP}
    )
    return factor
