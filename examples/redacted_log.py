"""The demo servers' access log without secrets: codes, tokens, `state` and PKCE verifiers in a request
line's query are replaced by [redacted] before werkzeug prints it."""

from __future__ import annotations

import re

from werkzeug.serving import WSGIRequestHandler

SENSITIVE = (
    "code",
    "state",
    "code_verifier",
    "access_token",
    "id_token",
    "refresh_token",
    "token",
    "id_token_hint",
    "logout_token",
    "client_secret",
    "session_state",
)
_SENSITIVE_VALUE = re.compile(rf"([?&](?:{'|'.join(SENSITIVE)})=)[^&\s]*")


def redacted(line: str) -> str:
    """`GET /callback?code=abc&iss=x` -> `GET /callback?code=[redacted]&iss=x`."""
    return _SENSITIVE_VALUE.sub(r"\1[redacted]", line)


class RedactedRequestHandler(WSGIRequestHandler):
    """werkzeug's request handler, logging the redacted request line (the app still sees it whole)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path, requestline = getattr(self, "path", None), self.requestline
        if path is not None:
            self.path = redacted(path)
        self.requestline = redacted(requestline)
        try:
            super().log_request(code, size)
        finally:
            if path is not None:
                self.path = path
            self.requestline = requestline
