"""The admin API (issue 17, point 3): bearer tokens with scope admin, the admin acr within [admin]
max_age, a subject who is an administrator at call time; every operation on the management layer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from support.app import make_app, management_of

from idp.admin.openapi import document
from idp.admin.reference import reference
from idp.management.users import create_user
from idp.oidc.clients import RegisteredClient, register_client
from idp.oidc.tokens import Authentication, GrantSubject, new_grant_id
from idp.store.tables import User
from idp.web import services

API = "/admin/api/v1"
PASSWORD = "a long enough password"
HARDWARE_KEY = ("pwd", "hwk", "user", "mfa")


class Admin:
    """A provider in process on the test Redis, an administrator and tokens minted by the provider."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.http: FlaskClient = app.test_client()
        self.root = self.user("root", admin=True)
        self.client_row = register_client(
            name="Admin console", redirect_uris=["https://admin.example.com/cb"], public=False,
            grant_types=[], scope="openid admin",
        ).client  # fmt: skip
        with management_of(app) as management:
            management.store.clients.add(self.client_row)

    def user(self, username: str, *, admin: bool = False) -> User:
        with management_of(self.app) as management:
            return create_user(management, username=username, password=PASSWORD, admin=admin)

    def token(
        self, user: User | None = None, *, scope: str = "openid admin", acr: str = "phrh", age: int = 10
    ) -> str:
        subject = GrantSubject(
            user=user or self.root,
            authentication=Authentication(
                acr=acr, amr=HARDWARE_KEY, auth_time=int(time.time()) - age, sid="s"
            ),
            grant_id=new_grant_id(),
        )
        with self.app.app_context():
            issued = services().tokens.generate(
                grant_type="authorization_code",
                client=RegisteredClient(self.client_row),
                user=subject,
                scope=scope,
            )
        return str(issued["access_token"])

    def call(self, method: str, path: str, token: str | None = None, **options: Any) -> Any:
        headers = {"Authorization": f"Bearer {token or self.token()}"}
        return self.http.open(API + path, method=method, headers=headers, **options)


@pytest.fixture
def admin(tmp_path: Path, redis_url: str) -> Admin:
    return Admin(make_app(tmp_path, redis={"url": redis_url}))


def challenge(response: Any) -> tuple[int, str]:
    return response.status_code, response.headers.get("WWW-Authenticate", "")


def test_refusals_carry_the_challenge_that_says_what_would_do(admin: Admin) -> None:
    alice = admin.user("alice")
    assert challenge(admin.http.get(f"{API}/users")) == (401, "Bearer")
    forged = admin.token()[:-4] + "AAAA"
    assert challenge(admin.call("GET", "/users", forged)) == (401, 'Bearer error="invalid_token"')
    no_scope = admin.call("GET", "/users", admin.token(scope="openid"))
    assert challenge(no_scope) == (403, 'Bearer error="insufficient_scope", scope="admin"')
    weak = challenge(admin.call("GET", "/users", admin.token(acr="mfa")))
    assert weak[0] == 401 and 'error="insufficient_user_authentication"' in weak[1]
    assert 'acr_values="phrh"' in weak[1] and "max_age=300" in weak[1]
    stale = challenge(admin.call("GET", "/users", admin.token(age=301)))
    assert stale[0] == 401 and "within the last 300 seconds" in stale[1] and "max_age=300" in stale[1]
    not_admin = admin.call("GET", "/users", admin.token(alice))
    assert (
        not_admin.status_code == 403
        and "not an active administrator" in not_admin.headers["WWW-Authenticate"]
    )
    assert admin.call("GET", "/users").status_code == 200


def test_a_demoted_administrators_token_stops_working_at_once(admin: Admin) -> None:
    token = admin.token()
    assert admin.call("GET", "/users", token).status_code == 200
    with management_of(admin.app) as management:
        management.store.users.get(admin.root.id).is_admin = False  # type: ignore[union-attr]
    refused = admin.call("GET", "/users", token)
    assert refused.status_code == 403 and refused.get_json() == {"error": "insufficient_scope"}


def test_a_session_cookie_authenticates_nothing(admin: Admin) -> None:
    admin.http.set_cookie("idp_session", "anything", domain="localhost")
    assert challenge(admin.http.get(f"{API}/users")) == (401, "Bearer")


