"""Hostile input at the device flow's endpoints (RFC 8628), in process on the embedded stores: every
malformed request gets the spec's error or the page's message, never a 5xx, and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.app import csrf_token, make_app
from support.device_flow import DEVICE_GRANT

from idp.oidc.clients import register_client
from idp.store.durable import DurableStore
from idp.web import services

LONG = "x" * 10_000
FULL_WIDTH = "\uff37\uff24\uff2a\uff22-\uff2d\uff2a\uff28\uff34"  # WDJB-MJHT in full-width letters


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path)


@pytest.fixture
def device_client(app: Flask) -> str:
    created = register_client(
        name="CLI", redirect_uris=[], public=True, grant_types=[DEVICE_GRANT], scope="openid profile"
    )
    with app.app_context(), services().database.unit_of_work() as session:
        DurableStore.over(session).clients.add(created.client)
    return created.client.client_id


@pytest.mark.parametrize(
    ("case", "body", "status", "error"),
    [
        ("fails because no client is named", "scope=openid", 401, "invalid_client"),
        ("fails because the client is unknown", "client_id=nobody", 400, "invalid_client"),
        ("fails because client_id is repeated", "client_id={id}&client_id={id}", 400, "invalid_request"),
        ("fails because max_age is negative", "client_id={id}&max_age=-1", 400, "invalid_request"),
        ("fails because acr_values is too long", "client_id={id}&acr_values=" + LONG, 400, "invalid_request"),
        ("ignores the claims parameter, no part of a device request", "client_id={id}&claims=%7B", 200, None),
    ],
    ids=lambda value: value if isinstance(value, str) and " " in value else "",
)
def test_device_authorization_refuses_malformed_requests(
    app: Flask, device_client: str, case: str, body: str, status: int, error: str | None
) -> None:
    response = app.test_client().post(
        "/device_authorization",
        data=body.replace("{id}", device_client),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == status, (case, response.get_json())
    assert response.get_json().get("error") == error, (case, response.get_json())


@pytest.mark.parametrize(
    "device_code",
    ["", "not-a-code", LONG, "device:../../etc", "\u202e\u0000"],
    ids=["empty", "unknown", "too long", "a key's shape", "control characters"],
)
def test_a_malformed_device_code_is_an_oauth_error(app: Flask, device_client: str, device_code: str) -> None:
    response = app.test_client().post(
        "/token", data={"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": device_client}
    )
    assert response.status_code == 400
    assert response.get_json()["error"] in ("invalid_request", "invalid_grant")


@pytest.mark.parametrize(
    "typed",
    ["", "WDJB", "WDJB-MJHTX", FULL_WIDTH, "AEIO-UAEI", "<script>alert(1)</script>", LONG],
    ids=["empty", "short", "long", "full-width letters", "vowels", "markup", "far too long"],
)
def test_the_code_page_answers_any_typed_code_with_its_message(app: Flask, typed: str) -> None:
    browser: FlaskClient = app.test_client()
    form = browser.get("/device", query_string={"user_code": typed})
    assert form.status_code == 200 and "<script>" not in form.get_data(as_text=True)
    answer = browser.post("/device", data={"csrf_token": csrf_token(form), "user_code": typed})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "That code is not valid or has expired" in page
    assert "<script>" not in page


def test_a_code_typed_in_full_width_letters_with_any_dash_is_the_code(app: Flask, device_client: str) -> None:
    """NFKC, case, spaces and dash punctuation do not matter (RFC 8628 6.1: forgiving input)."""
    browser: FlaskClient = app.test_client()
    started = browser.post("/device_authorization", data={"client_id": device_client}).get_json()
    plain = started["user_code"].replace("-", "")
    typed = " ".join(chr(ord(letter) + 0xFEE0) for letter in plain[:4]) + "\u2013" + plain[4:].lower()
    form = browser.get("/device")
    confirm = browser.post("/device", data={"csrf_token": csrf_token(form), "user_code": typed})
    assert confirm.status_code == 200, confirm.get_data(as_text=True)
    assert started["user_code"] in confirm.get_data(as_text=True)
