"""A small relying party: delegates login to the provider (code + PKCE) and shows the ID token's claims.

It also calls a demo API for a sensitive operation, a payment; when the API answers with an RFC 9470
challenge, it signs the user in again with the challenge's acr_values and max_age, and the payment as
RFC 9396 authorization_details for the user to approve, then retries. It receives
back-channel logout (OpenID Back-Channel Logout 1.0) at /backchannel-logout: a verified logout_token
ends its local session for that sid (or every session of that sub signed in before it).

Run by `idp demo`; settings come from the environment: DEMO_ISSUER, DEMO_CLIENT_ID, DEMO_PORT,
DEMO_API (the API's base URL). Standard library plus flask and joserfc, as any client could be. Its
access log hides codes, tokens and state (redacted_log.py).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from flask import Flask, redirect, render_template_string, request, session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ISSUER = os.environ.get("DEMO_ISSUER", "http://localhost:8000")
CLIENT_ID = os.environ["DEMO_CLIENT_ID"]
PORT = int(os.environ.get("DEMO_PORT", "8001"))
BASE = f"http://localhost:{PORT}"
API = os.environ.get("DEMO_API", "http://localhost:8002")
REDIRECT_URI = f"{BASE}/callback"

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
PAYMENT = {"amount": "120.00", "currency": "EUR", "creditorName": "ACME Ltd"}

app = Flask(__name__)
app.secret_key = secrets.token_bytes(32)
app.config["SESSION_COOKIE_NAME"] = "demo_rp"

# What back-channel logout ended. The sessions live in signed cookies, so they are ended here, when
# the browser next shows one: a session whose sid was logged out, or of a subject logged out
# everywhere since it signed in. A logout_token's jti is accepted once, until it expires.
_ended = threading.Lock()
ENDED_SIDS: set[str] = set()
ENDED_SUBJECTS: dict[str, int] = {}
SEEN_JTIS: dict[str, int] = {}

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Demo app</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem">
<h1>Demo console app</h1>
{% if error %}<p role="alert" style="color:#b3261e">{{ error }}</p>{% endif %}
{% if claims %}
  <p id="signed-in">Signed in as <strong>{{ claims.get('preferred_username', claims.sub) }}</strong>
  with <strong id="acr">{{ claims.acr }}</strong> ({{ ', '.join(claims.amr) }}).</p>
  <h2>Sensitive operation</h2>
  <p>The demo API makes a payment only when you approved that very payment with your passkey.</p>
  <form method="post" action="/transfer">
    <button id="transfer" type="submit">Pay 120.00 EUR to ACME Ltd</button></form>
  {% if transfer %}<p id="transfer-result">{{ transfer }}</p>{% endif %}
  <h2>ID token claims</h2><pre id="claims">{{ pretty }}</pre>
  <p><a href="{{ issuer }}/account">Your sign-in methods at the provider</a> (add a passkey there)
   · <a href="/logout">Sign out</a></p>
{% else %}
  <p>This app delegates sign-in to the identity provider at {{ issuer }}.</p>
  <p><a id="login" href="/login">Sign in</a></p>
{% endif %}
</body></html>"""


def _metadata() -> dict[str, Any]:
    with urllib.request.urlopen(f"{ISSUER}/.well-known/openid-configuration", timeout=5) as response:  # noqa: S310
        return dict(json.load(response))


@app.before_request
def end_logged_out_session() -> None:
    claims = session.get("claims")
    if not claims:
        return
    with _ended:
        ended = claims.get("sid") in ENDED_SIDS or claims["iat"] <= ENDED_SUBJECTS.get(claims["sub"], -1)
    if ended:
        session.clear()


@app.route("/")
def index() -> str:
    claims = session.get("claims")
    pretty = json.dumps(claims, indent=2, sort_keys=True) if claims else ""
    return render_template_string(
        PAGE,
        claims=claims,
        pretty=pretty,
        issuer=ISSUER,
        error=request.args.get("error"),
        transfer=session.pop("transfer", None),
    )


@app.route("/login")
def login() -> Any:
    return _authorize({key: request.args[key] for key in ("acr_values", "max_age") if key in request.args})


def _challenged(www_authenticate: str) -> dict[str, str]:
    """An RFC 9470 challenge's parameters; the authorization details it names (base64url JSON, as
    idp.resource writes them) become the authorization_details parameter of the next request."""
    challenge = dict(re.findall(r'(\w+)="?([^",]*)"?', www_authenticate))
    encoded = challenge.pop("authorization_details", None)
    if encoded:
        challenge["authorization_details"] = base64.urlsafe_b64decode(
            encoded + "=" * (-len(encoded) % 4)
        ).decode()
    return challenge


def _authorize(extra: dict[str, str]) -> Any:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    session["flow"] = {
        "state": secrets.token_urlsafe(16),
        "nonce": secrets.token_urlsafe(16),
        "verifier": verifier,
    }
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": session["flow"]["state"],
        "nonce": session["flow"]["nonce"],
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return redirect(f"{_metadata()['authorization_endpoint']}?{urllib.parse.urlencode(params)}")


