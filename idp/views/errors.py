"""The provider's error pages, each named for what went wrong; what they say reveals no detail."""

from __future__ import annotations

from flask import Response, render_template

SIGN_IN_EXPIRED = (
    "This sign-in has expired or was already completed. Return to the application and start again."
)


def error_page(title: str, message: str, *, status: int) -> Response:
    return Response(render_template("error.html", title=title, message=message), status=status)


def sign_in_expired() -> Response:
    """The sign-in in progress is unknown, spent, timed out, or belongs to another browser."""
    return error_page("Sign-in expired", SIGN_IN_EXPIRED, status=400)


def invalid_authorization_request(message: str) -> Response:
    """An authorization request that cannot be answered at the client (RFC 6749 4.1.2.1)."""
    return error_page("This sign-in link is not valid", message, status=400)


def cannot_continue(message: str) -> Response:
    """The account cannot reach what a page of the provider's own requires."""
    return error_page("You cannot continue", message, status=403)


def cannot_sign_out(message: str) -> Response:
    return error_page("Cannot sign out this way", message, status=400)


def too_many_sign_ins(retry_after: int) -> Response:
    """Too many sign-ins were started from this address within the sign-in lifetime."""
    minutes = max(1, retry_after // 60)
    message = f"Too many sign-ins were started from your network. Try again in {minutes} minutes."
    response = error_page("Too many sign-ins", message, status=429)
    response.headers["Retry-After"] = str(retry_after)
    return response


def storage_unavailable() -> Response:
    message = "The sign-in service cannot reach its storage. Please try again shortly."
    response = error_page("Temporarily unavailable", message, status=503)
    response.headers["Retry-After"] = "5"
    return response
