"""Error descriptions as sentences for people (RFC 6749 5.2, 4.1.2.1): authlib's wording mapped here, once.

Every OAuth error the provider answers passes through `describe`: authlib's own descriptions (which
quote parameter names, repeat the request's values or print a Python list) become the sentences
below; the provider's own descriptions are sentences already and are kept; anything else gets the
sentence for its error code.
"""

from __future__ import annotations

import re

# authlib's descriptions (authlib 1.x), matched from their start, and what people read instead.
AUTHLIB_WORDING: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), sentence)
    for pattern, sentence in (
        (r"The client cannot authenticate with methods", "The client could not be authenticated."),
        (r"Missing 'client_id' parameter", "The request does not name a client."),
        (r"The client does not exist on this server", "No client is registered with this client_id."),
        (r"The client is not authorized to use 'grant_type=", "The client may not use this grant type."),
        (
            r"The client is not authorized to use 'response_type=",
            "The client may not use this response type.",
        ),
        (r"The response type '.*' is not supported", "Only the code response type is supported."),
        (
            r"Redirect URI .* is not supported by client",
            "The redirect URI is not registered for this client.",
        ),
        (
            r"Missing 'redirect_uri' in request",
            "The request needs a redirect URI: the client registered more than one.",
        ),
        (r"Multiple '.*' in request", "A parameter is included more than once."),
        (r"Missing 'code' in request", "The request has no authorization code."),
        (r"Invalid 'code' in request", "The authorization code is invalid, expired or already used."),
        (
            r"Invalid 'redirect_uri' in request",
            "The redirect URI is not the one the authorization code was issued for.",
        ),
        (r"There is no 'user' for this code", "The account the code was issued for cannot sign in."),
        (r"There is no 'user' for this token", "The account the token was issued for cannot sign in."),
        (r"Missing 'refresh_token' in request", "The request has no refresh token."),
        (r"Missing 'code_challenge'", "The request has no PKCE code challenge."),
        (r"Invalid 'code_challenge'", "The PKCE code challenge is malformed."),
        (r"Unsupported 'code_challenge_method'", "The code challenge method must be S256."),
        (r"Missing 'code_verifier'", "The request has no PKCE code verifier."),
        (r"Invalid 'code_verifier'", "The PKCE code verifier is malformed."),
        (r"Code challenge failed", "The PKCE code verifier does not match the code challenge."),
        (r"The requested scope is invalid", "The requested scope is not allowed for this request."),
        (r"The resource owner or authorization server denied", "The request was denied."),
        (r"Missing 'device_code' in payload", "The request has no device code."),
    )
)

# The sentence for each error code, when a description is missing or not fit to show.
GENERIC = {
    "invalid_request": "The request is missing a parameter or has one that is not valid.",
    "invalid_client": "The client could not be authenticated.",
    "invalid_grant": "The grant is invalid, expired or revoked, or was issued to another client.",
    "unauthorized_client": "The client may not make this request.",
    "unsupported_grant_type": "The grant type is not supported.",
    "unsupported_response_type": "Only the code response type is supported.",
    "unsupported_token_type": "The token type is not supported.",
    "invalid_scope": "The requested scope is not allowed for this request.",
    "access_denied": "The request was denied.",
    "invalid_token": "The access token is invalid, expired or revoked.",
    "login_required": "The user must sign in.",
    "consent_required": "The user has not allowed this client to sign them in.",
    "account_selection_required": "The user must choose an account.",
    "unmet_authentication_requirements": "The user cannot authenticate as the request requires.",
    "server_error": "The provider failed to answer the request.",
    # RFC 8628 3.5: the answers to a device's polls
    "authorization_pending": "The user has not approved or denied the device yet.",
    "slow_down": "The device polls too often: it must wait 5 seconds longer between polls.",
    "expired_token": "The device code has expired: the device must start again.",
}
FALLBACK = "The request was refused."
# A sentence: a capital letter first, a full stop last, and nothing that reads like code in between.
SENTENCE = re.compile(r"[A-Z][^\[\]{}()'\"<>=\\]*\.")


def describe(error: str, description: str | None) -> str:
    """The error_description the provider sends for `error` (RFC 6749 5.2): always a sentence."""
    if description:
        for pattern, sentence in AUTHLIB_WORDING:
            if pattern.match(description):
                return sentence
        if SENTENCE.fullmatch(description):
            return description
    return GENERIC.get(error, FALLBACK)
