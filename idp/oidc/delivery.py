"""Authorization responses to the client: query redirect or form_post (OAuth 2.0 Form Post Response Mode)."""

from __future__ import annotations

from authlib.common.urls import add_params_to_uri
from flask import Response, render_template

from idp.oidc.error_descriptions import describe

RESPONSE_MODES = ("query", "form_post")


def deliver(
    redirect_uri: str, params: list[tuple[str, str]], response_mode: str | None, *, issuer: str
) -> tuple[int, str, list[tuple[str, str]]]:
    """The response that carries `params` and the issuer (RFC 9207) to a validated redirect URI."""
    params = [*params, ("iss", issuer)]
    if response_mode == "form_post":
        body = render_template("form_post.html", redirect_uri=redirect_uri, params=params)
        return 200, body, [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")]
    return 302, "", [("Location", add_params_to_uri(redirect_uri, params)), ("Cache-Control", "no-store")]


def deliver_error(
    redirect_uri: str,
    *,
    error: str,
    description: str,
    state: str | None,
    response_mode: str | None,
    issuer: str,
) -> Response:
    """An error response to the client (RFC 6749 4.1.2.1), by the requested response mode."""
    params = [("error", error), ("error_description", describe(error, description))]
    if state:
        params.append(("state", state))
    status, body, headers = deliver(redirect_uri, params, response_mode, issuer=issuer)
    return Response(body, status=status, headers=headers)
