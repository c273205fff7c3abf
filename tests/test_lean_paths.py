"""The lean paths ahead of Flask (idp/lean_paths.py) answer exactly as the Flask endpoints do.

Every request is sent twice on the same stores: once to the provider as it is served (where the
lean path answers what it may) and once straight to the Flask app behind it. Status, the headers
that matter and the JSON body must be the same, token values and timestamps aside; each case also
says which path must have answered, so a lean path that silently declined everything would fail;
an introspection also says whether the access token's record answered or its signature was verified.

The attacker's cases: every way a token is revoked today makes its record answer `active: false`
(or leaves the answer to the database, for an account that changed state), and a token without a
record (forged, issued before records were kept, the store flushed) is verified as before.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from support.account import Account, Authenticator
from support.app import Browser, add_client, add_user, code_from, make_app, management_of
from werkzeug.test import EnvironBuilder, run_wsgi_app

from idp.lean_paths import LeanPaths
from idp.management import users
from idp.management.context import Management
from idp.oidc.clients import RegisteredClient, register_client
from idp.oidc.tokens import (
    UNDECIDED,
    Authentication,
    GrantSubject,
    RecordQuery,
    TokenService,
    Undecided,
    digest,
    record_key,
)
from idp.store.durable import DurableStore
from idp.store.tables import RefreshToken, User
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


class RecordAnswers:
    """The token service's answers from access tokens' records, counted (UNDECIDED ones are not)."""

    def __init__(self, tokens: TokenService) -> None:
        self.count = 0
        self._answer = tokens.recorded_claims
        tokens.recorded_claims = self  # type: ignore[method-assign]

    def __call__(self, query: RecordQuery, values: list[bytes | None]) -> dict[str, Any] | Undecided | None:
        answer = self._answer(query, values)
        self.count += answer is not UNDECIDED
        return answer


@dataclass
class Provider:
    app: Flask
    lean: LeanPaths
    flask: Spy
    machine: tuple[str, str]  # client credentials, registered for reports:read
    dpop_machine: tuple[str, str]  # client credentials, registered to require DPoP (RFC 9449 5.2)
    api: tuple[str, str]  # a resource server for web_app's tokens
    other_api: tuple[str, str]  # a resource server for nobody's
    web_app: tuple[str, str]  # authorization code (and refresh token)
    user_id: str
    records: RecordAnswers

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

    def introspected(self, token: str, *, by: tuple[str, str] | None = None) -> tuple[dict[str, Any], str]:
        """Introspect `token` as served and straight at Flask (the same answer, or the test fails): the
        answer, and who gave it as served: "record" (the lean path, from the token's record), "lookup"
        (the lean path, looking the token up as the Flask endpoint does) or "flask"."""
        asking = by or self.api
        _call(self.app.wsgi_app, "/introspect", b"token=x", asking)  # caches the client
        records = self.records.count
        served, direct, lean_answered = self.both(
            "/introspect", f"token={token}".encode(), credentials=asking
        )
        _assert_same(served, direct)
        source = "flask" if not lean_answered else "record" if self.records.count > records else "lookup"
        return json.loads(served.body), source

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

    def signed_in(self) -> SignedIn:
        """A new user signed in at web_app through the hosted pages (enrolling TOTP), and the tokens
        its code was redeemed for."""
        username, password = f"user-{uuid.uuid4().hex[:8]}", "a long enough password"
        add_user(self.app, username, password)
        browser = Browser(self.app.test_client(), self.web_app[0])
        done, secret = browser.sign_in_with_enrolment(username, password)
        code = code_from(done)
        tokens = browser.redeem(code, self.web_app[1])
        authenticator = Authenticator(secret)
        authenticator.spent_now()
        account = Account(self.app, browser, username, password, authenticator)
        return SignedIn(account, code, tokens)


@dataclass(frozen=True)
class SignedIn:
    account: Account
    code: str  # already redeemed
    tokens: dict[str, Any]

    @property
    def access_token(self) -> str:
        return str(self.tokens["access_token"])

    def user(self, management: Management) -> User:
        return users.user_named(management, self.account.username)


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
        records=RecordAnswers(lean._context.tokens),  # the TokenService both paths share
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
    claims = _decoded(token.split(".")[1])
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


# -- refresh -------------------------------------------------------------------------------------------------


def _refresh(token: str, extra: str = "") -> bytes:
    return f"grant_type=refresh_token&refresh_token={token}{extra}".encode()


def _successor(provider: Provider, refresh_token: str) -> dict[str, Any]:
    """The row a refresh token's rotation added, as save_token would have written it."""
    with provider.app.app_context(), services().database.unit_of_work() as session:
        row = session.get(RefreshToken, digest(refresh_token))
        assert row is not None
        kept = {column.key: getattr(row, column.key) for column in RefreshToken.__table__.columns}
    return {
        **kept,
        "token_hash": None,
        "family_id": None,
        "issued_at": None,
        "expires_at": None,
        "lifetime": row.expires_at - row.issued_at,
    }


def test_a_refresh_answers_and_rotates_as_flask_does(provider: Provider) -> None:
    """Two grants of one sign-in, refreshed one on each path: the same answer and the same successor
    rows (the grant, token values and times aside)."""
    signed = provider.signed_in()
    again = code_from(signed.account.browser.authorize())  # the same browser session: no sign-in
    second = signed.account.browser.redeem(again, provider.web_app[1])
    before = provider.flask.calls
    served = _call(
        provider.app.wsgi_app, "/token", _refresh(signed.tokens["refresh_token"]), provider.web_app
    )
    assert provider.flask.calls == before  # the lean path answered
    direct = _call(provider.flask.app, "/token", _refresh(second["refresh_token"]), provider.web_app)
    assert served.status == direct.status == 200
    rotated = [json.loads(answer.body) for answer in (served, direct)]
    for answer in rotated:
        answer["access_token"] = {**_claims(answer["access_token"]), "grant_id": None}
        assert answer.pop("refresh_token")
    assert rotated[0] == rotated[1]
    successors = [
        _successor(provider, json.loads(answer.body)["refresh_token"]) for answer in (served, direct)
    ]
    assert successors[0] == successors[1]
    assert _comparable(served)[:2] == _comparable(direct)[:2]  # status and headers


def _spoil(provider: Provider, refresh_token: str, **values: Any) -> None:
    with provider.app.app_context(), services().database.unit_of_work() as session:
        row = session.get(RefreshToken, digest(refresh_token))
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)


