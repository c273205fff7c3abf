"""The management layer as a request uses it: this request's unit of work and audit address, acting
as `actor`, telling the clients of every session it ends as signing out does."""

from __future__ import annotations

from collections.abc import Sequence

from flask import request

from idp.management.context import Actor, Management
from idp.views.session_state import tell_clients_sessions_ended
from idp.web import durable_store, services


def management_as(via: str, subject: str) -> Management:
    """The management layer acting for `subject` (an administrator, or a user on their own account)."""
    found = services()
    actor = Actor(via=via, subject=subject, ip=request.remote_addr, user_agent=request.user_agent.string)
    return Management(
        store=durable_store(),
        ephemeral=found.ephemeral,
        settings=found.settings,
        actor=actor,
        tell_clients=_tell_clients,
    )


def _tell_clients(sids: Sequence[str], *, reason: str) -> None:
    tell_clients_sessions_ended(sids, reason=reason)
