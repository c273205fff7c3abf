"""The sign-in in progress: the stored authorization request, the session's AuthState, the account.

Views read the pipeline's verdict from here; none of them decides sufficiency itself.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass

from flask import request, session

from idp.auth.factors import capabilities_of
from idp.auth.pipeline import (
    Account,
    AuthState,
    Proof,
    Requirement,
    Step,
    apply_proof,
    next_step,
    requirement_from_json,
    requirement_to_json,
    state_from_json,
    state_to_json,
)
from idp.auth.policy import Amr, Method
from idp.auth.sessions import ServerSession
from idp.store.tables import Factor, User, UserSession
from idp.web import durable_store, services

AUTH_KEY = "auth"
SID_KEY = "sid"
PENDING_PREFIX = "authz:"
STEP_UP_KEY = "stepped_up"
STEP_UP_GRACE = 120


@dataclass(frozen=True)
class PendingAuthorization:
    """A validated authorization request (or a page of the provider's own) waiting for enough proof.

    `return_to` is set for the provider's own pages: when done, the user goes back there instead of
    a code being issued to a client.
    """

    id: str
    params: dict[str, str]
    client_id: str
    client_name: str
    redirect_uri: str
    requirement: Requirement
    return_to: str | None = None

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "id": self.id,
                "params": self.params,
                "client_id": self.client_id,
                "client_name": self.client_name,
                "redirect_uri": self.redirect_uri,
                "requirement": requirement_to_json(self.requirement),
                "return_to": self.return_to,
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> PendingAuthorization:
        data = json.loads(raw)
        return cls(**{**data, "requirement": requirement_from_json(data["requirement"])})


def stash(
    params: dict[str, str],
    *,
    client_id: str,
    client_name: str,
    redirect_uri: str,
    requirement: Requirement,
    return_to: str | None = None,
) -> PendingAuthorization:
    pending = PendingAuthorization(
        id=secrets.token_urlsafe(24),
        params=params,
        client_id=client_id,
        client_name=client_name,
        redirect_uri=redirect_uri,
        requirement=requirement,
        return_to=return_to,
    )
    found = services()
    found.ephemeral.put(
        PENDING_PREFIX + pending.id, pending.to_json(), ttl=found.settings.tokens.sign_in_lifetime
    )
    return pending


def remember_step_up(pending: PendingAuthorization) -> None:
    """After a step-up for the provider's own pages, they judge the session as of the step-up's
    start for a short while: the page and the form posted from it, however small the max_age."""
    session[STEP_UP_KEY] = {
        "requested_at": pending.requirement.requested_at,
        "until": time.time() + STEP_UP_GRACE,
    }


def step_up_time() -> float | None:
    marker = session.get(STEP_UP_KEY)
    if marker is None or marker["until"] < time.time():
        session.pop(STEP_UP_KEY, None)
        return None
    return float(marker["requested_at"])


def load_pending(pending_id: str) -> PendingAuthorization | None:
    if not pending_id or len(pending_id) > 64:
        return None
    raw = services().ephemeral.get(PENDING_PREFIX + pending_id)
    return None if raw is None else PendingAuthorization.from_json(raw)


def finish_pending(pending: PendingAuthorization) -> bool:
    """Consume the pending request; False when another tab already finished it."""
    return services().ephemeral.take(PENDING_PREFIX + pending.id) is not None


def current_state() -> AuthState | None:
    data = session.get(AUTH_KEY)
    return None if data is None else state_from_json(data)


def session_sid() -> str:
    """The session's id as relying parties see it (`sid`), distinct from the cookie's secret id."""
    sid: str | None = session.get(SID_KEY)
    if sid is None:
        sid = secrets.token_urlsafe(16)
        session[SID_KEY] = sid
    return sid


def record_proof(user: User, method: Method, amr: frozenset[Amr]) -> AuthState:
    """Add a verified proof to the session; a new subject gets a new session id (no fixation)."""
    before = current_state()
    state = apply_proof(before, user.id, Proof(method=method, amr=amr, at=time.time()))
    if before is None or before.subject != user.id:
        end_session()
        _index_session(user)
    session[AUTH_KEY] = state_to_json(state)
    return state


def _index_session(user: User) -> None:
    """List the session under its user, so the account page can show and end it."""
    assert isinstance(session, ServerSession)
    now = int(time.time())
    durable_store().sessions.add(
        UserSession(
            sid=session_sid(),
            user_id=user.id,
            storage_key=session.storage_key,
            created_at=now,
            expires_at=now + services().settings.sessions.lifetime,
            ip=request.remote_addr,
            user_agent=(request.user_agent.string or "")[:400] or None,
        )
    )


def end_session() -> None:
    """Forget who signed in here: a fresh, empty session with a new id (used at sign-in and sign-out)."""
    assert isinstance(session, ServerSession)
    sid = session.get(SID_KEY)
    if sid is not None:
        durable_store().sessions.remove(sid)
    session.end()


def load_account(user: User | None) -> Account | None:
    if user is None:
        return None
    factors = durable_store().factors.of_user(user.id)
    return Account(subject=user.id, active=not user.disabled, capabilities=capabilities_of(factors))


def signed_in_user() -> User | None:
    state = current_state()
    return None if state is None else durable_store().users.get(state.subject)


def decide(pending: PendingAuthorization) -> tuple[Step, User | None]:
    """Ask the pipeline what this pending authorization needs now."""
    return decide_requirement(pending.requirement)


def decide_requirement(requirement: Requirement) -> tuple[Step, User | None]:
    user = signed_in_user()
    found = services()
    step = next_step(current_state(), load_account(user), requirement, found.policy, time.time())
    return step, user


def factor_of(user: User, kind: str) -> list[Factor]:
    return list(durable_store().factors.of_user(user.id, kind))
