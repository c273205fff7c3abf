"""CSRF defence in depth: a form post that names another origin is refused (Fetch standard, Origin header).

Flask-WTF's strict https check wants a `Referer`, which browsers never send under our
`Referrer-Policy: no-referrer`; the `Origin` header is checked instead, and the session-bound CSRF
token (Flask-WTF) stays the primary defence.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, request
from flask_wtf.csrf import CSRFError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Under no-referrer a browser sends `Origin: null` for a same-origin form post (Fetch 3.1.4).
OPAQUE_ORIGIN = "null"


def install_origin_check(app: Flask, *, expected_origin: str, exempt: Iterable[Callable[..., Any]]) -> None:
    """Refuse an unsafe request whose Origin is another site's, on every view the CSRF token guards."""
    exempt_views = frozenset(exempt)

    @app.before_request
    def verify_origin() -> None:
        if request.method in SAFE_METHODS or app.view_functions.get(request.endpoint or "") in exempt_views:
            return
        origin = request.headers.get("Origin")
        if origin not in (None, OPAQUE_ORIGIN, expected_origin):
            raise CSRFError("The request came from another site.")
