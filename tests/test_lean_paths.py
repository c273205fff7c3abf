"""The lean paths ahead of Flask (idp/lean_paths.py) answer exactly as the Flask endpoints do.

Every request is sent twice on the same stores: once to the provider as it is served (where the
lean path answers what it may) and once straight to the Flask app behind it. Status, the headers
that matter and the JSON body must be the same, token values and timestamps aside; each case also
says which path must have answered, so a lean path that silently declined everything would fail.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from support.app import add_client, add_user, make_app
from werkzeug.test import EnvironBuilder, run_wsgi_app

from idp.lean_paths import LeanPaths
from idp.oidc.clients import RegisteredClient, register_client
from idp.oidc.tokens import Authentication, GrantSubject
from idp.store.durable import DurableStore
from idp.web import services

FORM = "application/x-www-form-urlencoded"
ADDRESS = "192.0.2.7"
# Headers that vary per response whoever answers (the id is compared for presence).
VOLATILE_HEADERS = {"X-Request-ID"}
# Claims and fields that differ between two tokens issued a moment apart.
VOLATILE_CLAIMS = {"jti", "iat", "exp"}


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class Spy:
    """The Flask app behind the lean paths, noting whether a request reached it."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.calls = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        self.calls += 1
        return self.app(environ, start_response)


@dataclass
class Provider:
    app: Flask
    lean: LeanPaths
    flask: Spy
    machine: tuple[str, str]  # client credentials, registered for reports:read
    dpop_machine: tuple[str, str]  # client credentials, registered to require DPoP (RFC 9449 5.2)
    api: tuple[str, str]  # a resource server for web_app's tokens
    other_api: tuple[str, str]  # a resource server for nobody's
    web_app: tuple[str, str]  # authorization code only
    user_id: str

    def both(
        self,
        path: str,
        body: bytes,
        *,
        credentials: tuple[str, str] | str,
        headers: dict[str, str] | None = None,
    ) -> tuple[Answer, Answer, bool]:
        """The answer as served, the Flask app's answer, and whether the lean path answered the first."""
        before = self.flask.calls
        served = _call(self.app.wsgi_app, path, body, credentials, headers)
        lean_answered = self.flask.calls == before
        direct = _call(self.flask.app, path, body, credentials, headers)
        return served, direct, lean_answered

    def user_token(self, *, expires_in: int | None = None) -> str:
        """An access token of web_app's user, as the authorization-code grant issues it."""
        with self.app.app_context(), services().database.unit_of_work() as session:
            store = DurableStore.over(session)
            user = store.users.get(self.user_id)
            row = store.clients.get_detached(self.web_app[0])
            assert user is not None and row is not None
            subject = GrantSubject(
                user,
                Authentication("mfa", ("pwd", "otp", "mfa"), int(time.time()), "sid-1"),
                str(uuid.uuid4()),
            )
            token = services().tokens.generate(
                grant_type="authorization_code",
                client=RegisteredClient(row),
                user=subject,
                scope="openid profile",
                expires_in=expires_in,
            )
        return str(token["access_token"])


def _basic(credentials: tuple[str, str] | str) -> str:
    if isinstance(credentials, str):
        return credentials
    return "Basic " + base64.b64encode(":".join(credentials).encode()).decode()


def _call(
    app: Callable[..., Iterable[bytes]],
    path: str,
    body: bytes,
    credentials: tuple[str, str] | str,
    headers: dict[str, str] | None = None,
) -> Answer:
    builder = EnvironBuilder(
        path=path,
        method="POST",
        data=body,
        content_type=FORM,
        headers={"Authorization": _basic(credentials), **(headers or {})},
        environ_base={"REMOTE_ADDR": ADDRESS},
    )
    iterable, status, headers = run_wsgi_app(app, builder.get_environ())
    data = b"".join(iterable)
    return Answer(int(status.split()[0]), dict(headers), data)


