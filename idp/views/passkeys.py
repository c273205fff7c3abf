"""Passkey ceremonies as JSON endpoints, shared by the sign-in pages and the account pages."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any

from flask import Response, jsonify, request, session

from idp.auth.factors import PasskeyData, credential_lookup_key, webauthn_factor
from idp.auth.pipeline import NeedFactor, NeedPassword, Step
from idp.auth.policy import Method, passkey_amr
from idp.auth.throttle import Blocked, account_subject, address_subject
from idp.auth.webauthn import CeremonyFailed, credential_id_of, user_handle_of
from idp.languages import N_
from idp.store.tables import Factor, FactorKind, User
from idp.views import approvals, guessing
from idp.views.approvals import Transaction
from idp.views.guessing import Event, Guessed
from idp.web import audit, durable_store, services
from idp.words import _

CEREMONY_KEY = "webauthn_ceremony"
ANOTHER_ACCOUNT = N_("This passkey belongs to another account.")


@dataclass(frozen=True)
class PasskeyUsage:
    """Whose credentials may answer (None: any discoverable one) and whether the key must verify the user."""

    user: User | None
    require_user_verification: bool
    transaction: Transaction | None = None  # the details the assertion signs (idp.views.approvals)


def usage_for(
    step: Step, user: User | None, *, transaction: Transaction | None = None
) -> PasskeyUsage | None:
    """A passkey can start a sign-in (standing alone, so it must verify the user) or be the second factor;
    in a sign-in approving a transaction, either way it signs the transaction."""
    if isinstance(step, NeedPassword):
        return PasskeyUsage(user=None, require_user_verification=True, transaction=transaction)
    if isinstance(step, NeedFactor) and Method.WEBAUTHN in step.methods and user is not None:
        return PasskeyUsage(user=user, require_user_verification=False, transaction=transaction)
    return None


def json_error(message: str, *, status: int = 400) -> Response:
    response = jsonify(error=message)
    response.status_code = status
    return response


def webauthn_factors(user: User) -> list[Factor]:
    return list(durable_store().factors.of_user(user.id, FactorKind.WEBAUTHN))


def begin_authentication(usage: PasskeyUsage) -> Response:
    allowed = [PasskeyData.of(f).credential for f in webauthn_factors(usage.user)] if usage.user else []
    challenge = services().ceremonies.begin_authentication(
        allowed=allowed,
        require_user_verification=usage.require_user_verification,
        signs=usage.transaction.signs if usage.transaction else None,
    )
    session[CEREMONY_KEY] = challenge.ceremony_id
    return Response(challenge.options_json, mimetype="application/json")


def finish_authentication(usage: PasskeyUsage, *, client_id: str | None, next_url: str) -> Response:
    throttle = services().throttle
    guess = guessing.reserve(
        Guessed(
            Event.SIGN_IN, "webauthn", client_id=client_id, user_id=usage.user.id if usage.user else None
        ),
        (throttle.webauthn_address, address_subject(request.remote_addr)),
    )
    if isinstance(guess, Blocked):
        return guessing.too_many(json_error(guess.message), guess)
    with guess:
        try:
            owner = _verify_assertion(usage)
        except CeremonyFailed as failure:
            guess.wrong(reason=failure.reason)
            return json_error(str(failure))
        guess.right()
    if usage.require_user_verification:
        # A passkey alone is not guessable: it re-opens password sign-in after a lock (NIST 5.2.2).
        throttle.unlock(account_subject(owner.username))
    return jsonify(redirect=next_url)


def _verify_assertion(usage: PasskeyUsage) -> User:
    ceremony_id = session.pop(CEREMONY_KEY, "")  # one attempt per challenge, whatever happens next
    response = _credential_json()
    store = durable_store()
    factor = store.factors.by_lookup_key(credential_lookup_key(credential_id_of(response)))
    if factor is None or factor.kind != FactorKind.WEBAUTHN:
        raise CeremonyFailed(_("This passkey is not registered here."), reason="unknown credential")
    if usage.user is not None and factor.user_id != usage.user.id:
        raise CeremonyFailed(_(ANOTHER_ACCOUNT), reason="credential of another user")
    handle = user_handle_of(response)
    if handle is not None and handle != factor.user_id.encode():
        raise CeremonyFailed(_(ANOTHER_ACCOUNT), reason="user handle mismatch")
    owner = store.users.get(factor.user_id)
    assert owner is not None
    passkey = PasskeyData.of(factor)
    assertion = services().ceremonies.finish_authentication(
        ceremony_id=ceremony_id,
        response=response,
        credential=passkey.credential,
        require_user_verification=usage.require_user_verification,
        expected_signed=usage.transaction.signs if usage.transaction else None,
    )
    used = replace(passkey, sign_count=assertion.new_sign_count, backed_up=assertion.backed_up)
    store.factors.mark_used(factor.id, int(time.time()), data=used.to_json())
    amr = passkey_amr(attested=passkey.attested, user_verified=assertion.user_verified)
    approvals.record_proof(owner, Method.WEBAUTHN, amr, usage.transaction)
    return owner


def begin_registration(user: User) -> Response:
    existing = [PasskeyData.of(f).credential for f in webauthn_factors(user)]
    challenge = services().ceremonies.begin_registration(
        user_handle=user.id.encode(), username=user.username, existing=existing
    )
    session[CEREMONY_KEY] = challenge.ceremony_id
    return Response(challenge.options_json, mimetype="application/json")


def finish_registration(user: User, *, next_url: str) -> Response:
    """Store a new credential; one already registered (to anyone) is refused."""
    body = request.get_json(silent=True)
    name = str(body.get("name") or "").strip()[:100] if isinstance(body, dict) else ""
    try:
        new = services().ceremonies.finish_registration(
            ceremony_id=session.pop(CEREMONY_KEY, ""), response=_credential_json()
        )
        if durable_store().factors.by_lookup_key(credential_lookup_key(new.credential_id)) is not None:
            raise CeremonyFailed(
                _("This passkey is already registered."), reason="credential already registered"
            )
    except CeremonyFailed as failure:
        audit(
            "factor_enrolment",
            "failure",
            user_id=user.id,
            detail={"kind": FactorKind.WEBAUTHN, "reason": failure.reason},
        )
        return json_error(str(failure))
    factor = webauthn_factor(user_id=user.id, name=name or _("Passkey"), credential=new)
    durable_store().factors.add(factor)
    audit(
        "factor_enrolment",
        "success",
        user_id=user.id,
        detail={"kind": FactorKind.WEBAUTHN, "factor_id": factor.id},
    )
    return jsonify(redirect=next_url)


def _credential_json() -> str:
    body: Any = request.get_json(silent=True)
    credential = body.get("credential") if isinstance(body, dict) else None
    if not isinstance(credential, dict):
        raise CeremonyFailed(_("The browser sent a malformed response."), reason="no credential in request")
    return json.dumps(credential)
