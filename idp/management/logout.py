"""Ending sessions outside a request (the command line): the clients are told as the pages tell them,
their grants revoked in the command's unit of work and the logout_tokens POSTed once it is committed,
before the command exits."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from idp.auth.policy import AssurancePolicy
from idp.config import Settings
from idp.oidc.authorization_details import DetailTypes
from idp.oidc.backchannel import BackChannelDelivery, DeliveryFailed, audit_delivery_failure
from idp.oidc.clients import ClientCache
from idp.oidc.context import ProviderContext, provider_context
from idp.oidc.keys import KeyRing
from idp.oidc.logout import BackChannelNotice, end_sessions_at_clients
from idp.oidc.tokens import TokenService
from idp.store.database import Database
from idp.store.durable import DurableStore, audit_event
from idp.store.ephemeral import EphemeralStore


class CommandLineLogout:
    """The management layer's `tell_clients` for one command; `deliver` after the commit."""

    def __init__(self, settings: Settings, *, store: DurableStore, ephemeral: EphemeralStore) -> None:
        self._settings = settings
        self._store = store
        self._notices: list[BackChannelNotice] = []
        self._context: ProviderContext | None = None
        self._ephemeral = ephemeral

    def __call__(self, sids: Sequence[str], *, reason: str) -> None:
        logout = end_sessions_at_clients(self._provider_context(), sids, reason=reason)
        self._notices.extend(logout.notices)

    def deliver(self) -> None:
        """POST the logout_tokens with the configured timeout and retries; failures are audited."""
        if not self._notices:
            return
        delivery = BackChannelDelivery(self._settings.logout, report_failure=self._audit_failure)
        delivery.submit(self._notices)
        delivery.drain()

    def _provider_context(self) -> ProviderContext:
        """What ending sessions at the clients needs of the provider: its keys, tokens and store."""
        if self._context is None:
            settings = self._settings
            keyring = KeyRing.load(Path(settings.keys.directory))
            self._context = provider_context(
                settings,
                tokens=TokenService(
                    issuer=settings.issuer,
                    keyring=keyring,
                    algorithm=settings.keys.algorithm,
                    ephemeral=self._ephemeral,
                    access_token_lifetime=settings.tokens.access_token_lifetime,
                ),
                ephemeral=self._ephemeral,
                keyring=keyring,
                clients=ClientCache(load=self._store.clients.get_detached, ttl=0),
                durable=lambda: self._store,
                audit=self._audit,
                policy=AssurancePolicy.from_settings(settings),
                authorization_details=DetailTypes(settings.authorization_details),
            )
        return self._context

    def _audit(
        self,
        event: str,
        outcome: str,
        *,
        user_id: str | None = None,
        client_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        self._store.audit.record(
            audit_event(
                event,
                outcome,
                at=int(time.time()),
                user_id=user_id,
                client_id=client_id,
                detail={**(detail or {}), "via": "cli"},
            )
        )

    def _audit_failure(self, failed: DeliveryFailed) -> None:
        database = Database(self._settings.database_url)
        try:
            audit_delivery_failure(database, failed)
        finally:
            database.engine.dispose()
