"""The bearer token a request to a protected resource presents (RFC 6750 2.1, 2.2), and the challenge
(RFC 6750 3) when it presents none or an unusable one."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Response, jsonify

from idp.oidc.error_descriptions import describe

FORM = "application/x-www-form-urlencoded"


class TokenSentTwice(Exception):
    """The token came in the Authorization header and in the body (RFC 6750 3.1 invalid_request)."""

    description = "The access token must be sent one way only: in the header or in the body."


def presented_token(*, authorization: str, method: str, mimetype: str, form: Mapping[str, str]) -> str | None:
    """The access token in the Authorization header (2.1) or, in a form-encoded body that is not a
    GET's, the access_token parameter (2.2); None when the request carries neither."""
    scheme, _, credentials = authorization.partition(" ")
    in_header = credentials.strip() if scheme.lower() == "bearer" else ""
    in_body = form.get("access_token", "") if method != "GET" and mimetype == FORM else ""
    if in_header and in_body:
        raise TokenSentTwice()
    return in_header or in_body or None


def challenge(error: str | None = None, *, description: str | None = None, status: int = 401) -> Response:
    """RFC 6750 3: `WWW-Authenticate: Bearer`, with an error only when a token was presented (3.1)."""
    if error is None:
        response = Response(status=status)
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    response = jsonify(error=error, error_description=describe(error, description))
    response.status_code = status
    response.headers["WWW-Authenticate"] = f'Bearer error="{error}"'
    return response
