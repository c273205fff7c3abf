"""The browser session's authentication state: who signed in here, what they proved, and when.

The session's id (its cookie) changes whenever a proof is recorded, so an id seen before a sign-in
or a step-up never carries what was proven after it; the session index follows the new id.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from functools import partial

from flask import g, request, session
from flask_wtf.csrf import generate_csrf

from idp.auth.factors import capabilities_of
from idp.auth.pipeline import Account, AuthState, Proof, apply_proof, state_from_json, state_to_json
from idp.auth.policy import Amr, Method
from idp.auth.sessions import ServerSession
from idp.oidc.logout import FrontChannelPage, end_sessions_at_clients
from idp.store.tables import User, UserSession
from idp.web import after_commit, authorization_server, durable_store, services

AUTH_KEY = "auth"
SID_KEY = "sid"
BROWSER_KEY = "browser"
REAUTHENTICATED_KEY = "reauthenticated_at"
REAUTHENTICATION_GRACE = 120
CSRF_FIELD = "csrf_token"  # Flask-WTF's key, in the session and in `g` (WTF_CSRF_FIELD_NAME's default)


def current_state() -> AuthState | None:
    data = session.get(AUTH_KEY)
    return None if data is None else state_from_json(data)


def signed_in_user() -> User | None:
    """The subject of the session's proofs (not necessarily enough of them: ask the pipeline)."""
    state = current_state()
    return None if state is None else durable_store().users.get_with_factors(state.subject)


def load_account(user: User | None) -> Account | None:
    """The account as the pipeline sees it: whether it may sign in and what it can prove."""
    if user is None:
        return None
    factors = durable_store().factors.of_user(user.id)
    return Account(
        subject=user.id,
        active=not user.disabled,
        capabilities=capabilities_of(factors),
        administrator=user.is_admin,
        password_must_change=user.password_must_change,
    )


def read_beside_session(key: str) -> bytes | None:
    """The ephemeral value of `key`, read in the round trip that loads the browser's session when the
    request reads it along (a sign-in page's sign-in: `sign_in_request.read_along`)."""
    assert isinstance(session, ServerSession)
    return session.read_beside(key)


def session_sid() -> str:
    """The session's id as relying parties see it (`sid`), distinct from the cookie's secret id."""
    sid: str | None = session.get(SID_KEY)
    if sid is None:
        sid = secrets.token_urlsafe(16)
        session[SID_KEY] = sid
    return sid


def browser_binding(*, create: bool) -> str | None:
    """A digest of this browser's own secret, kept across sign-ins: what a sign-in in progress is
    bound to. None when the browser has none yet and `create` is false."""
    secret: str | None = session.get(BROWSER_KEY)
    if secret is None and create:
        secret = secrets.token_urlsafe(32)
        session[BROWSER_KEY] = secret
        _start_csrf_secret()
    return None if secret is None else hashlib.sha256(secret.encode()).hexdigest()


def _start_csrf_secret() -> None:
    """A session started (or started over) for a sign-in gets its CSRF secret in the same write, so
    the pages that follow render their forms without writing the session again (Flask-WTF would make
    it at the first form: one more write of the session per page after each start)."""
    g.pop(CSRF_FIELD, None)  # a token made for the session as it was before it started over
    generate_csrf()


def record_proof(
    user: User, method: Method, amr: frozenset[Amr], *, approves: str | None = None
) -> AuthState:
    """Add a verified proof under a new session id (no fixation); a new subject starts a new session.
    `approves`: the transaction approval the proof was made on (idp.views.approvals)."""
    before = current_state()
    state = apply_proof(before, user.id, Proof(method=method, amr=amr, at=time.time(), approves=approves))
    if before is None or before.subject != user.id:
        start_over()
        _index_session(user)
    else:
        _rekey_session()
    session[AUTH_KEY] = state_to_json(state)
    return state


def _index_session(user: User) -> None:
    """List the session under its user, so the account page can show and end it; the clients of the
    user's sessions that expired meanwhile (purged now) are told they ended."""
    assert isinstance(session, ServerSession)
    now = int(time.time())
    expired = durable_store().sessions.add(
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
    if expired:
        tell_clients_sessions_ended(expired, reason="session expired")


def _rekey_session() -> None:
    """A new cookie id for the same session; its index entry follows."""
    assert isinstance(session, ServerSession)
    session.regenerate()
    durable_store().sessions.rekey(session_sid(), storage_key=session.storage_key)


def end_session(*, reason: str = "signed out") -> tuple[FrontChannelPage, ...]:
    """Forget who signed in here: a fresh, empty session with a new id (used at sign-in and sign-out).
    The clients that received tokens in it are told; returns the pages the sign-out page frames."""
    assert isinstance(session, ServerSession)
    sid = session.get(SID_KEY)
    pages: tuple[FrontChannelPage, ...] = ()
    if sid is not None:
        pages = tell_clients_sessions_ended([sid], reason=reason)
        durable_store().sessions.remove(sid)
    session.end()
    return pages


def tell_clients_sessions_ended(sids: Iterable[str], *, reason: str) -> tuple[FrontChannelPage, ...]:
    """Revoke the grants bound to these browser sessions and, once that is committed, send each
    back-channel client its logout_token in the background; returns the front-channel pages."""
    logout = end_sessions_at_clients(authorization_server().context, sids, reason=reason)
    if logout.notices:
        after_commit(partial(services().backchannel.submit, logout.notices))
    return logout.front_channel


def start_over() -> None:
    """Forget who signed in here, like end_session, but keep the browser's binding: a sign-in in
    progress in this browser continues, with whichever account proves itself next."""
    browser = session.get(BROWSER_KEY)
    end_session(reason="another sign-in in the browser")
    if browser is not None:
        session[BROWSER_KEY] = browser
    _start_csrf_secret()


def remember_reauthentication(*, requested_at: float, proved_at: float) -> None:
    """The provider's own pages judge the session as of a step-up made for them (begun at
    `requested_at`, so every proof of it counts as made for them), for a short while after its
    last proof: the page and the form posted from it, however small their max_age."""
    session[REAUTHENTICATED_KEY] = [requested_at, proved_at]


def reauthentication_time() -> float | None:
    """When the step-up last completed for the provider's own pages began, within the grace after
    its last proof; None otherwise."""
    remembered = session.get(REAUTHENTICATED_KEY)
    if not isinstance(remembered, list) or remembered[1] + REAUTHENTICATION_GRACE < time.time():
        session.pop(REAUTHENTICATED_KEY, None)
        return None
    requested_at: float = remembered[0]
    return requested_at
