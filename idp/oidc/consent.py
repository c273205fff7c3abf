"""Consent (OIDC Core 3.1.2.4): whether a client must ask the user to allow it the scopes it requests.

Not an assurance decision: it is asked only once the pipeline says the sign-in is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import scope_to_list

from idp.oidc.context import ProviderContext
from idp.oidc.prompts import Prompt, requested_prompts


@dataclass(frozen=True)
class ConsentRequest:
    """What the user is asked to allow: a client and the scopes it would receive, beside what they
    allowed it before (still remembered)."""

    client_id: str
    client_name: str
    scopes: tuple[str, ...]
    allowed_before: frozenset[str]

    @property
    def allowed_after(self) -> frozenset[str]:
        """What the client is allowed once the user says yes: the remembered scopes stay allowed."""
        return self.allowed_before | frozenset(self.scopes)


def pending_consent(
    context: ProviderContext,
    *,
    user_id: str,
    client_id: str,
    params: Mapping[str, str],
    lifetime: int,
    now: float,
) -> ConsentRequest | None:
    """The consent to ask for before a code is issued, or None when there is none to ask: a
    third-party client asks once for each scope it is allowed (remembered for `lifetime` seconds);
    prompt=consent asks every time, for any client."""
    client = context.clients.get(client_id)
    prompts = requested_prompts(params.get("prompt"))
    if client is None or not (client.row.third_party or Prompt.CONSENT in prompts):
        return None
    granted = context.durable().consents.get(user_id, client_id)
    remembered = granted.scope.split() if granted and granted.granted_at > now - lifetime else ()
    asked = ConsentRequest(
        client_id=client_id,
        client_name=client.row.name,
        scopes=tuple(scope_to_list(client.get_allowed_scope(params.get("scope"))) or ()),
        allowed_before=frozenset(remembered),
    )
    if Prompt.CONSENT not in prompts and set(asked.scopes) <= asked.allowed_before:
        return None
    return asked
