"""The transaction a sign-in approves (RFC 9396 authorization details): shown on its pages, bound into
the proof made there (and into the WebAuthn challenge, so the key signs it), audited with its hash,
and granted with the code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from idp.auth.policy import Amr, Method
from idp.oidc.authorization_details import Approval, canonical_json, details_hash
from idp.store.tables import User
from idp.views import session_state
from idp.views.language import localized
from idp.views.sign_in_request import ClientRedirect, SignInRequest
from idp.web import audit, services


@dataclass(frozen=True)
class Transaction:
    """`reference`: the requirement's approval (the proofs made for it say so); `signs`: the canonical
    bytes of the details, which a WebAuthn approval signs; `lines`: the details as the page shows them."""

    reference: str
    client_id: str
    details: tuple[dict[str, Any], ...]
    lines: tuple[str, ...]
    signs: bytes

    def approval(self) -> Approval:
        return services().authorization_details.approval(self.details)


def transaction_of(sign_in: SignInRequest) -> Transaction | None:
    """The details a client's sign-in asks the user to approve, as its stored request holds them now."""
    destination = sign_in.destination
    reference = sign_in.requirement.approval
    if reference is None or not isinstance(destination, ClientRedirect):
        return None
    details = tuple(json.loads(destination.params["authorization_details"]))
    return Transaction(
        reference=reference,
        client_id=destination.client_id,
        details=details,
        lines=tuple(services().authorization_details.lines(details, worded=localized)),
        signs=canonical_json(details),
    )


def record_proof(user: User, method: Method, amr: frozenset[Amr], transaction: Transaction | None) -> None:
    """A proof made on a sign-in page; made showing a transaction, it approves it (audited with the
    details' hash and how they were approved)."""
    session_state.record_proof(user, method, amr, approves=transaction.reference if transaction else None)
    if transaction is not None:
        audit(
            "transaction_approval",
            "success",
            user_id=user.id,
            client_id=transaction.client_id,
            detail={
                "hash": details_hash(transaction.details),
                "types": sorted({detail["type"] for detail in transaction.details}),
                "method": method.value,
                "signed": method == Method.WEBAUTHN,
            },
        )