REFRESH_CASES: list[tuple[str, Callable[[Provider, SignedIn], tuple[bytes, tuple[str, str] | str]]]] = [
    (
        "fails because the token was rotated already (a replay)",
        lambda p, s: (_refresh(_rotated_once(p, s)), p.web_app),
    ),
    ("fails because the token is unknown", lambda p, s: (_refresh("not-a-token"), p.web_app)),
    (
        "fails because the secret is wrong",
        lambda p, s: (_refresh(s.tokens["refresh_token"]), (p.web_app[0], "x")),
    ),
    (
        "fails because the token is another client's",
        lambda p, s: (_refresh(s.tokens["refresh_token"]), _second_web_app(p)),
    ),
    (
        "fails because the token expired",
        lambda p, s: _spoiled(p, s, expires_at=int(time.time()) - 1),
    ),
    ("fails because its grant was revoked", lambda p, s: _spoiled(p, s, revoked=True)),
    ("fails because it is bound to a DPoP key", lambda p, s: _spoiled(p, s, dpop_jkt="k" * 43)),
    ("fails because its browser session ended", lambda p, s: _spoiled(p, s, sid="ended")),
    (
        "fails because the account is disabled",
        lambda p, s: (_refresh(_disabled(p, s)), p.web_app),
    ),
]


def _rotated_once(provider: Provider, signed: SignedIn) -> str:
    body = _refresh(signed.tokens["refresh_token"])
    assert _call(provider.app.wsgi_app, "/token", body, provider.web_app).status == 200
    return str(signed.tokens["refresh_token"])


def _second_web_app(provider: Provider) -> tuple[str, str]:
    other = add_client(provider.app, name="another web app")
    _call(provider.app.wsgi_app, "/token", b"grant_type=refresh_token&refresh_token=x", other)  # caches it
    return other


def _spoiled(provider: Provider, signed: SignedIn, **values: Any) -> tuple[bytes, tuple[str, str]]:
    _spoil(provider, signed.tokens["refresh_token"], **values)
    return _refresh(signed.tokens["refresh_token"]), provider.web_app


def _disabled(provider: Provider, signed: SignedIn) -> str:
    with provider.app.app_context(), services().database.unit_of_work() as session:
        user = DurableStore.over(session).users.by_username(signed.account.username)
        assert user is not None
        user.disabled = True  # the database alone: the refresh reads the account there
    return str(signed.tokens["refresh_token"])


@pytest.mark.parametrize("case", [case[1] for case in REFRESH_CASES], ids=[case[0] for case in REFRESH_CASES])
def test_a_refresh_not_plainly_valid_is_left_to_flask(
    provider: Provider, case: Callable[[Provider, SignedIn], tuple[bytes, tuple[str, str] | str]]
) -> None:
    signed = provider.signed_in()
    body, credentials = case(provider, signed)
    served, direct, lean_answered = provider.both("/token", body, credentials=credentials)
    assert not lean_answered
    _assert_same(served, direct)


