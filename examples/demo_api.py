"""A small API that trusts the provider's access tokens and demands step-up for transfers (RFC 9470):
a transfer runs only with a token whose user approved this very payment (RFC 9396 authorization
details, signed with their passkey), once.

Run by `idp demo`; settings from the environment: DEMO_ISSUER, DEMO_CLIENT_ID (the audience: the demo
app), DEMO_CLI_CLIENT_ID (optional, a second audience: the demo CLI), DEMO_API_PORT.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, g, jsonify, request

from idp.resource import AccessToken, JwksValidator, ProcessSpentTokens, require, require_details

ISSUER = os.environ.get("DEMO_ISSUER", "http://localhost:8000")
AUDIENCES = [os.environ["DEMO_CLIENT_ID"], *filter(None, [os.environ.get("DEMO_CLI_CLIENT_ID")])]
PORT = int(os.environ.get("DEMO_API_PORT", "8002"))

app = Flask(__name__)


class DemoClients:
    """Access tokens issued to the demo app or to the demo CLI, each its own audience; single-use
    tokens spent once whichever audience they were for."""

    def __init__(self) -> None:
        spent = ProcessSpentTokens()
        self._validators = [
            JwksValidator(issuer=ISSUER, audience=audience, spent=spent) for audience in AUDIENCES
        ]

    def validate(self, token: str) -> AccessToken | None:
        return next(filter(None, (validator.validate(token) for validator in self._validators)), None)

    def spend(self, token: AccessToken) -> bool:
        return self._validators[0].spend(token)  # they share one record of spent tokens


tokens = DemoClients()


@app.get("/api/me")
@require(tokens)
def me() -> Any:
    token = g.access_token
    return jsonify(sub=token.subject, acr=token.acr, amr=list(token.amr), auth_time=token.auth_time)


PAYMENT_FIELDS = ("amount", "currency", "creditorName")


def payment_to_execute() -> dict[str, Any]:
    """The payment this request asks for: each field must be the one the user approved."""
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    return {field: body.get(field) for field in PAYMENT_FIELDS}


@app.post("/api/transfer")
@require_details(tokens, "payment", match=payment_to_execute, acr=("phr", "phrh"), max_age=300)
def transfer() -> Any:
    """The sensitive operation: this payment, approved with a passkey within the last five minutes."""
    token = g.access_token
    payment = payment_to_execute()
    return jsonify(
        status="transferred",
        amount=f"{payment['amount']} {payment['currency']}",
        to=payment["creditorName"],
        acr=token.acr,
        auth_time=token.auth_time,
    )


@app.get("/api/statement")
@require(tokens, acr=("phr", "phrh"), max_age=300)
def statement() -> Any:
    """A sensitive read (the demo CLI's): a phishing-resistant sign-in within the last five minutes."""
    token = g.access_token
    return jsonify(status="sent", statement="2026-11", acr=token.acr, auth_time=token.auth_time)


if __name__ == "__main__":
    from redacted_log import RedactedRequestHandler  # beside this file, run as a script

    app.run(host="127.0.0.1", port=PORT, request_handler=RedactedRequestHandler)
