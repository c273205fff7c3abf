"""What the prompt parameter asks of the provider (OIDC Core 3.1.2.1)."""

from __future__ import annotations

from enum import StrEnum


class Prompt(StrEnum):
    NONE = "none"
    LOGIN = "login"
    CONSENT = "consent"
    SELECT_ACCOUNT = "select_account"


KNOWN = frozenset(Prompt)


def requested_prompts(raw: str | None) -> frozenset[Prompt]:
    """The prompt values a request names; unknown values are ignored (OIDC Core 3.1.2.1)."""
    return frozenset(Prompt(value) for value in (raw or "").split() if value in KNOWN)