def test_a_refresh_asking_for_a_narrower_scope_is_flask_s_to_grant(provider: Provider) -> None:
    signed = provider.signed_in()
    before = provider.flask.calls
    body = _refresh(signed.tokens["refresh_token"], "&scope=openid")
    answer = _call(provider.app.wsgi_app, "/token", body, provider.web_app)
    assert provider.flask.calls == before + 1
    assert answer.status == 200 and json.loads(answer.body)["scope"] == "openid"


def test_of_two_concurrent_uses_of_one_refresh_token_one_wins_and_the_grant_is_revoked(
    provider: Provider,
) -> None:
    """The attacker's race (RFC 9700 4.14.2): the same token sent on two connections at once gets one
    answer; the other finds it rotated and revokes the grant, the winner's new tokens with it."""
    signed = provider.signed_in()
    body = _refresh(signed.tokens["refresh_token"])
    start = threading.Barrier(2)

    def use() -> Answer:
        start.wait()
        return _call(provider.app.wsgi_app, "/token", body, provider.web_app)

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: use(), range(2)))
    assert sorted(answer.status for answer in answers) == [200, 400]
    (won,) = [json.loads(answer.body) for answer in answers if answer.status == 200]
    assert provider.introspected(won["access_token"])[0] == {"active": False}
    again = _call(provider.app.wsgi_app, "/token", _refresh(won["refresh_token"]), provider.web_app)
    assert again.status == 400 and json.loads(again.body)["error"] == "invalid_grant"


def test_a_refreshed_access_token_is_recorded(provider: Provider) -> None:
    signed = provider.signed_in()
    answer = _call(
        provider.app.wsgi_app, "/token", _refresh(signed.tokens["refresh_token"]), provider.web_app
    )
    refreshed = json.loads(answer.body)
    assert provider.introspected(refreshed["access_token"]) == (
        {**provider.introspected(refreshed["access_token"])[0], "active": True},
        "record",
    )


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
    if kind == "forged payload":  # a recorded token's signature on claims of the attacker's choosing
        header, claims, signature = provider.user_token().split(".")
        chosen = {**_decoded(claims), "scope": "openid profile admin", "exp": int(time.time()) + 86400}
        return f"{header}.{_encoded(chosen)}.{signature}"
    if kind == "unrecorded":  # as a token issued before records were kept, or after Redis was flushed
        token = provider.user_token()
        with provider.app.app_context():
            services().ephemeral.delete(record_key(token))
        return token
    return kind


def _decoded(segment: str) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return decoded