@app.route("/callback")
def callback() -> Any:
    flow = session.pop("flow", None)
    if flow is None or request.args.get("state") != flow["state"]:
        return redirect("/?error=state+mismatch")
    if request.args.get("iss") != ISSUER:
        return redirect("/?error=wrong+issuer")
    if "error" in request.args:
        return redirect(
            "/?"
            + urllib.parse.urlencode({"error": request.args.get("error_description", request.args["error"])})
        )
    metadata = _metadata()
    body = urllib.parse.urlencode(
        {
            "grant_type": "authorization_code",
            "code": request.args["code"],
            "redirect_uri": REDIRECT_URI,
            "client_id": CLIENT_ID,
            "code_verifier": flow["verifier"],
        }
    ).encode()
    with urllib.request.urlopen(metadata["token_endpoint"], data=body, timeout=5) as response:  # noqa: S310
        tokens = json.load(response)
    with urllib.request.urlopen(metadata["jwks_uri"], timeout=5) as response:  # noqa: S310
        keys = KeySet.import_key_set(json.load(response))
    token = jwt.decode(tokens["id_token"], keys, algorithms=["RS256", "ES256"])
    claims = dict(token.claims)
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER}, nonce={"essential": True, "value": flow["nonce"]}
    )
    registry.validate(claims)
    if CLIENT_ID not in (claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]):
        return redirect("/?error=wrong+audience")
    session["claims"] = claims
    session["id_token"] = tokens["id_token"]
    session["access_token"] = tokens["access_token"]
    session["refresh_token"] = tokens.get("refresh_token")
    if session.pop("retry_transfer", False):
        return _call_transfer(stepped_up=True)
    return redirect("/")


@app.route("/transfer", methods=["POST"])
def transfer() -> Any:
    return _call_transfer(stepped_up=False)


def _call_transfer(*, stepped_up: bool) -> Any:
    """Call the API; on insufficient_user_authentication, step up once as the challenge says, then retry."""
    call = urllib.request.Request(  # noqa: S310
        f"{API}/api/transfer",
        method="POST",
        data=json.dumps(PAYMENT).encode(),
        headers={
            "Authorization": f"Bearer {session.get('access_token', '')}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(call, timeout=5) as response:  # noqa: S310
            answer = json.load(response)
            session["transfer"] = f"Done: {answer['status']} {answer['amount']} to {answer['to']}"
    except urllib.error.HTTPError as refused:
        challenge = _challenged(refused.headers.get("WWW-Authenticate", ""))
        if challenge.get("error") != "insufficient_user_authentication" or stepped_up:
            reason = challenge.get("error_description", f"status {refused.code}")
            message = f"The API refused the transfer ({reason}). Add a passkey on your account page."
            return redirect("/?" + urllib.parse.urlencode({"error": message}))
        session["retry_transfer"] = True
        wanted = ("acr_values", "max_age", "authorization_details")
        return _authorize({key: challenge[key] for key in wanted if key in challenge})
    return redirect("/")


@app.route("/logout")
def logout() -> Any:
    id_token = session.pop("id_token", "")
    session.clear()
    params = {"id_token_hint": id_token, "post_logout_redirect_uri": f"{BASE}/"}
    return redirect(f"{_metadata()['end_session_endpoint']}?{urllib.parse.urlencode(params)}")


class LogoutTokenRefused(Exception):
    pass


@app.route("/backchannel-logout", methods=["POST"])
def backchannel_logout() -> Any:
    """OpenID Back-Channel Logout 1.0 2.6-2.8: verify the logout_token, end the session it names."""
    try:
        claims = verify_logout_token(request.form.get("logout_token", ""))
    except LogoutTokenRefused as refused:
        return (
            {"error": "invalid_request", "error_description": str(refused)},
            400,
            {"Cache-Control": "no-store"},
        )
    with _ended:
        if "sid" in claims:
            ENDED_SIDS.add(claims["sid"])
        else:
            ENDED_SUBJECTS[claims["sub"]] = claims["iat"]
    return "", 200, {"Cache-Control": "no-store"}


def verify_logout_token(token: str) -> dict[str, Any]:
    """Signed by the provider's key (JWKS), for this app, recent, an `events` member naming
    back-channel logout, a sid or a sub, no nonce (an ID token is not a logout token), jti once."""
    with urllib.request.urlopen(_metadata()["jwks_uri"], timeout=5) as response:  # noqa: S310
        keys = KeySet.import_key_set(json.load(response))
    try:
        decoded = jwt.decode(token, keys, algorithms=["RS256", "ES256"])
        claims = dict(decoded.claims)
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": ISSUER},
            iat={"essential": True},
            exp={"essential": True},
            jti={"essential": True},
        ).validate(claims)
    except (JoseError, ValueError, TypeError) as error:
        raise LogoutTokenRefused(f"not a valid token of the provider ({error})") from None
    if decoded.header.get("typ", "logout+jwt") != "logout+jwt":
        raise LogoutTokenRefused("not a logout token (typ)")
    audience = claims.get("aud")
    if CLIENT_ID not in (audience if isinstance(audience, list) else [audience]):
        raise LogoutTokenRefused("issued to another application")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise LogoutTokenRefused("no back-channel logout event")
    if "nonce" in claims:
        raise LogoutTokenRefused("a logout token carries no nonce")
    if not isinstance(claims.get("sid"), str) and not isinstance(claims.get("sub"), str):
        raise LogoutTokenRefused("names neither a session nor a subject")
    now = int(time.time())
    with _ended:
        for jti, expiry in list(SEEN_JTIS.items()):
            if expiry < now:
                del SEEN_JTIS[jti]
        if claims["jti"] in SEEN_JTIS:
            raise LogoutTokenRefused("this logout token was used before")
        SEEN_JTIS[claims["jti"]] = int(claims["exp"])
    return claims


if __name__ == "__main__":
    from redacted_log import RedactedRequestHandler  # beside this file, run as a script

    app.run(host="127.0.0.1", port=PORT, request_handler=RedactedRequestHandler)