@pytest.fixture(params=["embedded", "redis-postgresql"])
def provider(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Provider]:
    stores: dict[str, Any] = {}
    if request.param == "redis-postgresql":
        stores = {
            "redis": {"url": request.getfixturevalue("redis_url")},
            "database": {"url": request.getfixturevalue("postgres_url")},
        }
    app = make_app(tmp_path, **stores)
    lean = app.wsgi_app.app  # type: ignore[attr-defined]  # TrustedProxies -> LeanPaths
    assert isinstance(lean, LeanPaths)
    lean.behind = Spy(lean.behind)
    web_app = add_client(app, name="web app")

    def machine_client(
        name: str, *, scope: str = "", introspect: tuple[str, ...] = (), dpop: bool = False
    ) -> tuple[str, str]:
        created = register_client(
            name=name,
            redirect_uris=[],
            public=False,
            grant_types=["client_credentials"],
            scope=scope,
            introspect_audiences=introspect,
            dpop_bound_access_tokens=dpop,
        )
        with app.app_context(), services().database.unit_of_work() as session:
            DurableStore.over(session).clients.add(created.client)
        assert created.secret is not None
        return created.client.client_id, created.secret

    yield Provider(
        app=app,
        lean=lean,
        flask=lean.behind,
        machine=machine_client("machine", scope="reports:read"),
        dpop_machine=machine_client("dpop machine", dpop=True),
        api=machine_client("api", introspect=(web_app[0],)),
        other_api=machine_client("other api"),
        web_app=web_app,
        user_id=add_user(app, f"user-{uuid.uuid4().hex[:8]}", "correct horse battery staple"),
    )


def _comparable(answer: Answer) -> tuple[int, dict[str, str], Any]:
    headers = {name: value for name, value in answer.headers.items() if name not in VOLATILE_HEADERS}
    headers.pop("Content-Length", None)  # the token values differ in length by a character or two
    if answer.headers.get("Content-Type", "").startswith("application/json"):
        body: Any = json.loads(answer.body)
        if isinstance(body, dict) and "access_token" in body:
            token = body.pop("access_token")
            body["access_token claims"] = _claims(token)
        return answer.status, headers, body
    return answer.status, headers, answer.body


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return {name: value for name, value in claims.items() if name not in VOLATILE_CLAIMS}


def _assert_same(served: Answer, direct: Answer) -> None:
    assert _comparable(served) == _comparable(direct)
    assert "X-Request-ID" in served.headers and "X-Request-ID" in direct.headers


# -- client credentials ------------------------------------------------------------------------------------


TOKEN_CASES = [
    # (id, body, credentials: "machine" | "web_app" | "unknown" | "wrong secret" | a raw header, lean answers)
    ("valid", b"grant_type=client_credentials", "machine", True),
    ("valid with its scope", b"grant_type=client_credentials&scope=reports%3Aread", "machine", True),
    ("valid with an empty scope", b"grant_type=client_credentials&scope=", "machine", True),
    ("fails because the secret is wrong", b"grant_type=client_credentials", "wrong secret", False),
    ("fails because the client is unknown", b"grant_type=client_credentials", "unknown", False),
    (
        "fails because the scope was not registered",
        b"grant_type=client_credentials&scope=admin",
        "machine",
        False,
    ),
    ("fails because the client may not use the grant", b"grant_type=client_credentials", "web_app", False),
    (
        "fails because a parameter is repeated",
        b"grant_type=client_credentials&grant_type=client_credentials",
        "machine",
        False,
    ),
    ("fails because the body is not a form", b"grant_type", "machine", False),
    (
        "fails because the body is not ASCII",
        "grant_type=client_credentials&scope=\u00e9".encode(),
        "machine",
        False,
    ),
    (
        "fails because the Basic credentials are malformed",
        b"grant_type=client_credentials",
        "Basic %%%",
        False,
    ),
    ("fails because the grant type is unknown", b"grant_type=password", "machine", False),
    (
        "fails because the client requires DPoP and sent no proof",
        b"grant_type=client_credentials",
        "dpop",
        False,
    ),
    (
        "fails because the form names a client too",
        b"grant_type=client_credentials&client_id=x",
        "machine",
        False,
    ),
]


def _credentials(provider: Provider, who: str) -> tuple[str, str] | str:
    named = {
        "machine": provider.machine,
        "dpop": provider.dpop_machine,
        "web_app": provider.web_app,
        "api": provider.api,
        "other_api": provider.other_api,
    }
    if who in named:
        return named[who]
    if who == "wrong secret":
        return (provider.machine[0], "not-the-secret")
    if who == "unknown":
        return ("no-such-client", "whatever")
    return who


@pytest.mark.parametrize(
    ("body", "who", "lean"), [case[1:] for case in TOKEN_CASES], ids=[case[0] for case in TOKEN_CASES]
)
def test_client_credentials_answers_as_flask_does(
    provider: Provider, body: bytes, who: str, lean: bool
) -> None:
    credentials = _credentials(provider, who)
    _call(provider.app.wsgi_app, "/token", b"grant_type=client_credentials", provider.machine)  # caches it
    served, direct, lean_answered = provider.both("/token", body, credentials=credentials)
    assert lean_answered is lean
    _assert_same(served, direct)


