"""A small API that trusts the provider's access tokens and demands step-up for transfers (RFC 9470).

Run by `idp demo`; settings from the environment: DEMO_ISSUER, DEMO_CLIENT_ID (the audience: the demo
app), DEMO_CLI_CLIENT_ID (optional, a second audience: the demo CLI), DEMO_API_PORT.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, g, jsonify

from idp.resource import AccessToken, JwksValidator, require
from redacted_log import RedactedRequestHandler  # beside this file

ISSUER = os.environ.get("DEMO_ISSUER", "http://localhost:8000")
AUDIENCES = [os.environ["DEMO_CLIENT_ID"], *filter(None, [os.environ.get("DEMO_CLI_CLIENT_ID")])]
PORT = int(os.environ.get("DEMO_API_PORT", "8002"))

app = Flask(__name__)


class DemoClients:
    """Access tokens issued to the demo app or to the demo CLI, each its own audience."""

    def __init__(self) -> None:
        self._validators = [JwksValidator(issuer=ISSUER, audience=audience) for audience in AUDIENCES]

    def validate(self, token: str) -> AccessToken | None:
        return next(filter(None, (validator.validate(token) for validator in self._validators)), None)


tokens = DemoClients()


@app.get("/api/me")
@require(tokens)
def me() -> Any:
    token = g.access_token
    return jsonify(sub=token.subject, acr=token.acr, amr=list(token.amr), auth_time=token.auth_time)


@app.post("/api/transfer")
@require(tokens, acr=("phr", "phrh"), max_age=300)
def transfer() -> Any:
    """The sensitive operation: a phishing-resistant sign-in within the last five minutes."""
    token = g.access_token
    return jsonify(status="transferred", amount="100.00 EUR", acr=token.acr, auth_time=token.auth_time)


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=PORT, request_handler=RedactedRequestHandler)