def test_users_are_created_searched_disabled_and_deleted(admin: Admin) -> None:
    weak = admin.call("POST", "/users", json={"username": "bob", "password": "password1234"})
    assert weak.status_code == 400 and weak.mimetype == "application/problem+json"
    assert "password1234" not in weak.get_data(as_text=True)
    bad = admin.call("POST", "/users", json={"username": "bob", "password": PASSWORD, "is_admin": True})
    assert bad.status_code == 400 and "is_admin" in bad.get_json()["detail"], "no administrator by API"
    created = admin.call(
        "POST", "/users", json={"username": "bob", "password": PASSWORD, "email": "Bob@Example.com"}
    )
    assert created.status_code == 201, created.get_json()
    bob = created.get_json()
    assert (bob["email"], bob["is_admin"]) == ("bob@example.com", False)
    again = admin.call("POST", "/users", json={"username": "bob", "password": PASSWORD})
    assert again.status_code == 409
    found = admin.call("GET", "/users", query_string={"q": "EXAMPLE", "limit": 1}).get_json()
    assert (found["total"], [user["username"] for user in found["users"]]) == (1, ["bob"])
    assert admin.call("POST", f"/users/{bob['id']}/disable").status_code == 204
    assert admin.call("GET", f"/users/{bob['id']}").get_json()["disabled"] is True
    assert admin.call("POST", f"/users/{bob['id']}/enable").status_code == 204
    new_password = admin.call("PUT", f"/users/{bob['id']}/password", json={"password": "another long phrase"})
    assert new_password.status_code == 204
    assert admin.call("POST", f"/users/{bob['id']}/reset-mfa").get_json() == {"count": 0}
    assert admin.call("GET", f"/users/{bob['id']}/factors").get_json() == {"factors": []}
    assert admin.call("GET", f"/users/{bob['id']}/sessions").get_json() == {"sessions": []}
    assert admin.call("DELETE", f"/users/{bob['id']}/sessions").get_json() == {"count": 0}
    assert admin.call("DELETE", f"/users/{bob['id']}/sessions/nosuch").status_code == 404
    assert admin.call("DELETE", f"/users/{bob['id']}").status_code == 204
    assert admin.call("GET", f"/users/{bob['id']}").status_code == 404
    events = admin.call("GET", "/audit", query_string={"user_id": bob["id"]}).get_json()["events"]
    assert [event["event"] for event in events][:2] == ["user_deleted", "sessions_ended"]
    assert all(event["detail"]["by"] == admin.root.id for event in events)
    calls = admin.call("GET", "/audit", query_string={"event": "admin_api", "limit": 3}).get_json()["events"]
    assert {event["user_id"] for event in calls} == {admin.root.id}


def test_clients_are_registered_updated_rotated_and_deleted(admin: Admin) -> None:
    machine = admin.call("POST", "/clients", json={"name": "Machine"})
    assert machine.status_code == 400 and "client_credentials" in machine.get_json()["detail"]
    created = admin.call(
        "POST", "/clients", json={"name": "App", "redirect_uris": ["https://app.example.com/cb"]}
    )
    assert created.status_code == 201
    client_id, secret = created.get_json()["client_id"], created.get_json()["client_secret"]
    shown = admin.call("GET", f"/clients/{client_id}").get_json()
    assert shown["grant_types"] == ["authorization_code", "refresh_token"] and secret not in str(shown)
    hostile = admin.call("PATCH", f"/clients/{client_id}", json={"redirect_uris": ["javascript:alert(1)"]})
    assert hostile.status_code == 400
    changed = admin.call(
        "PATCH", f"/clients/{client_id}", json={"scope": "openid email", "default_acr_values": ["phr"]}
    )
    assert (changed.get_json()["scope"], changed.get_json()["default_acr_values"]) == (
        "openid email",
        ["phr"],
    )
    unknown_acr = admin.call("PATCH", f"/clients/{client_id}", json={"default_acr_values": ["gold"]})
    assert unknown_acr.status_code == 400
    rotated = admin.call("POST", f"/clients/{client_id}/secret").get_json()
    assert rotated["client_id"] == client_id and rotated["client_secret"] not in (None, secret)
    assert client_id in {row["client_id"] for row in admin.call("GET", "/clients").get_json()["clients"]}
    assert admin.call("DELETE", f"/clients/{client_id}").status_code == 204
    assert admin.call("GET", f"/clients/{client_id}").status_code == 404


