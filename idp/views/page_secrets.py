"""Secrets a page shows (fresh recovery codes, a drafted authenticator key): kept for minutes under an
ephemeral key of their own, never in the 12-hour session, which holds only that key."""

from __future__ import annotations

import json
import secrets
from typing import Any

from flask import session

from idp.web import services

KEY_PREFIX = "page-secret:"


def keep(name: str, value: dict[str, Any], *, ttl: int) -> None:
    """Keep `value` for `ttl` seconds, for this browser's session only (under `name` in it)."""
    handle = secrets.token_urlsafe(24)
    services().ephemeral.put(KEY_PREFIX + handle, json.dumps(value).encode(), ttl=ttl)
    session[name] = handle


def peek(name: str) -> dict[str, Any] | None:
    """What this session keeps under `name`, if it has not expired."""
    handle = session.get(name)
    raw = services().ephemeral.get(KEY_PREFIX + handle) if isinstance(handle, str) else None
    return None if raw is None else _loaded(raw)


def take(name: str) -> dict[str, Any] | None:
    """What this session keeps under `name`, once: afterwards it is gone from the store and the session."""
    handle = session.pop(name, None)
    raw = services().ephemeral.take(KEY_PREFIX + handle) if isinstance(handle, str) else None
    return None if raw is None else _loaded(raw)


def _loaded(raw: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(raw)
    return value
