"""Request-scoped access to the provider's services: one unit of work per request, and the audit log."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, g, request
from flask import session as browser_session
from sqlalchemy.orm import Session

from idp import observability
from idp.auth.email_codes import EmailCodes
from idp.auth.passwords import Passwords
from idp.auth.policy import AssurancePolicy
from idp.auth.quotas import Quotas, Usage
from idp.auth.reset_links import ResetLinks
from idp.auth.sessions import ACCOUNT_RECORD_KEY, ServerSession
from idp.auth.throttle import Throttle
from idp.auth.totp import Totp
from idp.auth.webauthn import Ceremonies
from idp.config import Settings
from idp.mail import Mailer
from idp.oidc.authorization_details import DetailTypes
from idp.oidc.backchannel import BackChannelDelivery
from idp.oidc.keys import KeyRing
from idp.oidc.server import ProviderServer
from idp.oidc.tokens import TokenService
from idp.secrets import SecretBox
from idp.store.database import Database
from idp.store.durable import FACTORS_CHANGED, DurableStore, audit_event
from idp.store.ephemeral import EphemeralStore

EXTENSION = "idp"
AUTHORIZATION_SERVER = "authlib.server"


@dataclass(frozen=True)
class Services:
    settings: Settings
    policy: AssurancePolicy
    database: Database
    ephemeral: EphemeralStore
    keyring: KeyRing
    tokens: TokenService
    passwords: Passwords
    totp: Totp
    ceremonies: Ceremonies
    email_codes: EmailCodes
    throttle: Throttle
    mailer: Mailer
    secret_box: SecretBox
    quotas: Quotas
    backchannel: BackChannelDelivery
    authorization_details: DetailTypes
    reset_links: ResetLinks


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found


def authorization_server() -> ProviderServer:
    server: ProviderServer = current_app.extensions[AUTHORIZATION_SERVER]
    return server


def durable_store() -> DurableStore:
    """The repositories of this request's unit of work, opened on first use."""
    store: DurableStore | None = g.get("durable")
    if store is None:
        session = services().database.open_session()
        g.db_session = session
        store = g.durable = DurableStore.over(session)
    return store


def audit(
    event: str,
    outcome: str,
    *,
    user_id: str | None = None,
    client_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record an audit event in this request's unit of work; never pass a secret in `detail`.

    Events outlive the rollback of a request that failed with a 5xx (see install_unit_of_work).
    Failures count against their address's quota: past it, one `audit_suppressed` event says so and
    the rest of the hour's failures from there are only counted (idp_audit_suppressed_total).
    """
    fields: dict[str, Any] = {
        "event": event,
        "outcome": outcome,
        "at": int(time.time()),
        "user_id": user_id,
        "client_id": client_id,
        "ip": request.remote_addr,
        "user_agent": request.user_agent.string,
        "detail": detail,
    }
    if outcome != "success":
        quotas = services().quotas
        usage = quotas.use(quotas.audited_failures, address=request.remote_addr)
        if usage is Usage.OVER:
            observability.AUDIT_SUPPRESSED.labels(event).inc()
            return
        if usage is Usage.FIRST_OVER:
            observability.AUDIT_SUPPRESSED.labels(event).inc()
            window = quotas.audited_failures.window
            fields |= {"event": "audit_suppressed", "outcome": "limited", "user_id": None, "client_id": None}
            fields["detail"] = {"event": event, "for_seconds": window}
    g.setdefault("audit_events", []).append(fields)
    durable_store().audit.record(audit_event(**fields))


def before_commit(action: Callable[[], None]) -> None:
    """Run `action` in this request's unit of work just before it commits; never when it is rolled
    back (changes gathered over the request, written once)."""
    g.setdefault("before_commit", []).append(action)


def after_commit(action: Callable[[], None]) -> None:
    """Run `action` once this request's unit of work is committed; never when it is rolled back."""
    g.setdefault("after_commit", []).append(action)


def install_unit_of_work(app: Flask) -> None:
    """Commit before the response leaves (so a failed commit is a failed request); roll back on error."""

    @app.after_request
    def commit(response: Any) -> Any:
        if response.status_code >= 500:
            _keep_browser_session_as_it_was()
        else:
            _write_gathered_changes()
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            try:
                if response.status_code < 500:
                    session.commit()
                else:
                    session.rollback()
                    _keep_audit_events(session)
            finally:
                session.close()
        actions: list[Callable[[], None]] = g.pop("after_commit", [])
        if response.status_code < 500:
            for action in actions:
                action()
        return response

    def _write_gathered_changes() -> None:
        """The request's `before_commit` writes; and a unit of work that changed factors drops the
        browser session's record of the account (its pages are then chosen on the account as it is)."""
        unit: Session | None = g.get("db_session")
        if unit is not None and unit.info.get(FACTORS_CHANGED):
            browser_session.pop(ACCOUNT_RECORD_KEY, None)
        gathered: list[Callable[[], None]] = g.pop("before_commit", [])
        for write in gathered:
            write()

    def _keep_browser_session_as_it_was() -> None:
        """The browser's session is part of the unit of work: a failed request saves none of its changes
        (a proof, a new id, a draft taken), so none outlives the rows rolled back with it."""
        if isinstance(browser_session, ServerSession):
            browser_session.modified = False
            browser_session.previous_id = None

    def _keep_audit_events(session: Session) -> None:
        """The request's changes are undone, but what was attempted stays in the audit log."""
        events = g.pop("audit_events", [])
        if events:
            DurableStore.over(session).audit.record_all([audit_event(**fields) for fields in events])
            session.commit()

    @app.teardown_request
    def rollback(_error: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:
            session.rollback()
            session.close()