def test_a_client_registered_to_require_dpop_keeps_the_rule_through_changes(admin: Admin) -> None:
    registration = {"name": "CLI", "public": True, "redirect_uris": ["http://127.0.0.1/cb"]}
    created = admin.call("POST", "/clients", json=registration | {"dpop_bound_access_tokens": True})
    assert created.status_code == 201, created.get_json()
    client_id = created.get_json()["client_id"]
    assert admin.call("GET", f"/clients/{client_id}").get_json()["dpop_bound_access_tokens"] is True
    changed = admin.call("PATCH", f"/clients/{client_id}", json={"scope": "openid"}).get_json()
    assert changed["dpop_bound_access_tokens"] is True
    plain = admin.call("POST", "/clients", json=registration).get_json()["client_id"]
    assert admin.call("GET", f"/clients/{plain}").get_json()["dpop_bound_access_tokens"] is False


def test_keys_are_listed_rotated_and_retired(admin: Admin) -> None:
    before = admin.call("GET", "/keys").get_json()["keys"]
    rotated = admin.call("POST", "/keys/rotate", json={"algorithms": ["ES256"]}).get_json()["keys"]
    assert len(rotated) == len(before) + 1
    old = next(key["kid"] for key in rotated if key["alg"] == "ES256" and not key["active"])
    active = next(key["kid"] for key in rotated if key["alg"] == "ES256" and key["active"])
    assert admin.call("DELETE", f"/keys/{active}").status_code == 409
    assert admin.call("DELETE", f"/keys/{old}").status_code == 204
    assert admin.call("DELETE", f"/keys/{old}").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/users", b"not json"),
        ("POST", "/users", b"[]"),
        ("POST", "/users", b'{"username": 5, "password": "x"}'),
        ("PATCH", "/clients/x", b'{"redirect_uris": "https://one.example.com"}'),
        ("POST", "/keys/rotate", b'{"algorithms": ["HS256"]}'),
        ("POST", "/clients", b'{"name": "a\\u0000b", "grant_types": ["client_credentials"]}'),
        ("GET", "/audit?user_id=%00", b""),
        ("GET", "/audit?before_id=2147483648", b""),
        ("GET", "/audit?since=4102444800", b""),
    ],
    ids=["fails because the body is not JSON", "fails because the body is no object",
         "fails because a member has the wrong type", "fails because a list is a string",
         "fails because the algorithm is unknown", "fails because a name holds a NUL",
         "fails because a filter holds a NUL",
         "fails because the event id is beyond the audit table's ids",
         "fails because the time is beyond the audit table's times"],
)  # fmt: skip
def test_bad_input_is_a_problem_not_a_server_error(admin: Admin, method: str, path: str, body: bytes) -> None:
    answered = admin.call(method, path, data=body, content_type="application/json")
    assert answered.status_code == 400 and answered.get_json()["status"] == 400


def test_the_openapi_document_describes_every_route(admin: Admin) -> None:
    served = admin.http.get(f"{API}/openapi.json").get_json()
    assert served == document() and served["openapi"] == "3.1.0"
    routes = {
        (rule.rule.removeprefix(API), method)
        for rule in admin.app.url_map.iter_rules()
        if rule.rule.startswith(API) and rule.endpoint != "admin_api.openapi"
        for method in rule.methods - {"HEAD", "OPTIONS"}  # type: ignore[operator]
    }
    documented = {
        (path.replace("{", "<").replace("}", ">"), method.upper())
        for path, operations in served["paths"].items()
        for method in operations
    }
    assert routes == documented


def test_the_committed_reference_is_generated_from_the_current_document() -> None:
    committed = (Path(__file__).resolve().parent.parent / "docs" / "admin-api.md").read_text(encoding="utf-8")
    assert committed == reference(), "run: python -m idp.admin.reference > docs/admin-api.md"