def _encoded(claims: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=").decode()


INTROSPECTION_CASES = [
    # (id, token kind, who asks, extra form, the answer: "active" or "inactive", and who gives it as
    # served: "record" or "lookup" (the lean path, from the token's record or looking it up as Flask
    # does), or "flask" when the lean path must leave the request to Flask)
    ("a user token to its resource server", "user", "api", "", "active", "record"),
    ("a user token with a hint", "user", "api", "&token_type_hint=access_token", "active", "record"),
    ("a client's own token to that client", "machine", "machine", "", "active", "record"),
    ("inactive: the audience is another's", "user", "other_api", "", "inactive", "record"),
    ("inactive: the token was revoked", "revoked", "api", "", "inactive", "record"),
    ("inactive: the token expired", "expired", "api", "", "inactive", "lookup"),
    ("inactive: the signature is forged", "forged", "api", "", "inactive", "lookup"),
    ("inactive: the payload is forged", "forged payload", "api", "", "inactive", "lookup"),
    ("inactive: an unknown refresh token", "not-a-token", "api", "", "inactive", "lookup"),
    ("a user token without a record (issued before records)", "unrecorded", "api", "", "active", "lookup"),
    ("fails because the secret is wrong", "user", "wrong secret", "", "inactive", "flask"),
    ("fails because the client is unknown", "user", "unknown", "", "inactive", "flask"),
    ("fails because the hint is unknown", "user", "api", "&token_type_hint=id_token", "inactive", "flask"),
    ("fails because the token is missing", "", "api", "", "inactive", "flask"),
]


@pytest.mark.parametrize(
    ("kind", "who", "extra", "answer", "source"),
    [case[1:] for case in INTROSPECTION_CASES],
    ids=[case[0] for case in INTROSPECTION_CASES],
)
def test_introspection_answers_as_flask_does(
    provider: Provider, kind: str, who: str, extra: str, answer: str, source: str
) -> None:
    credentials = _credentials(provider, who)
    for client in (provider.api, provider.other_api, provider.machine):  # caches them
        _call(provider.app.wsgi_app, "/introspect", b"token=x", client)
    body = (f"token={_token_of(provider, kind)}" if kind else "token_type_hint=access_token") + extra
    records = provider.records.count
    served, direct, lean_answered = provider.both("/introspect", body.encode(), credentials=credentials)
    _assert_same(served, direct)
    assert lean_answered is (source != "flask")
    assert (provider.records.count > records) is (source == "record")
    if source != "flask":
        assert json.loads(served.body)["active"] is (answer == "active")


def test_a_disabled_account_s_tokens_are_inactive_and_active_again_once_it_is_enabled(
    provider: Provider,
) -> None:
    """An account's state is the database's: once it changes, the account's tokens' records leave the
    answer to it (the token here has no grant or session that disabling would revoke)."""
    token = provider.user_token()
    assert provider.introspected(token)[1] == "record"
    with management_of(provider.app) as management:
        users.set_disabled(management, users.user_with_id(management, provider.user_id), disabled=True)
    assert provider.introspected(token) == ({"active": False}, "lookup")
    with management_of(provider.app) as management:
        users.set_disabled(management, users.user_with_id(management, provider.user_id), disabled=False)
    answer, source = provider.introspected(token)
    assert answer["active"] is True and source == "lookup"


# -- every way a token is revoked reaches its record: the attacker's cases -------------------------------


Revocation = Callable[["Provider", "SignedIn"], None]


def _revoke_at_endpoint(token: str) -> Revocation:
    def revoke(provider: Provider, signed: SignedIn) -> None:
        body = f"token={signed.tokens[token]}".encode()
        assert _call(provider.app.wsgi_app, "/revoke", body, provider.web_app).status == 200

    return revoke


def _replay_refresh_token(provider: Provider, signed: SignedIn) -> None:
    body = f"grant_type=refresh_token&refresh_token={signed.tokens['refresh_token']}".encode()
    assert _call(provider.app.wsgi_app, "/token", body, provider.web_app).status == 200
    assert _call(provider.app.wsgi_app, "/token", body, provider.web_app).status == 400


def _replay_code(provider: Provider, signed: SignedIn) -> None:
    with pytest.raises(AssertionError, match="invalid_grant"):
        signed.account.browser.redeem(signed.code, provider.web_app[1])


def _sign_out(_provider: Provider, signed: SignedIn) -> None:
    hint = {"id_token_hint": signed.tokens["id_token"]}
    assert signed.account.browser.client.get("/logout", query_string=hint).status_code == 200


def _change_password(_provider: Provider, signed: SignedIn) -> None:
    signed.account.change_password("another long enough password")


def _end_it_from_another_browser(provider: Provider, signed: SignedIn) -> None:
    account = signed.account
    other = Browser(provider.app.test_client(), provider.web_app[0])
    account.sign_in_again(other)
    Account(account.app, other, account.username, account.password, account.authenticator).post(
        "/account/sessions/end-others"
    )


def _by_an_administrator(operation: Callable[[Management, User], object]) -> Revocation:
    def revoke(provider: Provider, signed: SignedIn) -> None:
        with management_of(provider.app) as management:
            operation(management, signed.user(management))

    return revoke


REVOCATIONS: list[tuple[str, Revocation, str]] = [
    # (id, what revokes the token, who answers `active: false` then: its record, or the database)
    ("revoked itself at /revoke (RFC 7009)", _revoke_at_endpoint("access_token"), "record"),
    ("its refresh token revoked at /revoke", _revoke_at_endpoint("refresh_token"), "record"),
    ("its refresh token replayed after rotation", _replay_refresh_token, "record"),
    ("its authorization code replayed", _replay_code, "record"),
    ("the user signed out at /logout", _sign_out, "record"),
    ("the user changed their password", _change_password, "record"),
    ("the user ended its session from another browser", _end_it_from_another_browser, "record"),
    ("an administrator ended the user's sessions", _by_an_administrator(users.end_user_sessions), "record"),
    (
        "an administrator set a new password",
        _by_an_administrator(lambda management, user: users.set_password(management, user, "n3w passw0rd!!")),
        "record",
    ),
    (
        "an administrator disabled the account",
        _by_an_administrator(lambda management, user: users.set_disabled(management, user, disabled=True)),
        "lookup",
    ),
    ("an administrator deleted the account", _by_an_administrator(users.delete_user), "lookup"),
]


@pytest.mark.parametrize(
    ("revoke", "source"), [case[1:] for case in REVOCATIONS], ids=[case[0] for case in REVOCATIONS]
)
def test_a_revoked_token_is_never_active_from_its_record(
    provider: Provider, revoke: Revocation, source: str
) -> None:
    signed = provider.signed_in()
    answer, answered_by = provider.introspected(signed.access_token)
    assert answer["active"] is True and answered_by == "record"
    revoke(provider, signed)
    assert provider.introspected(signed.access_token) == ({"active": False}, source)


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
