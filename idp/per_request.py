"""Values a request works out once and then reuses, kept on `flask.g` (one application context a request)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar, cast

from flask import g, has_app_context

T = TypeVar("T")
NOT_YET = object()


def once_per_request(compute: Callable[[], T]) -> Callable[[], T]:
    """`compute()` the first time a request asks, its result after; outside an application context
    (a command), every time."""
    key = f"once:{compute.__module__}.{compute.__qualname__}"

    @wraps(compute)
    def reused() -> T:
        if not has_app_context():
            return compute()
        found = g.get(key, NOT_YET)
        if found is NOT_YET:
            found = compute()
            setattr(g, key, found)
        return cast(T, found)

    return reused
