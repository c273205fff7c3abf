"""Hostile input (Hardening, part 3): whatever a stranger sends, every endpoint answers with the spec's
error, never a 5xx or a stack trace, and a refused request changes nothing.

Hypothesis drives the authorization, token, introspection, revocation, userinfo, logout and WebAuthn
endpoints of one in-process provider on its embedded stores. Requests start from well-formed ones and
are edited: parameters dropped, replaced, repeated; real codes and tokens mangled; bodies sent as the
wrong content type. After each one: no 5xx, no unhandled exception, and unless the request succeeded,
the same rows in users/factors/clients/refresh_tokens/user_sessions and no new authorization code.
The table at the end pins the hostile requests that once made the provider fail.
"""

from __future__ import annotations

import base64
import json
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
from flask import Flask, got_request_exception
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from support.app import REDIRECT_URI, Browser, add_client, add_user, code_from, make_app, meta_csrf_token
from support.client_jwts import ASSERTION_TYPE, ClientKey
from support.hostile import FUZZ, JSON_VALUES, JWT_LIKE, b64url
from support.soft_authenticator import SoftAuthenticator
from support.step_up import registration_options
from werkzeug.test import TestResponse

from idp.web import services

PASSWORD = "a long enough password"
DURABLE_TABLES = ("users", "factors", "clients", "refresh_tokens", "user_sessions")
OAUTH_ERRORS = {  # RFC 6749 5.2, RFC 7009 2.2.1; RFC 9126 2.3 adds those of the authorization endpoint
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "unsupported_token_type",
    "unsupported_response_type",
    "invalid_request_object",
}
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
LENIENT = {"free_attempts": 1_000_000}  # hypothesis fails a lot; keep the back-off out of its way


# -- the provider under attack ------------------------------------------------------------------------


@dataclass
class Target:
    """One provider with a registered client and a member signed in with password, TOTP and a passkey."""

    app: Flask
    client_id: str
    client_secret: str
    member: Browser
    passkey: SoftAuthenticator
    ephemeral: Path
    raised: list[BaseException] = field(default_factory=list)

    def anonymous(self) -> Browser:
        return Browser(self.app.test_client(), self.client_id)

    def snapshot(self) -> Snapshot:
        with self.app.app_context(), services().database.engine.connect() as connection:
            durable = {
                table: sorted(map(repr, connection.execute(text(f"SELECT * FROM {table}"))))  # noqa: S608
                for table in DURABLE_TABLES
            }
        with sqlite3.connect(self.ephemeral) as store:
            codes = frozenset(
                key for (key,) in store.execute("SELECT key FROM entries WHERE key LIKE 'code:%'")
            )
        return Snapshot(durable, codes)

    def unhandled(self) -> list[BaseException]:
        raised, self.raised[:] = list(self.raised), []
        return raised


@dataclass(frozen=True)
class Snapshot:
    durable: dict[str, list[str]]
    codes: frozenset[str]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    directory = tmp_path_factory.mktemp("hostile")
    app = make_app(
        directory,
        throttle={"client_auth": LENIENT, "webauthn_address": LENIENT},
        account={"reauthentication_max_age": 86400},
    )
    # Its keys let the hostile request objects reach the JWS parser (RFC 9101).
    client_id, client_secret = add_client(app, jwks=ClientKey.generate().jwks())
    add_user(app, "member", PASSWORD)
    member = Browser(app.test_client(), client_id)
    done, _secret = member.sign_in_with_enrolment("member", PASSWORD)
    code_from(done)
    passkey = SoftAuthenticator()
    options, csrf = registration_options(member)
    added = member.post_json("/account/passkeys", {"credential": passkey.create(options)}, csrf=csrf)
    assert added.status_code == 200, added.get_data(as_text=True)
    found = Target(
        app, client_id, client_secret, member, passkey, directory / "instance" / "ephemeral.sqlite3"
    )

    def record(_sender: object, exception: BaseException, **_extra: object) -> None:
        found.raised.append(exception)

    got_request_exception.connect(record, app, weak=False)
    yield found
    got_request_exception.disconnect(record, app)


# -- what every answer must be ------------------------------------------------------------------------


def assert_calm(target: Target, response: TestResponse) -> None:
    """No 5xx, no exception that reached Flask, no stack trace in the body."""
    raised = target.unhandled()
    body = response.get_data(as_text=True)
    assert response.status_code < 500, f"{response.status_code} for {response.request.path}: {body[:300]}"
    assert not raised, "an exception escaped to Flask"
    assert "Traceback" not in body and 'File "' not in body


def assert_unchanged(target: Target, before: Snapshot) -> None:
    after = target.snapshot()
    for table in DURABLE_TABLES:
        assert after.durable[table] == before.durable[table], f"a refused request changed {table}"
    assert after.codes <= before.codes, "a refused request issued an authorization code"


def assert_oauth_error(response: TestResponse) -> None:
    """RFC 6749 5.2: a JSON object whose `error` is one of the spec's codes (or 413 for a huge body)."""
    if response.status_code == 413:
        return
    assert response.status_code in (400, 401, 429), response.status_code
    assert response.get_json(silent=True).get("error") in OAUTH_ERRORS, response.get_data(as_text=True)


