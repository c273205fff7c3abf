"""What every management operation works with: one unit of work, the settings, and who acts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from idp.config import Settings
from idp.store.durable import DurableStore, audit_event
from idp.store.ephemeral import EphemeralStore


class ManagementError(Exception):
    """An operation refused; its message is one sentence an operator can act on."""


class NotFound(ManagementError):
    """No such user, client, session or key."""


class Conflict(ManagementError):
    """The operation contradicts the current state (a name taken, the active key)."""


class Invalid(ManagementError):
    """The input breaks a rule (password policy, user-name syntax, a client registration rule)."""


@dataclass(frozen=True)
class Actor:
    """Who performs an operation: an administrator's subject through the API, or the operator's shell."""

    via: str
    subject: str | None = None
    ip: str | None = None
    user_agent: str | None = None


CLI = Actor(via="cli")


class TellClients(Protocol):
    """Tell the clients that received tokens in these ended browser sessions (Back- and Front-Channel
    Logout 1.0): their session-bound grants revoked in this unit of work, logout_tokens sent after it."""

    def __call__(self, sids: Sequence[str], *, reason: str) -> None: ...


@dataclass(frozen=True)
class Management:
    store: DurableStore
    ephemeral: EphemeralStore
    settings: Settings
    actor: Actor
    tell_clients: TellClients
    now: int = field(default_factory=lambda: int(time.time()))

    def record(
        self,
        event: str,
        *,
        user_id: str | None = None,
        client_id: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """An audit event saying who did it (`by`, `via`); never pass a secret in `detail`."""
        by = (
            {"by": self.actor.subject, "via": self.actor.via}
            if self.actor.subject
            else {"via": self.actor.via}
        )
        self.store.audit.record(
            audit_event(
                event,
                "success",
                at=self.now,
                user_id=user_id,
                client_id=client_id,
                ip=self.actor.ip,
                user_agent=self.actor.user_agent,
                detail={**(detail or {}), **by},
            )
        )
