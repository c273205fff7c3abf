"""A command-line app that signs in with the device flow (RFC 8628) and calls the demo API.

    python examples/demo_cli.py [--issuer URL] [--client-id ID] [--api URL]

It asks the provider for a user code, shows it with a QR code of the verification link, and polls
until the user approves it in a browser. It then calls the demo API; when the account statement (a
sensitive read) answers with an
RFC 9470 challenge (insufficient_user_authentication), it starts a new device flow with the
challenge's acr_values and max_age, so the user proves only what is missing, and tries again.

Defaults from the environment: DEMO_ISSUER, DEMO_CLI_CLIENT_ID, DEMO_API. Register the client with

    idp clients create --name "Demo CLI" --public \
        --grant-type urn:ietf:params:oauth:grant-type:device_code
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import segno

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TIMEOUT = 10
SLOW_DOWN_STEP = 5  # RFC 8628 3.5


class SignInFailed(Exception):
    """The device flow ended without tokens (denied, expired, or refused)."""


def post_form(url: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST a form; the JSON answer and its status, errors included (RFC 6749 5.2)."""
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return response.status, json.load(response)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


def sign_in(metadata: dict[str, Any], client_id: str, extra: dict[str, str]) -> dict[str, Any]:
    """One device flow to the end: the user code shown, then polls at the interval the provider asks."""
    status, started = post_form(
        metadata["device_authorization_endpoint"],
        {"client_id": client_id, "scope": "openid profile", **extra},
    )
    if status != 200:
        raise SignInFailed(started.get("error_description", started.get("error", f"status {status}")))
    link = started["verification_uri_complete"]
    print(f"\nTo sign in, open {link}")
    print(f"or go to {started['verification_uri']} and enter the code {started['user_code']}\n", flush=True)
    show_qr_code(link)
    print("Waiting for you to approve this in the browser...", flush=True)
    interval = int(started.get("interval", 5))
    deadline = time.monotonic() + int(started["expires_in"])
    form = {"grant_type": DEVICE_GRANT, "device_code": started["device_code"], "client_id": client_id}
    while time.monotonic() < deadline:
        time.sleep(interval)
        status, answer = post_form(metadata["token_endpoint"], form)
        if status == 200:
            return answer
        error = answer.get("error")
        if error == "slow_down":
            interval += SLOW_DOWN_STEP
        elif error != "authorization_pending":
            raise SignInFailed(answer.get("error_description", error))
    raise SignInFailed("The code expired before it was approved.")


def show_qr_code(link: str) -> None:
    """Half-height blocks where the terminal's encoding has them, else ANSI-coloured spaces."""
    try:
        "\u2580\u2584\u2588".encode(sys.stdout.encoding or "ascii")
    except UnicodeEncodeError:
        segno.make(link).terminal(out=sys.stdout)
    else:
        segno.make(link).terminal(out=sys.stdout, compact=True)


def call_api(method: str, url: str, access_token: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    """The API's answer, and the parameters of its WWW-Authenticate challenge (RFC 6750 3) if any."""
    request = urllib.request.Request(  # noqa: S310
        url, method=method, headers={"Authorization": f"Bearer {access_token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310
            return response.status, json.load(response), {}
    except urllib.error.HTTPError as refused:
        challenge = dict(re.findall(r'(\w+)="?([^",]*)"?', refused.headers.get("WWW-Authenticate", "")))
        return refused.code, {}, challenge


def describe(access_token: str) -> str:
    """What the access token says of the sign-in (its payload, read for display only: the API checks it)."""
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return (
        f"acr={claims.get('acr')} amr={' '.join(claims.get('amr', []))} auth_time={claims.get('auth_time')}"
    )


def run(issuer: str, client_id: str, api: str) -> int:
    with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=TIMEOUT) as response:  # noqa: S310
        metadata: dict[str, Any] = json.load(response)
    tokens = sign_in(metadata, client_id, {})
    print(f"Signed in: {describe(tokens['access_token'])}", flush=True)
    status, me, _ = call_api("GET", f"{api}/api/me", tokens["access_token"])
    print(f"GET /api/me: {status} {json.dumps(me)}", flush=True)
    status, done, challenge = call_api("GET", f"{api}/api/statement", tokens["access_token"])
    if challenge.get("error") == "insufficient_user_authentication":
        print(f"The API asks for more: {challenge.get('error_description')}. Signing in again.", flush=True)
        step_up = {key: challenge[key] for key in ("acr_values", "max_age") if key in challenge}
        tokens = sign_in(metadata, client_id, step_up)
        print(f"Signed in: {describe(tokens['access_token'])}", flush=True)
        status, done, challenge = call_api("GET", f"{api}/api/statement", tokens["access_token"])
    if status != 200:
        print(f"GET /api/statement: refused ({challenge.get('error_description', status)})", flush=True)
        return 1
    print(f"GET /api/statement: {done['status']} {done['statement']} (acr={done['acr']})", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--issuer", default=os.environ.get("DEMO_ISSUER", "http://localhost:8000"))
    parser.add_argument("--client-id", default=os.environ.get("DEMO_CLI_CLIENT_ID"))
    parser.add_argument("--api", default=os.environ.get("DEMO_API", "http://localhost:8002"))
    args = parser.parse_args()
    if not args.client_id:
        parser.error("no client: pass --client-id or set DEMO_CLI_CLIENT_ID")
    try:
        return run(args.issuer.rstrip("/"), args.client_id, args.api.rstrip("/"))
    except SignInFailed as failed:
        print(f"Sign-in failed: {failed}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"Cannot reach the provider or the API: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
