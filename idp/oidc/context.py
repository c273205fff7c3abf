"""What the grants and token endpoints need from the provider, handed to them through the server."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from idp.auth.policy import AssurancePolicy
from idp.config import DeviceSettings, ParSettings, Settings, TokenSettings
from idp.oidc.authorization_details import DetailTypes
from idp.oidc.client_keys import ClientKeys
from idp.oidc.clients import ClientCache
from idp.oidc.dpop import DpopVerifier, StoredProofs
from idp.oidc.keys import KeyRing
from idp.oidc.tokens import TokenService
from idp.secrets import load_session_secret
from idp.store.durable import DurableStore
from idp.store.ephemeral import EphemeralStore


class AuditLog(Protocol):
    """Records one audit event in the current unit of work; never pass a secret in `detail`."""

    def __call__(
        self,
        event: str,
        outcome: str,
        *,
        user_id: str | None = None,
        client_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None: ...


@dataclass(frozen=True)
class ProviderContext:
    """The provider's services as protocol code sees them; grants read it as `self.server.context`.

    The durable store is a callable: each request has a unit of work of its own.
    """

    issuer: str
    lifetimes: TokenSettings
    tokens: TokenService
    ephemeral: EphemeralStore
    keyring: KeyRing
    clients: ClientCache
    durable: Callable[[], DurableStore]
    audit: AuditLog
    client_keys: ClientKeys
    par: ParSettings
    authorization_details: DetailTypes
    policy: AssurancePolicy  # for what a device request asks of the sign-in (RFC 8628 with RFC 9470)
    device: DeviceSettings
    dpop: DpopVerifier

    def revoke_grant(self, grant_id: str, *, reason: str) -> None:
        """Revoke every refresh and access token of one grant."""
        self.durable().refresh_tokens.revoke_family(grant_id)
        self.tokens.revoke_grant_access_tokens(grant_id)
        self.audit("grant_revoked", "success", detail={"grant_id": grant_id, "reason": reason})

    def revoke_user_grants(self, user_id: str, *, reason: str) -> int:
        """Revoke every grant of one user that still has a usable refresh token; returns how many."""
        families = self.durable().refresh_tokens.live_families_of(user_id, now=int(time.time()))
        for family_id in families:
            self.revoke_grant(family_id, reason=reason)
        return len(families)


def provider_context(
    settings: Settings,
    *,
    tokens: TokenService,
    ephemeral: EphemeralStore,
    keyring: KeyRing,
    clients: ClientCache,
    durable: Callable[[], DurableStore],
    audit: AuditLog,
    policy: AssurancePolicy,
    authorization_details: DetailTypes,
) -> ProviderContext:
    """The context of the provider these settings describe, on the given services and unit of work
    (a request's, or a command's)."""
    return ProviderContext(
        issuer=settings.issuer,
        lifetimes=settings.tokens,
        tokens=tokens,
        ephemeral=ephemeral,
        keyring=keyring,
        clients=clients,
        durable=durable,
        audit=audit,
        client_keys=ClientKeys(settings.client_keys),
        par=settings.par,
        authorization_details=authorization_details,
        policy=policy,
        device=settings.device,
        dpop=DpopVerifier(
            issuer=settings.issuer,
            settings=settings.dpop,
            seen=StoredProofs(ephemeral),
            nonce_secret=load_session_secret(Path(settings.keys.directory)),
        ),
    )
