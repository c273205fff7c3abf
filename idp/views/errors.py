"""The provider's error pages, each named for what went wrong; what they say reveals no detail, in the
reader's language."""

from __future__ import annotations

from authlib.oauth2 import OAuth2Error
from flask import Response, current_app, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from idp.languages import N_
from idp.views import passkeys
from idp.web import authorization_server
from idp.words import _, ngettext

SIGN_IN_EXPIRED = N_(
    "This sign-in has expired or was already completed. Return to the application and start again."
)
FORM_EXPIRED = (
    N_("This form has expired"),
    N_("The page was open too long or did not come from this site. Reload it and try again."),
)
# Refusals before or outside a view, by status: a title and a sentence (never the framework's page).
HTTP_ERRORS = {
    400: (N_("Bad request"), N_("The request could not be understood.")),
    404: (N_("Page not found"), N_("There is no page at this address.")),
    405: (N_("Not allowed here"), N_("This address does not accept this kind of request.")),
    413: (N_("Request too large"), N_("The request is larger than the provider accepts.")),
    500: (N_("Something went wrong"), N_("The sign-in service could not answer. Please try again.")),
}
OTHER_HTTP_ERROR = (N_("Request refused"), N_("The request could not be completed."))
# A sign-in ending on the provider's own pages was refused: what the reader is told, by OAuth error.
REFUSALS = {
    "access_denied": N_("This sign-in was refused or cancelled. Go back to where you started and try again."),
    "unmet_authentication_requirements": N_(
        "Your account has no sign-in method strong enough for this. Add a passkey or security key "
        "on your account page, or ask your administrator."
    ),
    "login_required": N_("Sign in first, then try again."),
}
OTHER_REFUSAL = N_("This sign-in cannot go on. Go back to where you started and try again.")
# Endpoints whose refusals are JSON: OAuth errors (RFC 6749 5.2, RFC 6750 3.1), and the passkey
# ceremonies' {"error": message} (idp.views.passkeys.json_error).
PROTOCOL_ENDPOINTS = frozenset(
    {"oidc.token", "oidc.revoke", "oidc.introspect", "oidc.userinfo", "oidc.device_authorization"}
)
JSON_ENDPOINTS = frozenset(
    {
        "signin.passkey_options",
        "signin.passkey",
        "signin.enrol_passkey_options",
        "signin.enrol_passkey_finish",
        "account.passkey_options",
        "account.add_passkey",
    }
)


def error_page(title: str, message: str, *, status: int, detail: str | None = None) -> Response:
    """The page of an error: `title` and `message` in the reader's language; `detail` is the
    protocol's description of it, in English, for whoever looks into it."""
    body = render_template("error.html", title=title, message=message, detail=detail)
    return Response(body, status=status)


def sign_in_expired() -> Response:
    """The sign-in in progress is unknown, spent, timed out, or belongs to another browser."""
    return error_page(_("Sign-in expired"), _(SIGN_IN_EXPIRED), status=400)


def invalid_authorization_request(description: str) -> Response:
    """An authorization request that cannot be answered at the client (RFC 6749 4.1.2.1)."""
    return error_page(
        _("This sign-in link is not valid"),
        _("The application sent a sign-in request that cannot be answered. Go back to it and try again."),
        detail=description,
        status=400,
    )


def sign_in_refused(error: str, description: str) -> Response:
    """A sign-in ending on the provider's own pages (an account page, a device) was refused."""
    return error_page(
        _("You cannot continue"), _(REFUSALS.get(error, OTHER_REFUSAL)), detail=description, status=403
    )


def device_code_expired() -> Response:
    """The user code at /device expired, or the device was approved or denied already."""
    return error_page(
        _("Code expired"),
        _("This code has expired or was already used. Start again on your device to get a new one."),
        status=400,
    )


def cannot_continue(message: str) -> Response:
    """The account cannot reach what a page of the provider's own requires."""
    return error_page(_("You cannot continue"), message, status=403)


def cannot_sign_out(message: str) -> Response:
    return error_page(_("Cannot sign out this way"), message, status=400)


def not_found(message: str) -> Response:
    """What a console page names does not exist (any more)."""
    return error_page(_("Not found"), message, status=404)


def too_many_sign_ins(retry_after: int) -> Response:
    """Too many sign-ins were started from this address within the sign-in lifetime."""
    minutes = max(1, retry_after // 60)
    message = ngettext(
        "Too many sign-ins were started from your network. Try again in %(num)d minute.",
        "Too many sign-ins were started from your network. Try again in %(num)d minutes.",
        minutes,
    )
    response = error_page(_("Too many sign-ins"), message, status=429)
    response.headers["Retry-After"] = str(retry_after)
    return response


def storage_unavailable() -> Response:
    message = _("The sign-in service cannot reach its storage. Please try again shortly.")
    response = error_page(_("Temporarily unavailable"), message, status=503)
    response.headers["Retry-After"] = "5"
    return response


def http_error(error: HTTPException) -> Response:
    """A refusal before or outside a view (a failed CSRF check, an unknown path, a body too large):
    the endpoint's JSON error at protocol and JSON endpoints, the provider's page everywhere else."""
    status = error.code or 500
    title, message = (
        FORM_EXPIRED if isinstance(error, CSRFError) else HTTP_ERRORS.get(status, OTHER_HTTP_ERROR)
    )
    endpoint = _addressed_endpoint(error)
    response: Response
    if endpoint in PROTOCOL_ENDPOINTS:
        code = "server_error" if status >= 500 else "invalid_request"
        response = authorization_server().handle_error_response(
            request, OAuth2Error(message, status_code=status, error=code)
        )
    elif endpoint in JSON_ENDPOINTS:
        response = passkeys.json_error(_(message), status=status)
    else:
        response = error_page(_(title), _(message), status=status)
    if isinstance(error, MethodNotAllowed):
        response.headers["Allow"] = ", ".join(error.valid_methods or ())
    return response


def _addressed_endpoint(error: HTTPException) -> str | None:
    """The endpoint the request was for, also when its method is not one the endpoint accepts."""
    if request.url_rule is not None:
        return str(request.url_rule.endpoint)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        adapter = current_app.url_map.bind_to_environ(request.environ)
        endpoint, _arguments = adapter.match(method=next(iter(error.valid_methods)))
        return str(endpoint)
    return None