def delivered_code(response: TestResponse) -> bool:
    """The response hands an authorization code to the client (by redirect or by form_post)."""
    query = parse_qs(urlsplit(response.headers.get("Location", "")).query)
    return "code" in query or 'name="code"' in response.get_data(as_text=True)


# -- values a hostile request carries ---------------------------------------------------------------------


@dataclass(frozen=True)
class Real:
    """A real value of the provider, where a request may put one: minted fresh for each example."""

    name: str


@dataclass(frozen=True)
class Mangled:
    """A real token, cut short or with one character changed."""

    name: str
    at: int
    how: str  # "cut" | "flip"


class Artefacts:
    """The real values of one example, minted on first use by the member's session."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._values: dict[str, str] = {
            "client_id": target.client_id,
            "client_secret": target.client_secret,
            "redirect_uri": REDIRECT_URI,
        }

    def value(self, name: str) -> str:
        if name not in self._values:
            member = self._target.member
            if name in ("code", "code_verifier"):
                self._values["code"] = code_from(member.authorize())
                self._values["code_verifier"] = member.code_verifier
            elif name == "pending":
                self._values[name] = self._target.anonymous().authorize().request.path.split("/")[2]
            else:
                self._values |= member.redeem(code_from(member.authorize()), self._target.client_secret)
        return self._values[name]

    def resolve(self, value: str | Real | Mangled) -> str:
        if isinstance(value, Real):
            return self.value(value.name)
        if isinstance(value, Mangled):
            token = self.value(value.name)
            at = value.at % (len(token) - 1)  # not the last character: its low bits may be padding
            if value.how == "cut":
                return token[:at]
            return token[:at] + ("A" if token[at] != "A" else "B") + token[at + 1 :]
        return value


SPECIAL = [
    "",
    " ",
    "\x00",
    "null",
    "[]",
    "{}",
    "a.b.c",
    "%00%ff",
    "\u202e\ufeff",
    "<script>alert(1)</script>",
    "-1",
    "1e999",
    "\u00b2",  # a digit to str.isdigit(), not to int()
    "9" * 5000,  # beyond int()'s 4300 digits
    "[" * 1500,  # deeper than the JSON parser recurses
    '{"id_token":{"acr":{"essential":true,"values":["phr"]}}}',
    '{"userinfo":{"acr":{"value":5}}}',
    "openid",
    "openid profile email",
    "code",
    "code id_token",
    "S256",
    "plain",
    "none",
    "login",
    "consent",
    "query",
    "form_post",
    "fragment",
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "access_token",
    "https://attacker.example/callback",
    REDIRECT_URI + "/../evil",
    "javascript:alert(1)",
]
TOKENS = ("access_token", "refresh_token", "id_token")
REALS = st.sampled_from(
    [Real(name) for name in ("client_id", "client_secret", "redirect_uri", "code", "code_verifier", *TOKENS)]
)
MANGLED = st.builds(
    Mangled, st.sampled_from(["code", *TOKENS]), st.integers(0, 2000), st.sampled_from(["cut", "flip"])
)
VALUES = st.one_of(st.text(max_size=30), st.sampled_from(SPECIAL), JWT_LIKE, REALS, MANGLED)
DIGITS = st.characters(categories=["Nd", "No"])  # every kind of digit str.isdigit() accepts
SHAPED = {  # values shaped like the parameter, so its own parser gets exercised
    "max_age": st.one_of(
        st.integers().map(str),
        st.text(DIGITS, min_size=1, max_size=4),
        st.integers(4000, 6000).map(lambda digits: "9" * digits),
    ),
    "claims": st.one_of(
        JSON_VALUES.map(json.dumps),
        st.builds(
            lambda member, acr: json.dumps({member: {"acr": acr}}),
            st.sampled_from(["id_token", "userinfo"]),
            JSON_VALUES
            | st.fixed_dictionaries({}, optional={"essential": JSON_VALUES, "values": JSON_VALUES}),
        ),
        st.integers(900, 3000).map(lambda depth: "[" * depth),
    ),
    "prompt": st.lists(st.sampled_from(["none", "login", "consent", "select_account", "x"]), max_size=3).map(
        " ".join
    ),
    "acr_values": st.lists(st.sampled_from(["mfa", "phr", "phrh", "pwd", "é", ""]), max_size=3).map(" ".join),
    "scope": st.lists(st.sampled_from(["openid", "profile", "email", "admin", "é", ""]), max_size=3).map(
        " ".join
    ),
    "response_type": st.sampled_from(["code", "token", "id_token", "code id_token", "é", 'co"de', "c\\ode"]),
    "redirect_uri": st.one_of(
        st.sampled_from([REDIRECT_URI + "é", REDIRECT_URI + '"', REDIRECT_URI + "#x", REDIRECT_URI.upper()]),
        st.text(max_size=20).map(lambda tail: REDIRECT_URI + tail),
    ),
    "grant_type": st.sampled_from(
        ["authorization_code", "refresh_token", "client_credentials", "password", "é"]
    ),
    "token_type_hint": st.sampled_from(["access_token", "refresh_token", "id_token", "é", ""]),
    "request": JWT_LIKE,
    "request_uri": st.sampled_from(
        [REQUEST_URI_PREFIX, REQUEST_URI_PREFIX + "x", "https://attacker.example/r"]
    ),
    "client_assertion_type": st.sampled_from([ASSERTION_TYPE, ASSERTION_TYPE + "x", ""]),
    "client_assertion": JWT_LIKE,
}
AUTHORIZATION_NAMES = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
    "prompt",
    "max_age",
    "acr_values",
    "claims",
    "id_token_hint",
    "login_hint",
    "request",
    "request_uri",
]
TOKEN_NAMES = [
    "grant_type",
    "code",
    "redirect_uri",
    "code_verifier",
    "refresh_token",
    "client_id",
    "client_secret",
]
TOKEN_NAMES += ["scope", "client_assertion_type", "client_assertion"]
REVOCATION_NAMES = ["token", "token_type_hint", "client_id", "client_secret"]
LOGOUT_NAMES = ["id_token_hint", "client_id", "post_logout_redirect_uri", "state"]


def parameter(names: list[str]) -> st.SearchStrategy[tuple[str, Any]]:
    """A parameter of the endpoint (or now and then any name) with a value, shaped like it or not."""
    name = st.sampled_from(names) | st.text(max_size=10)
    return name.flatmap(lambda chosen: st.tuples(st.just(chosen), SHAPED.get(chosen, st.nothing()) | VALUES))


def edits(names: list[str]) -> st.SearchStrategy[list[tuple[str, tuple[str, Any]]]]:
    return st.lists(st.tuples(st.sampled_from(["drop", "set", "add"]), parameter(names)), max_size=4)


Pairs = list[tuple[str, "str | Real | Mangled"]]


def edited(base: Pairs, changes: list[tuple[str, tuple[str, Any]]]) -> Pairs:
    """Drop a parameter, set it to one value, or add one more (a repeat when it was there)."""
    pairs = list(base)
    for how, (name, value) in changes:
        if how in ("drop", "set"):
            pairs = [pair for pair in pairs if pair[0] != name]
        if how in ("set", "add"):
            pairs.append((name, value))
    return pairs


def resolved(artefacts: Artefacts, pairs: Pairs) -> list[tuple[str, str]]:
    return [(name, artefacts.resolve(value)) for name, value in pairs]


def repeated(pairs: list[tuple[str, str]]) -> bool:
    names = [name for name, _ in pairs]
    return len(set(names)) < len(names)


FORM = "application/x-www-form-urlencoded"
CONTENT_TYPES = st.sampled_from(
    [FORM, FORM, FORM, "application/json", "text/plain", "multipart/form-data; boundary=x", ""]
)


def send(
    client: Any, method: str, path: str, pairs: list[tuple[str, str]], content_type: str, **kw: Any
) -> Any:
    """GET: the pairs in the query. POST: the pairs as a body of `content_type` (JSON when it says so)."""
    if method == "GET":
        return client.get(path, query_string=urlencode(pairs), **kw)
    body = json.dumps(dict(pairs)) if content_type == "application/json" else urlencode(pairs)
    return client.post(path, data=body, content_type=content_type or None, **kw)


def parsed_as_form(method: str, content_type: str) -> bool:
    return method == "GET" or content_type == FORM


# -- the authorization endpoint ---------------------------------------------------------------------------

CHALLENGE = b64url(b"\x01" * 32)


def authorization_request() -> Pairs:
    return [
        ("response_type", "code"),
        ("client_id", Real("client_id")),
        ("redirect_uri", Real("redirect_uri")),
        ("scope", "openid profile"),
        ("state", "xyz"),
        ("nonce", "n-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]


def stays_here_or_goes_to_the_client(response: TestResponse) -> bool:
    """A redirect stays on the provider or goes to the registered redirect URI: nowhere else."""
    if response.status_code not in (301, 302, 303, 307, 308):
        return True
    location = response.headers["Location"]
    return urlsplit(location).netloc in ("", "localhost") or location.startswith(REDIRECT_URI + "?")


@FUZZ
@given(edits=edits(AUTHORIZATION_NAMES), method=st.sampled_from(["GET", "POST"]), content_type=CONTENT_TYPES)
def test_an_edited_authorization_request_from_a_stranger_never_yields_a_code(
    target: Target, edits: list[Any], method: str, content_type: str
) -> None:
    pairs = resolved(Artefacts(target), edited(authorization_request(), edits))
    before = target.snapshot()

    response = send(target.anonymous().client, method, "/authorize", pairs, content_type)

    assert_calm(target, response)
    assert not delivered_code(response)
    assert stays_here_or_goes_to_the_client(response), response.headers["Location"]
    if repeated(pairs) and parsed_as_form(method, content_type):
        assert response.status_code == 400, "a repeated parameter is refused (RFC 6749 3.1)"
    assert_unchanged(target, before)


@FUZZ
@given(edits=edits(AUTHORIZATION_NAMES), method=st.sampled_from(["GET", "POST"]), content_type=CONTENT_TYPES)
def test_a_signed_in_user_gets_a_code_only_for_a_well_formed_authorization_request(
    target: Target, edits: list[Any], method: str, content_type: str
) -> None:
    pairs = resolved(Artefacts(target), edited(authorization_request(), edits))
    before = target.snapshot()

    response = send(target.member.client, method, "/authorize", pairs, content_type)

    assert_calm(target, response)
    assert stays_here_or_goes_to_the_client(response), response.headers["Location"]
    issued = target.snapshot().codes - before.codes
    if delivered_code(response):
        assert len(issued) == 1
        assert not repeated(pairs) or not parsed_as_form(method, content_type)
        assert ("client_id", target.client_id) in pairs and ("response_type", "code") in pairs
    else:
        assert_unchanged(target, before)


PENDING_IDS = st.one_of(
    st.text(min_size=1, max_size=80),
    st.sampled_from(["..", "%2e%2e", "a" * 65, "a" * 5000, "\x00"]),
    st.just(Real("pending")),
    st.builds(lambda suffix: (Real("pending"), suffix), st.text(min_size=1, max_size=5)),
)


def pending_path(artefacts: Artefacts, pending: Any) -> str:
    if isinstance(pending, tuple):
        return quote(artefacts.resolve(pending[0]) + pending[1], safe="")
    return quote(artefacts.resolve(pending), safe="")


@FUZZ
@given(pending=PENDING_IDS, signed_in=st.booleans())
def test_resuming_an_unknown_or_mangled_sign_in_fails_closed(
    target: Target, pending: Any, signed_in: bool
) -> None:
    path = f"/authorize/resume/{pending_path(Artefacts(target), pending)}"
    before = target.snapshot()

    response = (target.member if signed_in else target.anonymous()).client.get(path)

    assert_calm(target, response)
    assert stays_here_or_goes_to_the_client(response)
    if pending == Real("pending"):
        return  # a real sign-in resumes (and a session that satisfies it gets its code)
    # 308: the router merges a doubled slash and redirects here again (checked to stay on the provider)
    assert response.status_code in (308, 400, 404), "only a pending sign-in of ours resumes"
    assert_unchanged(target, before)


# -- the token endpoint -----------------------------------------------------------------------------------

AUTHENTICATIONS = st.one_of(
    st.sampled_from(["none", "basic", "wrong secret", "bearer"]),
    st.binary(max_size=40).map(lambda raw: "Basic " + base64.b64encode(raw).decode()),
    st.text(max_size=40),
)


def authorization_header(artefacts: Artefacts, how: str) -> dict[str, str]:
    """How the client authenticates: none, HTTP Basic (right or wrong), or whatever header `how` is."""
    if how == "none":
        return {}
    if how in ("basic", "wrong secret"):
        secret = artefacts.value("client_secret") if how == "basic" else "not the secret"
        raw = f"{quote(artefacts.value('client_id'))}:{quote(secret)}"
        return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}
    if how == "bearer":
        return {"Authorization": "Bearer " + artefacts.value("access_token")}
    return {"Authorization": one_line(how)}


def one_line(value: str) -> str:
    """What can travel in a header at all: HTTP has no way to send a line break inside one."""
    return value.replace("\r", "").replace("\n", "")


def token_request() -> Pairs:
    return [
        ("grant_type", "authorization_code"),
        ("code", Real("code")),
        ("redirect_uri", Real("redirect_uri")),
        ("code_verifier", Real("code_verifier")),
    ]


def refresh_request() -> Pairs:
    return [("grant_type", "refresh_token"), ("refresh_token", Real("refresh_token"))]


@FUZZ
@given(
    base=st.sampled_from([token_request, refresh_request]),
    edits=edits(TOKEN_NAMES),
    authentication=AUTHENTICATIONS,
    content_type=CONTENT_TYPES,
)
def test_an_edited_token_request_is_refused_with_an_oauth_error_and_changes_nothing(
    target: Target, base: Any, edits: list[Any], authentication: str, content_type: str
) -> None:
    artefacts = Artefacts(target)
    pairs = resolved(artefacts, edited(base(), edits))
    headers = authorization_header(artefacts, authentication)
    before = target.snapshot()

    response = send(target.anonymous().client, "POST", "/token", pairs, content_type, headers=headers)

    assert_calm(target, response)
    repeats = repeated(pairs) and parsed_as_form("POST", content_type)
    if response.status_code == 200:
        assert "access_token" in response.get_json()
        assert not repeats, "a repeated parameter is refused (RFC 6749 3.2)"
        return
    assert_oauth_error(response)
    if repeats and response.status_code != 413:
        assert response.get_json()["error"] == "invalid_request"
    assert_unchanged(target, before)


def test_a_refused_refresh_leaves_the_refresh_token_usable(target: Target) -> None:
    """A request refused for its scope spends nothing: the token still refreshes afterwards."""
    artefacts = Artefacts(target)
    token = artefacts.value("refresh_token")
    auth = authorization_header(artefacts, "basic")
    before = target.snapshot()

    wider = target.anonymous().client.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "scope": "openid admin"},
        headers=auth,
    )

    assert wider.status_code == 400 and wider.get_json()["error"] == "invalid_scope"
    assert_unchanged(target, before)
    again = target.anonymous().client.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": token}, headers=auth
    )
    assert again.status_code == 200, again.get_data(as_text=True)


def test_a_refused_token_type_hint_does_not_count_as_a_failed_client_authentication(tmp_path: Path) -> None:
    """authlib answers unsupported_token_type with 401; the client did authenticate: no back-off for it."""
    app = make_app(tmp_path)
    client_id, client_secret = add_client(app)
    with app.app_context():
        allowed = services().settings.throttle.client_auth.free_attempts
    client = app.test_client()
    for _ in range(allowed + 1):
        refused = client.post(
            "/introspect", data={"token": "x", "token_type_hint": "nope"}, auth=(client_id, client_secret)
        )
        assert refused.get_json()["error"] == "unsupported_token_type"

    valid = client.post("/introspect", data={"token": "x"}, auth=(client_id, client_secret))

    assert valid.status_code == 200 and valid.get_json() == {"active": False}


# -- the pushed authorization request endpoint ------------------------------------------------------------


@FUZZ
@given(
    edits=edits([*AUTHORIZATION_NAMES, "client_assertion_type", "client_assertion"]),
    authentication=AUTHENTICATIONS,
    content_type=CONTENT_TYPES,
)
def test_an_edited_pushed_request_gets_a_request_uri_or_an_oauth_error_never_a_redirect(
    target: Target, edits: list[Any], authentication: str, content_type: str
) -> None:
    """RFC 9126 2.2, 2.3: the answer is to the client, in JSON; a refused push changes nothing."""
    artefacts = Artefacts(target)
    pairs = resolved(artefacts, edited(authorization_request(), edits))
    headers = authorization_header(artefacts, authentication)
    before = target.snapshot()

    response = send(target.anonymous().client, "POST", "/par", pairs, content_type, headers=headers)

    assert_calm(target, response)
    assert "Location" not in response.headers
    if response.status_code == 201:
        assert response.get_json()["request_uri"].startswith(REQUEST_URI_PREFIX)
        assert not repeated(pairs) or not parsed_as_form("POST", content_type)
    else:
        assert_oauth_error(response)
    assert_unchanged(target, before)


# -- introspection and revocation ---------------------------------------------------------------------------

TOKEN_VALUES = st.one_of(VALUES, st.sampled_from([Real(name) for name in TOKENS]), JWT_LIKE)


@FUZZ
@given(
    endpoint=st.sampled_from(["/introspect", "/revoke"]),
    token=TOKEN_VALUES,
    edits=edits(REVOCATION_NAMES),
    authentication=AUTHENTICATIONS,
    content_type=CONTENT_TYPES,
)
def test_introspection_and_revocation_answer_hostile_requests_in_the_specs_terms(
    target: Target, endpoint: str, token: Any, edits: list[Any], authentication: str, content_type: str
) -> None:
    artefacts = Artefacts(target)
    pairs = resolved(artefacts, edited([("token", token), ("token_type_hint", "access_token")], edits))
    headers = authorization_header(artefacts, authentication)
    before = target.snapshot()

    response = send(target.anonymous().client, "POST", endpoint, pairs, content_type, headers=headers)

    assert_calm(target, response)
    if response.status_code != 200:
        assert_oauth_error(response)
        assert_unchanged(target, before)
    elif endpoint == "/introspect":
        assert isinstance(response.get_json()["active"], bool)
        assert_unchanged(target, before)  # introspection only ever reads


# -- userinfo ---------------------------------------------------------------------------------------------


@FUZZ
@given(
    scheme=st.sampled_from(["Bearer ", "bearer ", "Bearer  ", "Basic ", "", "Bearer\t"])
    | st.text(max_size=10),
    token=TOKEN_VALUES,
    method=st.sampled_from(["GET", "POST"]),
    in_body=st.booleans(),
)
def test_userinfo_refuses_anything_but_a_valid_access_token_with_invalid_token(
    target: Target, scheme: str, token: Any, method: str, in_body: bool
) -> None:
    """RFC 6750: the token in a Bearer header (2.1) or a POSTed form (2.2); a request presenting none
    gets a challenge without an error code (3.1), one presenting a bad one invalid_token."""
    artefacts = Artefacts(target)
    value = artefacts.resolve(token)
    headers = {} if in_body else {"Authorization": one_line(scheme + value)}
    pairs = [("access_token", value)] if in_body else []
    before = target.snapshot()

    response = send(target.anonymous().client, method, "/userinfo", pairs, FORM, headers=headers)

    assert_calm(target, response)
    kind, _, credentials = headers.get("Authorization", "").partition(" ")
    presented = (in_body and method == "POST" and value != "") or (
        kind.lower() == "bearer" and credentials.strip() != ""
    )
    if response.status_code == 200:
        assert token == Real("access_token") and presented
    elif presented:
        assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    else:
        assert response.status_code == 401 and response.get_data() == b""
        assert response.headers["WWW-Authenticate"] == "Bearer"
    assert_unchanged(target, before)


# -- logout -----------------------------------------------------------------------------------------------


def logout_request() -> Pairs:
    return [("id_token_hint", Real("id_token")), ("state", "s"), ("client_id", Real("client_id"))]


@FUZZ
@given(
    edits=edits(LOGOUT_NAMES),
    method=st.sampled_from(["GET", "POST"]),
    confirm=st.booleans(),
    with_csrf=st.booleans(),
    hint=st.one_of(JWT_LIKE, MANGLED, st.just(Real("id_token"))),
)
def test_logout_never_redirects_anywhere_unregistered_and_never_fails(
    target: Target, edits: list[Any], method: str, confirm: bool, with_csrf: bool, hint: Any
) -> None:
    """The client registered no post-logout URI: whatever the request, the user stays here."""
    artefacts = Artefacts(target)
    pairs = resolved(artefacts, edited([("id_token_hint", hint), *logout_request()[1:]], edits))
    browser = target.anonymous()
    before = target.snapshot()

    if confirm:
        page = browser.client.get("/logout")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
        assert token is not None
        fields = [*pairs, ("csrf_token", token.group(1))] if with_csrf else pairs
        response = browser.client.post("/logout/confirm", data=urlencode(fields), content_type=FORM)
    else:
        response = send(browser.client, method, "/logout", pairs, FORM)

    assert_calm(target, response)
    assert response.status_code in (200, 400), response.status_code
    assert_unchanged(target, before)


# -- WebAuthn ---------------------------------------------------------------------------------------------

CREDENTIAL_FIELDS = [
    ("id",),
    ("rawId",),
    ("type",),
    ("response", "clientDataJSON"),
    ("response", "authenticatorData"),
    ("response", "signature"),
    ("response", "userHandle"),
    ("response", "attestationObject"),
    ("response", "transports"),
    ("response",),
    ("clientExtensionResults",),
]
BINARY_FIELDS = {"clientDataJSON", "authenticatorData", "signature", "attestationObject", "rawId", "id"}


@dataclass(frozen=True)
class Tamper:
    """One change to a real credential response: a field replaced, removed, or one of its bytes flipped."""

    path: tuple[str, ...]
    how: str  # "replace" | "remove" | "flip"
    value: Any = None
    at: int = 0

    def apply(self, credential: dict[str, Any]) -> dict[str, Any]:
        changed = json.loads(json.dumps(credential))
        *parents, leaf = self.path
        holder = changed
        for name in parents:
            holder = holder.get(name) if isinstance(holder, dict) else None
        if not isinstance(holder, dict):
            return changed
        if self.how == "remove":
            holder.pop(leaf, None)
        elif self.how == "flip" and leaf in BINARY_FIELDS and isinstance(holder.get(leaf), str):
            try:
                raw = bytearray(base64.urlsafe_b64decode(holder[leaf] + "=" * (-len(holder[leaf]) % 4)))
            except ValueError:
                return changed  # no longer base64url: nothing to flip
            if raw:
                raw[self.at % len(raw)] ^= 0x01
                holder[leaf] = b64url(bytes(raw))
        else:
            holder[leaf] = self.value
        return changed


CREDENTIAL_VALUES = st.one_of(
    JSON_VALUES,
    st.binary(max_size=64).map(b64url),
    st.sampled_from(["!!", "====", "\x00", "public-key", "A" * 20000]),
    JSON_VALUES.map(lambda value: b64url(json.dumps(value).encode())),  # clientDataJSON of the wrong shape
)
TAMPERS = st.builds(
    Tamper,
    st.sampled_from(CREDENTIAL_FIELDS),
    st.sampled_from(["replace", "remove", "flip", "flip"]),
    CREDENTIAL_VALUES,
    st.integers(0, 400),
)
BODIES = st.one_of(
    st.builds(lambda tampers: ("tampered", tampers), st.lists(TAMPERS, min_size=1, max_size=3)),
    st.builds(lambda value: ("json", value), JSON_VALUES),
    st.builds(lambda credential: ("json", {"credential": credential}), JSON_VALUES),
    st.builds(lambda raw, kind: ("raw", raw, kind), st.binary(max_size=200), CONTENT_TYPES),
    st.just(("raw", b"[" * 60000, "application/json")),
)


def post_body(
    browser: Browser, path: str, body: tuple[Any, ...], real: dict[str, Any] | None, csrf: str | None
) -> Any:
    headers = {"X-CSRFToken": csrf} if csrf else {}
    if body[0] == "tampered":
        credential = real or {}
        for tamper in body[1]:
            credential = tamper.apply(credential) if credential else credential
        return browser.client.post(path, json={"credential": credential}, headers=headers)
    if body[0] == "json":
        return browser.client.post(path, json=body[1], headers=headers)
    return browser.client.post(path, data=body[1], content_type=body[2] or None, headers=headers)


def assert_json_refusal(response: TestResponse) -> None:
    """A JSON error, also when Flask-WTF refuses before the view or the body is too large."""
    assert response.status_code in (400, 401, 409, 413, 429), response.status_code
    assert isinstance(response.get_json().get("error"), str)


@FUZZ
@given(
    body=BODIES,
    ask_options=st.booleans(),
    with_csrf=st.sampled_from([True, True, True, False]),
    pending=st.sampled_from(["real", "real", "real", "unknown"]),
)
def test_a_tampered_passkey_sign_in_is_refused_in_json_and_signs_no_one_in(
    target: Target, body: tuple[Any, ...], ask_options: bool, with_csrf: bool, pending: str
) -> None:
    browser = target.anonymous()
    page = browser.authorize()
    pending_id = page.request.path.split("/")[2] if pending == "real" else "no-such-sign-in"
    csrf = meta_csrf_token(page) if with_csrf else None
    real = None
    if ask_options:
        options = browser.client.post(
            f"/signin/{pending_id}/passkey/options", json={}, headers={"X-CSRFToken": meta_csrf_token(page)}
        )
        assert_calm(target, options)
        if options.status_code == 200:
            real = target.passkey.get(options.get_json())
    before = target.snapshot()

    response = post_body(browser, f"/signin/{pending_id}/passkey", body, real, csrf)

    assert_calm(target, response)
    if response.status_code == 200:
        assert real is not None and body[0] == "tampered", "only the real assertion signs in"
        return
    assert_json_refusal(response)
    assert_unchanged(target, before)


@FUZZ
@given(body=BODIES, ask_options=st.booleans(), with_csrf=st.sampled_from([True, True, True, False]))
def test_a_tampered_passkey_registration_stores_no_factor(
    target: Target, body: tuple[Any, ...], ask_options: bool, with_csrf: bool
) -> None:
    page = target.member.client.get("/account/passkeys/new")
    assert page.status_code == 200
    csrf = meta_csrf_token(page)
    real = None
    if ask_options:
        options = target.member.post_json("/account/passkeys/options", {}, csrf=csrf)
        assert_calm(target, options)
        real = SoftAuthenticator().create(options.get_json())
    before = target.snapshot()

    response = post_body(target.member, "/account/passkeys", body, real, csrf if with_csrf else None)

    assert_calm(target, response)
    if response.status_code == 200:
        assert real is not None and body[0] == "tampered", "only the real registration stores a passkey"
        return
    assert_json_refusal(response)
    assert_unchanged(target, before)


@FUZZ
@given(body=BODIES, where=st.sampled_from(["signin", "account"]))
def test_passkey_options_ignore_whatever_body_comes_with_them(
    target: Target, body: tuple[Any, ...], where: str
) -> None:
    if where == "signin":
        browser = target.anonymous()
        page = browser.authorize()
        path = f"/signin/{page.request.path.split('/')[2]}/passkey/options"
    else:
        browser = target.member
        page = browser.client.get("/account/passkeys/new")
        path = "/account/passkeys/options"
    before = target.snapshot()

    response = post_body(browser, path, body, None, meta_csrf_token(page))

    assert_calm(target, response)
    assert response.status_code in (200, 413), response.status_code
    assert_unchanged(target, before)


# -- the hostile requests that once broke something --------------------------------------------------------

CRIT_NOT_A_LIST = (
    f"{b64url(json.dumps({'alg': 'RS256', 'kid': 'k', 'crit': 5}).encode())}.{b64url(b'{}')}.AAAA"
)


@dataclass(frozen=True)
class Hostile:
    method: str
    path: str
    status: int
    error: str | None = None  # the OAuth error (JSON body, or in the redirect to the client)
    query: list[tuple[str, str]] = field(default_factory=list)
    form: list[tuple[str, str]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str | None = None


def _authorize(**extra: str) -> list[tuple[str, str]]:
    """A well-formed request of the registered client, with `extra` replacing or adding parameters."""
    base = dict(authorization_request()) | extra
    return [
        (name, value if isinstance(value, str) else "{" + value.name + "}") for name, value in base.items()
    ]


def _basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


HOSTILE = [
    pytest.param(
        Hostile("GET", "/authorize", 400, query=[*_authorize(), ("nonce", "again")]),
        id="fails because the nonce is repeated (RFC 6749 3.1)",
    ),
    pytest.param(
        Hostile("GET", "/authorize", 400, query=[*_authorize(), ("client_id", "other")]),
        id="fails because the client_id is repeated",
    ),
    pytest.param(
        Hostile("POST", "/authorize", 400, query=[("state", "a")], form=_authorize()),
        id="fails because the state is sent in both the query and the body",
    ),
    pytest.param(
        Hostile("GET", "/authorize", 400, query=_authorize(state="s" * 8193)),
        id="fails because the state is longer than any parameter we accept",
    ),
    pytest.param(
        Hostile("GET", "/authorize", 400, query=_authorize(redirect_uri=REDIRECT_URI + "\u00e9")),
        id="fails because the redirect_uri is not ASCII (authlib would echo it into its error)",
    ),
    pytest.param(
        Hostile("GET", "/authorize", 400, query=_authorize(response_type='co"de')),
        id="fails because the response_type holds a quote (authlib would echo it into its error)",
    ),
    pytest.param(
        Hostile("GET", "/authorize", 400, query=_authorize(client_id="no-such-client")),
        id="fails because the client is unknown (an error page, no redirect)",
    ),
    pytest.param(
        Hostile("GET", "/authorize", 302, "invalid_request", query=_authorize(max_age="9" * 5000)),
        id="fails because max_age has more digits than int() takes",
    ),
    pytest.param(
        Hostile("GET", "/authorize", 302, "invalid_request", query=_authorize(max_age="\u00b2")),
        id="fails because max_age is a superscript two, a digit only to str.isdigit()",
    ),
    pytest.param(
        Hostile("GET", "/authorize", 302, "invalid_request", query=_authorize(claims="[" * 1500)),
        id="fails because the claims JSON nests deeper than the parser recurses",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/token",
            400,
            "invalid_request",
            form=[("grant_type", "refresh_token"), ("grant_type", "x")],
        ),
        id="fails because grant_type is repeated (RFC 6749 3.2)",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/token",
            401,
            "invalid_client",
            form=[("grant_type", "client_credentials")],
            headers=_basic(b"\xff\xfe:secret"),
        ),
        id="fails because the Basic credentials are not UTF-8",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/token",
            401,
            "invalid_client",
            form=[("grant_type", "client_credentials")],
            headers={"Authorization": "Basic \u00e9t\u00e9"},
        ),
        id="fails because the Basic credentials are not base64",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/token",
            400,
            "invalid_client",
            form=[
                ("grant_type", "client_credentials"),
                ("client_id", "no-such-client"),
                ("client_secret", "x"),
            ],
        ),
        id="fails because the client is unknown (400: it sent no Authorization header)",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/token",
            400,
            "unsupported_grant_type",
            raw=b'{"grant_type": "client_credentials"}',
            content_type="application/json",
        ),
        id="fails because the body is JSON, not a form",
    ),
    pytest.param(
        Hostile("POST", "/token", 413, raw=b"grant_type=" + b"x" * 70_000, content_type=FORM),
        id="fails because the body is larger than 64 KiB",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/introspect",
            400,
            "invalid_request",
            form=[("token", "a"), ("token", "b")],
            headers={"Authorization": "Basic {basic}"},
        ),
        id="fails because the token to introspect is repeated",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/introspect",
            200,
            form=[("token", CRIT_NOT_A_LIST)],
            headers={"Authorization": "Basic {basic}"},
        ),
        id="fails because the JWT's crit header is not a list: inactive",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/revoke",
            200,
            form=[("token", CRIT_NOT_A_LIST)],
            headers={"Authorization": "Basic {basic}"},
        ),
        id="fails because the JWT's crit header is not a list: nothing to revoke",
    ),
    pytest.param(
        Hostile(
            "GET", "/userinfo", 401, "invalid_token", headers={"Authorization": "Bearer " + CRIT_NOT_A_LIST}
        ),
        id="fails because the access token's crit header is not a list",
    ),
    pytest.param(
        Hostile("GET", "/logout", 200, query=[("id_token_hint", CRIT_NOT_A_LIST)]),
        id="fails because the ID token hint's crit header is not a list: asks to confirm",
    ),
    pytest.param(
        Hostile(
            "GET", "/authorize", 302, "invalid_request_object", query=_authorize(request=CRIT_NOT_A_LIST)
        ),
        id="fails because the request object's crit header is not a list",
    ),
    pytest.param(
        Hostile(
            "GET",
            "/authorize",
            302,
            "request_uri_not_supported",
            query=_authorize(request_uri="https://x.test/r"),
        ),
        id="fails because a request_uri other than a pushed request's would be fetched (SSRF)",
    ),
    pytest.param(
        Hostile(
            "GET",
            "/authorize",
            302,
            "invalid_request_uri",
            query=_authorize(request_uri=REQUEST_URI_PREFIX + "x"),
        ),
        id="fails because the pushed request is unknown",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/token",
            400,
            "invalid_client",
            form=[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", CRIT_NOT_A_LIST),
            ],
        ),
        id="fails because the client assertion names no client",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/par",
            400,
            "invalid_request",
            form=[*_authorize(), ("scope", "openid")],
            headers={"Authorization": "Basic {basic}"},
        ),
        id="fails because a pushed parameter is repeated",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/par",
            400,
            "invalid_request",
            form=_authorize(request_uri=REQUEST_URI_PREFIX + "x"),
            headers={"Authorization": "Basic {basic}"},
        ),
        id="fails because a request_uri cannot be pushed",
    ),
    pytest.param(
        Hostile(
            "POST",
            "/signin/{pending}/passkey",
            400,
            raw=b"[" * 60000,
            content_type="application/json",
            headers={"X-CSRFToken": "{csrf}"},
        ),
        id="fails because the passkey response nests deeper than the JSON parser recurses",
    ),
]


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_requests_get_the_specs_error(target: Target, case: Hostile) -> None:
    browser = target.anonymous()
    page = browser.authorize()
    basic = base64.b64encode(f"{target.client_id}:{target.client_secret}".encode()).decode()
    known = {
        "{client_id}": target.client_id,
        "{redirect_uri}": REDIRECT_URI,
        "{pending}": page.request.path.split("/")[2],
        "{csrf}": meta_csrf_token(page),
        "{basic}": basic,
    }

    def filled(value: str) -> str:
        for placeholder, real in known.items():
            value = value.replace(placeholder, real)
        return value

    path = filled(case.path)
    headers = {name: filled(value) for name, value in case.headers.items()}
    query = urlencode([(name, filled(value)) for name, value in case.query])
    body = (
        case.raw if case.raw is not None else urlencode([(name, filled(value)) for name, value in case.form])
    )
    content_type = case.content_type or FORM
    before = target.snapshot()

    response = browser.client.open(
        path,
        method=case.method,
        query_string=query,
        data=body if case.method == "POST" else None,
        content_type=content_type if case.method == "POST" else None,
        headers=headers,
    )

    assert_calm(target, response)
    assert response.status_code == case.status, response.get_data(as_text=True)[:300]
    if case.status == 302:
        assert response.headers["Location"].startswith(REDIRECT_URI + "?")
        assert parse_qs(urlsplit(response.headers["Location"]).query)["error"] == [case.error]
    elif case.error is not None:
        assert response.get_json()["error"] == case.error
    assert_unchanged(target, before)