def test_a_dpop_proof_is_judged_by_flask_s_grants(provider: Provider) -> None:
    """A proof binds the token (RFC 9449): only the regular path checks and binds it."""
    _call(provider.app.wsgi_app, "/token", b"grant_type=client_credentials", provider.machine)  # caches it
    served, direct, lean_answered = provider.both(
        "/token", b"grant_type=client_credentials", credentials=provider.machine, headers={"DPoP": "x.y.z"}
    )
    assert not lean_answered
    assert served.status == 400 and json.loads(served.body)["error"] == "invalid_dpop_proof"
    _assert_same(served, direct)


# -- introspection -------------------------------------------------------------------------------------------


def _token_of(provider: Provider, kind: str) -> str:
    if kind == "user":
        return provider.user_token()
    if kind == "expired":
        return provider.user_token(expires_in=-5)
    if kind == "revoked":
        token = provider.user_token()
        answer = _call(provider.app.wsgi_app, "/revoke", f"token={token}".encode(), provider.web_app)
        assert answer.status == 200
        return token
    if kind == "machine":
        answer = _call(provider.app.wsgi_app, "/token", b"grant_type=client_credentials", provider.machine)
        return str(json.loads(answer.body)["access_token"])
    if kind == "forged":
        header, claims, signature = provider.user_token().split(".")
        return f"{header}.{claims}.{signature[::-1]}"
    return kind


INTROSPECTION_CASES = [
    # (id, token kind, who asks, extra form, the answer: "active" or "inactive" from the lean path, or
    # "flask" when the lean path must leave the request to Flask)
    ("a user token to its resource server", "user", "api", "", "active"),
    ("a user token with a hint", "user", "api", "&token_type_hint=access_token", "active"),
    ("a client's own token to that client", "machine", "machine", "", "active"),
    ("inactive: the audience is another's", "user", "other_api", "", "inactive"),
    ("inactive: the token was revoked", "revoked", "api", "", "inactive"),
    ("inactive: the token expired", "expired", "api", "", "inactive"),
    ("inactive: the signature is forged", "forged", "api", "", "inactive"),
    ("inactive: an unknown refresh token", "not-a-token", "api", "", "inactive"),
    ("fails because the secret is wrong", "user", "wrong secret", "", "flask"),
    ("fails because the client is unknown", "user", "unknown", "", "flask"),
    ("fails because the hint is unknown", "user", "api", "&token_type_hint=id_token", "flask"),
    ("fails because the token is missing", "", "api", "", "flask"),
]


@pytest.mark.parametrize(
    ("kind", "who", "extra", "answer"),
    [case[1:] for case in INTROSPECTION_CASES],
    ids=[case[0] for case in INTROSPECTION_CASES],
)
def test_introspection_answers_as_flask_does(
    provider: Provider, kind: str, who: str, extra: str, answer: str
) -> None:
    credentials = _credentials(provider, who)
    for client in (provider.api, provider.other_api, provider.machine):  # caches them
        _call(provider.app.wsgi_app, "/introspect", b"token=x", client)
    body = (f"token={_token_of(provider, kind)}" if kind else "token_type_hint=access_token") + extra
    served, direct, lean_answered = provider.both("/introspect", body.encode(), credentials=credentials)
    assert lean_answered is (answer != "flask")
    _assert_same(served, direct)
    if answer != "flask":
        assert json.loads(served.body)["active"] is (answer == "active")


def test_a_disabled_account_s_tokens_are_inactive_on_both_paths(provider: Provider) -> None:
    token = provider.user_token()
    with provider.app.app_context(), services().database.unit_of_work() as session:
        user = DurableStore.over(session).users.get(provider.user_id)
        assert user is not None
        user.disabled = True
    _call(provider.app.wsgi_app, "/introspect", b"token=x", provider.api)
    served, direct, lean_answered = provider.both(
        "/introspect", f"token={token}".encode(), credentials=provider.api
    )
    assert lean_answered
    _assert_same(served, direct)
    assert b'"active": false' in served.body


def test_a_throttled_client_is_refused_even_with_its_right_secret(provider: Provider) -> None:
    """The attacker's case: once wrong guesses make the gate hold, the right secret gets the same 429
    from both paths (the lean path leaves it to Flask, which audits it)."""
    _call(provider.app.wsgi_app, "/token", b"grant_type=client_credentials", provider.machine)
    wrong = (provider.machine[0], "not-the-secret")
    statuses = [
        _call(provider.app.wsgi_app, "/token", b"grant_type=client_credentials", wrong).status
        for _ in range(12)
    ]
    assert statuses[-1] == 429
    served, direct, lean_answered = provider.both(
        "/token", b"grant_type=client_credentials", credentials=provider.machine
    )
    assert not lean_answered
    assert served.status == direct.status == 429
    _assert_same(served, direct)
