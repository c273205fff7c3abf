"""What an authorization request keeps while the user signs in: only the parameters the provider
(and authlib, replaying the request) reads, at most 4 KiB of them."""

from __future__ import annotations

from collections.abc import Mapping

from authlib.oauth2.rfc6749 import InvalidRequestError

# OIDC Core 3.1.2.1 and 5.5 as far as they are implemented, and RFC 7636; the rest are ignored
# (RFC 6749 3.1: unrecognized parameters are ignored).
UNDERSTOOD = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "response_mode",
        "prompt",
        "max_age",
        "acr_values",
        "claims",
        "code_challenge",
        "code_challenge_method",
        "authorization_details",  # RFC 9396, kept in its canonical form once validated
    }
)
MAX_KEPT_BYTES = 4096


def kept_parameters(data: Mapping[str, object], *, redirect_uri: str, state: str | None) -> dict[str, str]:
    """The understood parameters of a validated request; InvalidRequestError (to the client's
    `redirect_uri`) when they add up to more than MAX_KEPT_BYTES."""
    kept = {name: str(value) for name, value in data.items() if name in UNDERSTOOD}
    size = sum(len(name.encode()) + len(value.encode()) for name, value in kept.items())
    if size > MAX_KEPT_BYTES:
        raise InvalidRequestError(
            f"the authorization request's parameters exceed {MAX_KEPT_BYTES} bytes",
            redirect_uri=redirect_uri,
            state=state,
        )
    return kept
