"""idp.resource, for resource servers: validate our access tokens and answer RFC 9470 step-up challenges.

One live provider (`idp serve` on SQLite, issuer http://localhost:PORT so passkeys work over HTTP)
issues every token here: an mfa one from a password + TOTP sign-in and a phr one after the passkey.
Validators, the Flask decorator, the WSGI middleware and the demo API and app are tried against it,
and hostile tokens (most signed with the provider's own key) against the decorator and the middleware.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask, g, jsonify
from hypothesis import given
from hypothesis import strategies as st
from joserfc.jwk import ECKey
from support.hostile import FUZZ, JSON_VALUES, JWT_LIKE
from support.live import LiveProvider, free_port, start_provider
from support.oidc_client import Client, OpenIdProvider, location
from support.step_up import (
    EXAMPLES,
    LiveMember,
    add_passkey_over_http,
    cli_client,
    forge_access_token,
    header_of,
    live_member,
    load_example,
    offered,
    provider_key,
    restart,
    serving,
    sign_compact,
    unverified_claims,
    use_passkey_over_http,
)
from werkzeug.test import Client as WsgiClient

import idp.resource
from idp.resource import (
    AccessToken,
    Challenge,
    DetailsDemand,
    IntrospectionValidator,
    JwksValidator,
    RequireAuthentication,
    TokenValidator,
    challenged_details,
    check,
    require,
)

# The demo's payment type, as `idp demo` declares it (RFC 9396 authorization details).
PAYMENT_TYPE = (
    "[authorization_details.payment]\n"
    f'schema = "{EXAMPLES / "payment.schema.json"}"\n'
    'title = "Pay {amount} {currency} to {creditorName}"\nacr = "phr"\none_time = true\n'
)
PAYMENT = {"amount": "120.00", "currency": "EUR", "creditorName": "ACME Ltd"}
NO_TOKEN = "Bearer"
INVALID_TOKEN = 'Bearer error="invalid_token"'
PHR_WITHIN_300: dict[str, Any] = {"acr": ("phr",), "max_age": 300}


def step_up_challenge(description: str, acr_values: str, max_age: int) -> str:
    return (
        f'Bearer error="insufficient_user_authentication", error_description="{description}", '
        f'acr_values="{acr_values}", max_age={max_age}'
    )


# -- the provider and the tokens it issued ------------------------------------------------------------


@dataclass
class Live:
    """The running provider; a test that restarts it puts the new process here."""

    provider: LiveProvider


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    running = Live(start_provider(tmp_path_factory.mktemp("resource"), host="localhost", extra=PAYMENT_TYPE))
    try:
        yield running
    finally:
        running.provider.stop()


@dataclass(frozen=True)
class Issued:
    """What the provider issued to the "shop" client for alice: at mfa, then after the passkey (phr)."""

    op: OpenIdProvider
    shop: Client  # the relying party: its client_id is the tokens' audience
    api: Client  # a resource server's own credentials, for introspection
    demo: Client  # the demo app (public), with its demo port
    demo_port: int
    alice: LiveMember
    bob: LiveMember  # no sign-in yet: the demo app's user
    mfa: dict[str, Any]
    phr: dict[str, Any]
    keys: Path

    @property
    def issuer(self) -> str:
        return self.op.issuer

    def jwks_validator(self, **options: Any) -> JwksValidator:
        return JwksValidator(issuer=self.issuer, audience=self.shop.client_id, **options)

    def introspection_validator(self) -> IntrospectionValidator:
        assert self.api.secret is not None
        return IntrospectionValidator(
            issuer=self.issuer, client_id=self.api.client_id, client_secret=self.api.secret
        )

    def signing_key(self) -> ECKey:
        return provider_key(self.keys)


@pytest.fixture(scope="module")
def issued(live: Live) -> Issued:
    provider = live.provider
    op = OpenIdProvider(provider.issuer)
    demo_port = free_port()
    with ThreadPoolExecutor(max_workers=5) as pool:
        shop = pool.submit(cli_client, provider, "shop")
        demo = pool.submit(
            cli_client, provider, "demo", "--public", redirect_uri=f"http://localhost:{demo_port}/callback"
        )
        alice = pool.submit(live_member, provider, op, "alice")
        bob = pool.submit(live_member, provider, op, "bob")
        shop_client, alice_member = shop.result(), alice.result()
        api = pool.submit(
            cli_client,
            provider,
            "api",
            "--grant-type",
            "client_credentials",
            "--introspect",
            shop_client.client_id,
        )
        mfa = alice_member.sign_in(shop_client)
        add_passkey_over_http(alice_member.browser, alice_member.passkey)
        phr = alice_member.step_up(shop_client, acr_values="phr")
        return Issued(
            op=op,
            shop=shop_client,
            api=api.result(),
            demo=demo.result(),
            demo_port=demo_port,
            alice=alice_member,
            bob=bob.result(),
            mfa=mfa,
            phr=phr,
            keys=provider.config.parent / "keys",
        )


def test_the_tokens_under_test_say_mfa_then_phr(issued: Issued) -> None:
    mfa, phr = unverified_claims(issued.mfa["access_token"]), unverified_claims(issued.phr["access_token"])
    assert (mfa["acr"], mfa["amr"]) == ("mfa", ["pwd", "otp", "mfa"])
    assert phr["acr"] == "phr" and {"swk", "user"} <= set(phr["amr"]) and phr["auth_time"] >= mfa["auth_time"]
    assert header_of(issued.phr["access_token"])["typ"] == "at+jwt"


# -- check(): the demands of one endpoint, answered with the token or a challenge -----------------------


def forged(
    issued: Issued, *, key: ECKey | None = None, header: dict[str, str] | None = None, **claims: Any
) -> str:
    """alice's mfa access token as it would read with other claims, signed with the provider's key."""
    original = unverified_claims(issued.mfa["access_token"])
    return forge_access_token(key or issued.signing_key(), {**original, **claims}, **(header or {}))


def tampered(issued: Issued) -> str:
    """The phr token's claims under the mfa token's signature."""
    header, _claims, signature = issued.mfa["access_token"].split(".")
    return ".".join((header, issued.phr["access_token"].split(".")[1], signature))


@dataclass(frozen=True)
class Case:
    """An Authorization header (built from what was issued) against an endpoint's demands."""

    authorization: Callable[[Issued], str | None]
    demands: dict[str, Any]
    status: int
    challenge: str
    signed_in_ago: int | None = None  # evaluate as if this long after the token's auth_time


def bearer(token: Callable[[Issued], str]) -> Callable[[Issued], str]:
    return lambda issued: f"Bearer {token(issued)}"


MFA = bearer(lambda issued: issued.mfa["access_token"])
PHR = bearer(lambda issued: issued.phr["access_token"])

REFUSED = [
    pytest.param(
        Case(MFA, PHR_WITHIN_300, 401, step_up_challenge("needs authentication at phr", "phr", 300)),
        id="fails because an mfa token does not meet acr phr",
    ),
    pytest.param(
        Case(
            PHR,
            PHR_WITHIN_300,
            401,
            step_up_challenge("needs authentication within the last 300 seconds", "phr", 300),
            signed_in_ago=301,
        ),
        id="fails because the phr sign-in is older than max_age",
    ),
    pytest.param(
        Case(
            MFA,
            {"acr": ("phr", "phrh")},
            401,
            'Bearer error="insufficient_user_authentication", '
            'error_description="needs authentication at phr or phrh", acr_values="phr phrh"',
        ),
        id="fails because mfa is neither of two acceptable levels (no max_age asked)",
    ),
    pytest.param(
        Case(
            MFA,
            {"scopes": ("payments:write",)},
            403,
            'Bearer error="insufficient_scope", scope="payments:write"',
        ),
        id="fails because the token lacks a scope the endpoint needs",
    ),
    pytest.param(Case(lambda _: None, PHR_WITHIN_300, 401, NO_TOKEN), id="fails because no token was sent"),
    pytest.param(Case(lambda _: "Bearer ", {}, 401, NO_TOKEN), id="fails because the bearer token is empty"),
    pytest.param(
        Case(lambda i: f"Basic {i.mfa['access_token']}", {}, 401, NO_TOKEN),
        id="fails because the credentials are not a bearer token",
    ),
    pytest.param(
        Case(lambda _: "Bearer not-a-token", {}, 401, INVALID_TOKEN), id="fails because the token is garbage"
    ),
    pytest.param(
        Case(lambda _: "Bearer a.b.c", {}, 401, INVALID_TOKEN),
        id="fails because three dots do not make a JWT",
    ),
    pytest.param(
        Case(lambda _: "Bearer " + "a" * 9000, {}, 401, INVALID_TOKEN),
        id="fails because the token is longer than any we issue",
    ),
    pytest.param(
        Case(bearer(lambda i: i.phr["id_token"]), {}, 401, INVALID_TOKEN),
        id="fails because an ID token is not an access token (typ JWT)",
    ),
    pytest.param(
        Case(bearer(lambda i: i.mfa["refresh_token"]), {}, 401, INVALID_TOKEN),
        id="fails because a refresh token is not an access token",
    ),
    pytest.param(
        Case(bearer(lambda i: forged(i, exp=int(time.time()) - 1)), {}, 401, INVALID_TOKEN),
        id="fails because the token expired",
    ),
    pytest.param(
        Case(bearer(lambda i: forged(i, iss="https://login.example.net")), {}, 401, INVALID_TOKEN),
        id="fails because another issuer's token is not ours",
    ),
    pytest.param(
        Case(bearer(lambda i: forged(i, aud="another-api", client_id="another-api")), {}, 401, INVALID_TOKEN),
        id="fails because the token was issued to another audience",
    ),
    pytest.param(
        Case(bearer(lambda i: forged(i, header={"typ": "JWT"})), {}, 401, INVALID_TOKEN),
        id="fails because typ is not at+jwt (RFC 9068 2.1)",
    ),
    pytest.param(
        Case(
            bearer(lambda i: forged(i, key=ECKey.generate_key("P-256", auto_kid=True), acr="phr")),
            {},
            401,
            INVALID_TOKEN,
        ),
        id="fails because a key the provider never published signed it",
    ),
    pytest.param(
        Case(bearer(tampered), {}, 401, INVALID_TOKEN),
        id="fails because the claims were swapped under a signature",
    ),
]


def run_check(issued: Issued, case: Case, validator: TokenValidator) -> AccessToken | Challenge:
    authorization = case.authorization(issued)
    now = None
    if case.signed_in_ago is not None:
        assert authorization is not None
        now = unverified_claims(authorization.split(" ", 1)[1])["auth_time"] + case.signed_in_ago
    return check(authorization, validator, now=now, **case.demands)


@pytest.mark.parametrize("case", REFUSED)
def test_check_refuses_with_the_challenge_that_says_what_would_do(issued: Issued, case: Case) -> None:
    outcome = run_check(issued, case, issued.jwks_validator())
    assert isinstance(outcome, Challenge), outcome
    assert (outcome.status, outcome.www_authenticate) == (case.status, case.challenge)


@pytest.mark.parametrize(
    ("authorization", "demands", "acr"),
    [
        pytest.param(MFA, {"acr": ("mfa",)}, "mfa", id="an mfa token where mfa is enough"),
        pytest.param(MFA, {"scopes": ("openid", "profile")}, "mfa", id="a token with the scopes asked for"),
        pytest.param(PHR, PHR_WITHIN_300, "phr", id="a phr token within max_age"),
        pytest.param(PHR, {"acr": ("phrh", "phr")}, "phr", id="a phr token where phrh or phr will do"),
        pytest.param(PHR, {}, "phr", id="any valid token where nothing more is asked"),
    ],
)
def test_check_accepts_a_token_meeting_the_demands_and_reports_its_facts(
    issued: Issued, authorization: Callable[[Issued], str], demands: dict[str, Any], acr: str
) -> None:
    header = authorization(issued)
    outcome = check(header, issued.jwks_validator(), **demands)
    assert isinstance(outcome, AccessToken), outcome
    claims = unverified_claims(header.split(" ", 1)[1])
    assert outcome.acr == acr == claims["acr"]
    assert (outcome.subject, outcome.client_id) == (claims["sub"], issued.shop.client_id)
    assert outcome.amr == tuple(claims["amr"]) and outcome.auth_time == claims["auth_time"]
    assert outcome.scopes == {"openid", "profile"}


def test_an_audience_bound_validator_refuses_tokens_for_another_client(issued: Issued) -> None:
    other = JwksValidator(issuer=issued.issuer, audience=issued.api.client_id)
    assert other.validate(issued.phr["access_token"]) is None
    assert JwksValidator(issuer=issued.issuer).validate(issued.phr["access_token"]) is not None


# -- introspection -------------------------------------------------------------------------------------


def test_the_introspection_validator_reports_the_same_facts_as_the_jwt(issued: Issued) -> None:
    token = issued.phr["access_token"]
    introspected = issued.introspection_validator().validate(token)
    local = issued.jwks_validator().validate(token)
    assert introspected is not None and local is not None
    facts = ("subject", "client_id", "scopes", "acr", "amr", "auth_time")
    assert {name: getattr(introspected, name) for name in facts} == {
        name: getattr(local, name) for name in facts
    }
    assert introspected.acr == "phr"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(
            lambda i: i.mfa["refresh_token"], id="fails because a refresh token is not an access token"
        ),
        pytest.param(lambda _: "not-a-token", id="fails because the provider never issued it"),
        pytest.param(lambda i: i.phr["id_token"], id="fails because an ID token is not an access token"),
        pytest.param(lambda _: "", id="fails because it is empty"),
    ],
)
def test_the_introspection_validator_refuses(issued: Issued, token: Callable[[Issued], str]) -> None:
    assert issued.introspection_validator().validate(token(issued)) is None


def test_only_introspection_sees_a_revoked_access_token(issued: Issued) -> None:
    attempt = issued.alice.browser.authorize(issued.shop, prompt="none")
    callback = attempt.callback(attempt.page)
    tokens = issued.op.exchange(attempt, callback["code"]).json()
    revoked = issued.op.revoke(tokens["access_token"], client=issued.shop, hint="access_token")
    assert revoked.status_code == 200
    assert issued.jwks_validator().validate(tokens["access_token"]) is not None, "a JWT is valid until exp"
    assert issued.introspection_validator().validate(tokens["access_token"]) is None


# -- the Flask decorator and the WSGI middleware ----------------------------------------------------------


def flask_api(validator: TokenValidator) -> Flask:
    app = Flask("transfers")

    @app.post("/transfer")
    @require(validator, acr=("phr",), max_age=300)
    def transfer() -> Any:
        token: AccessToken = g.access_token
        return jsonify(sub=token.subject, acr=token.acr)

    @app.get("/me")
    @require(validator)
    def me() -> Any:
        token: AccessToken = g.access_token
        return jsonify(sub=token.subject)

    return app


def test_the_flask_decorator_answers_the_challenge_or_runs_the_view_with_the_token(issued: Issued) -> None:
    client = flask_api(issued.jwks_validator()).test_client()
    refused = client.post("/transfer", headers={"Authorization": f"Bearer {issued.mfa['access_token']}"})
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == step_up_challenge("needs authentication at phr", "phr", 300)
    assert refused.get_json() == {"error": "insufficient_user_authentication"}
    anonymous = client.post("/transfer")
    assert (anonymous.status_code, anonymous.headers["WWW-Authenticate"]) == (401, NO_TOKEN)
    assert anonymous.get_json() == {"error": "unauthorized"}
    accepted = client.post("/transfer", headers={"Authorization": f"Bearer {issued.phr['access_token']}"})
    assert accepted.status_code == 200
    assert accepted.get_json() == {"sub": unverified_claims(issued.phr["access_token"])["sub"], "acr": "phr"}


def plain_wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    token: AccessToken = environ[RequireAuthentication.ENVIRON_KEY]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{token.acr} {' '.join(token.amr)}".encode()]


@pytest.mark.parametrize(
    ("authorization", "demands", "status", "challenge"),
    [
        pytest.param(
            MFA,
            PHR_WITHIN_300,
            "401 Unauthorized",
            step_up_challenge("needs authentication at phr", "phr", 300),
            id="fails because an mfa token does not meet acr phr",
        ),
        pytest.param(
            PHR,
            {"scopes": ("payments:write",)},
            "403 Forbidden",
            'Bearer error="insufficient_scope", scope="payments:write"',
            id="fails because the token lacks the scope",
        ),
        pytest.param(
            lambda _: "Bearer not-a-token",
            {},
            "401 Unauthorized",
            INVALID_TOKEN,
            id="fails because it is garbage",
        ),
    ],
)
def test_the_wsgi_middleware_answers_the_challenge_before_the_app_runs(
    issued: Issued,
    authorization: Callable[[Issued], str],
    demands: dict[str, Any],
    status: str,
    challenge: str,
) -> None:
    app = RequireAuthentication(plain_wsgi_app, issued.jwks_validator(), **demands)
    response = WsgiClient(app).get("/", headers={"Authorization": authorization(issued)})
    assert response.status == status and response.headers["WWW-Authenticate"] == challenge
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.get_data()) == {"error": challenge.split('"')[1]}


def test_the_wsgi_middleware_hands_a_satisfying_token_to_the_app(issued: Issued) -> None:
    app = RequireAuthentication(plain_wsgi_app, issued.jwks_validator(), **PHR_WITHIN_300)
    response = WsgiClient(app).get("/", headers={"Authorization": PHR(issued)})
    assert response.status == "200 OK"
    assert response.get_data(as_text=True) == "phr " + " ".join(
        unverified_claims(issued.phr["access_token"])["amr"]
    )


# -- the demo API and the demo app ---------------------------------------------------------------------------


def payment_challenge(description: str, *, acr: bool = True, detail: dict[str, Any] | None = None) -> str:
    """The demo API's challenge: phr or phrh within 300 s, and the payment it is about to make."""
    encoded = base64.urlsafe_b64encode(json.dumps([detail or {**PAYMENT, "type": "payment"}]).encode())
    return (
        f'Bearer error="insufficient_user_authentication", error_description="{description}", '
        + ('acr_values="phr phrh", max_age=300, ' if acr else "")
        + f'authorization_details="{encoded.rstrip(b"=").decode()}"'
    )


def approved_payment(issued: Issued, payment: dict[str, str]) -> str:
    """An access token for the shop whose user (alice) approved `payment` with her passkey."""
    alice = issued.alice
    attempt = alice.browser.authorize(
        issued.shop, authorization_details=json.dumps([{"type": "payment", **payment}])
    )
    assert offered(attempt.page) == {"passkey"}, attempt.page.text
    callback = attempt.callback(use_passkey_over_http(alice.browser, attempt.page, alice.passkey))
    answer = issued.op.exchange(attempt, callback["code"])
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def test_the_demo_api_makes_only_the_payment_the_user_approved_and_only_once(issued: Issued) -> None:
    demo_api = load_example("demo_api", DEMO_ISSUER=issued.issuer, DEMO_CLIENT_ID=issued.shop.client_id)
    client = demo_api.app.test_client()

    def transfer(token: str, payment: dict[str, str]) -> Any:
        return client.post("/api/transfer", json=payment, headers={"Authorization": f"Bearer {token}"})

    mfa = {"Authorization": f"Bearer {issued.mfa['access_token']}"}
    assert client.get("/api/me", headers=mfa).get_json()["acr"] == "mfa"
    refused = transfer(issued.mfa["access_token"], PAYMENT)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == payment_challenge("needs authentication at phr or phrh")
    refused = transfer(issued.phr["access_token"], PAYMENT)
    assert refused.headers["WWW-Authenticate"] == payment_challenge("needs approval of this transaction"), (
        "a passkey sign-in is not the approval of this payment"
    )

    other_amount = approved_payment(issued, {**PAYMENT, "amount": "999.00"})
    refused = transfer(other_amount, PAYMENT)
    assert refused.status_code == 401, "approved for another amount"
    assert refused.headers["WWW-Authenticate"] == payment_challenge("needs approval of this transaction")
    incomplete = transfer(other_amount, {"amount": "999.00", "currency": "EUR"})
    assert incomplete.status_code == 401, "a field the API would fill itself was not approved"
    accepted = transfer(other_amount, {**PAYMENT, "amount": "999.00"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.get_json()["amount"] == "999.00 EUR" and accepted.get_json()["to"] == "ACME Ltd"
    replayed = transfer(other_amount, {**PAYMENT, "amount": "999.00"})
    assert replayed.status_code == 401 and 'error="invalid_token"' in replayed.headers["WWW-Authenticate"]


def test_a_one_time_token_raced_at_a_resource_server_is_accepted_once(issued: Issued) -> None:
    token = approved_payment(issued, PAYMENT)
    validator = issued.jwks_validator()
    demand = DetailsDemand("payment", PAYMENT)
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda _: check(f"Bearer {token}", validator, details=demand), range(8)))
    assert sum(isinstance(outcome, AccessToken) for outcome in outcomes) == 1


def test_the_challenge_names_the_details_a_client_should_request(issued: Issued) -> None:
    outcome = check(
        f"Bearer {issued.phr['access_token']}",
        issued.jwks_validator(),
        details=DetailsDemand("payment", PAYMENT),
    )
    assert isinstance(outcome, Challenge)
    assert challenged_details(outcome.www_authenticate) == [{**PAYMENT, "type": "payment"}]
    assert outcome.www_authenticate == payment_challenge("needs approval of this transaction", acr=False)


def test_the_demo_app_has_the_payment_approved_on_the_apis_challenge_and_it_then_goes_through(
    issued: Issued,
) -> None:
    demo = {"DEMO_ISSUER": issued.issuer, "DEMO_CLIENT_ID": issued.demo.client_id}
    demo_api = load_example("demo_api", **demo)
    bob = issued.bob
    with serving(demo_api.app, free_port()) as api_url:
        demo_rp = load_example("demo_rp", **demo, DEMO_PORT=str(issued.demo_port), DEMO_API=api_url)
        app = demo_rp.app.test_client()

        def back_to_the_app(response: Any) -> Any:
            """The provider sent the user agent to the demo app's callback: deliver it there."""
            target = urlsplit(location(response) or "")
            assert target.path == "/callback", response.text
            return app.get(f"/callback?{target.query}")

        signed_in = back_to_the_app(bob.first_sign_in(bob.browser.visit(app.get("/login").location)))
        assert signed_in.location == "/"
        assert '<strong id="acr">mfa</strong>' in app.get("/").text
        add_passkey_over_http(bob.browser, bob.passkey)

        step_up = app.post("/transfer")
        assert step_up.status_code == 302 and step_up.location.startswith(f"{issued.issuer}/authorize?")
        asked = parse_qs(urlsplit(step_up.location).query)
        assert (asked.get("acr_values"), asked.get("max_age")) == (["phr phrh"], ["300"]), "as the API said"
        assert json.loads(asked["authorization_details"][0]) == [{**PAYMENT, "type": "payment"}]
        page = bob.browser.visit(step_up.location)
        assert offered(page) == {"passkey"}
        assert "<li>Pay 120.00 EUR to ACME Ltd</li>" in page.text
        done = back_to_the_app(use_passkey_over_http(bob.browser, page, bob.passkey))
        assert done.location == "/"
        home = app.get("/").text
        assert 'id="transfer-result">Done: transferred 120.00 EUR to ACME Ltd<' in home
        assert '<strong id="acr">phr</strong>' in home


# -- hostile tokens: whatever the bearer sends, invalid_token and never a 5xx -----------------------------


@dataclass(frozen=True)
class Edit:
    """One member of the well-formed header or claims set to a value of the wrong shape."""

    part: str  # "header" | "claims"
    name: str
    value: Any


@dataclass(frozen=True)
class Drop:
    """One member the token needs, left out."""

    part: str
    name: str


@dataclass(frozen=True)
class Replace:
    """The header's or the claims' JSON replaced by these bytes: not an object, too deep, not JSON."""

    part: str
    raw: bytes


@dataclass(frozen=True)
class Insert:
    """The well-formed signed token with `char` put in at `at`: a segment more, or one not base64url."""

    at: int
    char: str


@dataclass(frozen=True)
class Segments:
    """The well-formed signed token's segments, cut or repeated to `count` (RFC 7515 7.1 has three)."""

    count: int


@dataclass(frozen=True)
class Unsigned:
    """A string that looks like a token, or not even that."""

    token: str


Hostile = Edit | Drop | Replace | Insert | Segments | Unsigned


def token_from(issued: Issued, hostile: Hostile | None) -> str:
    """The token `hostile` describes, signed with the provider's own key unless it is Unsigned; None:
    the well-formed phr token (fresh again) that the others are edited from."""
    if isinstance(hostile, Unsigned):
        return hostile.token
    key = issued.signing_key()
    now = int(time.time())
    parts: dict[str, dict[str, Any]] = {
        "header": {"typ": "at+jwt", "alg": "ES256", "kid": key.kid},
        "claims": unverified_claims(issued.phr["access_token"])
        | {"iat": now, "exp": now + 600, "auth_time": now},
    }
    if isinstance(hostile, Edit):
        parts[hostile.part][hostile.name] = hostile.value
    if isinstance(hostile, Drop):
        del parts[hostile.part][hostile.name]
    encoded = {part: json.dumps(members).encode() for part, members in parts.items()}
    if isinstance(hostile, Replace):
        encoded[hostile.part] = hostile.raw
    token = sign_compact(key, encoded["header"], encoded["claims"])
    if isinstance(hostile, Insert):
        at = hostile.at % (len(token) + 1)
        token = token[:at] + hostile.char + token[at:]
    if isinstance(hostile, Segments):
        token = ".".join((token.split(".") * 2)[: hostile.count])
    return token


NOT_STRINGS = JSON_VALUES.filter(lambda value: not isinstance(value, str))
NOT_NUMERIC_DATES = st.one_of(
    JSON_VALUES.filter(lambda value: not isinstance(value, int) or isinstance(value, bool)),
    st.floats(),  # NaN and the infinities too: Python's JSON writes and reads them
    st.integers(min_value=2**53, max_value=10**400),  # past the year 9999, past a float's reach
    st.integers(max_value=-1),
)
WITH_A_NON_STRING = st.builds(
    lambda strings, other: [*strings, other], st.lists(st.text(max_size=4)), NOT_STRINGS
)
NOT_LISTS_OF_STRINGS = JSON_VALUES.filter(lambda value: not isinstance(value, list)) | WITH_A_NON_STRING
NOT_AUDIENCES = JSON_VALUES.filter(lambda value: not isinstance(value, str | list)) | WITH_A_NON_STRING
HEADER_EDITS = st.one_of(
    st.builds(Edit, st.just("header"), st.just("typ"), JSON_VALUES.filter(lambda value: value != "at+jwt")),
    st.builds(Edit, st.just("header"), st.just("kid"), NOT_STRINGS),
    st.builds(
        Edit, st.just("header"), st.just("alg"), st.sampled_from(["none", "HS256", "RS256"]) | NOT_STRINGS
    ),
    st.builds(
        Edit,
        st.just("header"),
        st.sampled_from(["crit", "b64", "jku", "jwk", "x5u", "x5c", "zip", "cty"])
        | st.text(max_size=6).filter(lambda name: name not in ("alg", "kid", "typ")),
        JSON_VALUES,
    ),
    st.builds(Drop, st.just("header"), st.sampled_from(["alg", "typ"])),
)
CLAIM_EDITS = st.one_of(
    st.builds(
        Edit,
        st.just("claims"),
        st.sampled_from(["iss", "sub", "client_id", "jti", "scope", "acr"]),
        NOT_STRINGS,
    ),
    st.builds(Edit, st.just("claims"), st.sampled_from(["exp", "iat", "auth_time"]), NOT_NUMERIC_DATES),
    st.builds(Edit, st.just("claims"), st.just("amr"), NOT_LISTS_OF_STRINGS),
    st.builds(Edit, st.just("claims"), st.just("aud"), NOT_AUDIENCES),
    st.builds(Edit, st.just("claims"), st.just("cnf"), JSON_VALUES),  # key-bound: no bearer token
    st.builds(Drop, st.just("claims"), st.sampled_from(["iss", "sub", "client_id", "exp", "aud"])),
)
REPLACEMENTS = st.builds(
    Replace,
    st.sampled_from(["header", "claims"]),
    st.one_of(
        JSON_VALUES.filter(lambda value: not isinstance(value, dict)).map(
            lambda value: json.dumps(value).encode()
        ),
        st.integers(1, 5000).map(lambda depth: b"[" * depth),  # from about 900 deeper than JSON recurses
        st.sampled_from([b'"alg"', b'["alg"]', b"", b"{", b"\xff\xfe", b'{"exp":' + b"9" * 5000 + b"}"]),
        st.binary(max_size=40),
    ),
)
HOSTILE_TOKENS = st.one_of(
    HEADER_EDITS,
    CLAIM_EDITS,
    REPLACEMENTS,
    st.builds(Insert, st.integers(0, 10_000), st.sampled_from(list("!*+/=~$.%"))),
    st.builds(Segments, st.sampled_from([1, 2, 4, 5, 6])),
    st.builds(
        Unsigned,
        JWT_LIKE | st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80),
    ),
)
ENDPOINTS = ("decorator demanding phr", "decorator demanding nothing", "middleware demanding nothing")


@pytest.fixture(scope="module")
def guarded(issued: Issued) -> Iterator[dict[str, tuple[str, str]]]:
    """The Flask decorator (with and without demands) and the WSGI middleware, served on real ports."""
    validator = issued.jwks_validator()
    middleware = RequireAuthentication(plain_wsgi_app, validator)
    with serving(flask_api(validator), free_port()) as api, serving(middleware, free_port()) as wsgi:
        yield dict(
            zip(ENDPOINTS, [("POST", f"{api}/transfer"), ("GET", f"{api}/me"), ("GET", wsgi)], strict=True)
        )


def send_bearer(endpoint: tuple[str, str], token: str) -> requests.Response:
    method, url = endpoint
    return requests.request(method, url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def assert_invalid_token(response: requests.Response) -> None:
    """RFC 6750 3.1: 401 with invalid_token in the challenge and in the body; never a 5xx."""
    assert response.status_code == 401, f"{response.status_code}: {response.text[:300]}"
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN
    assert response.json() == {"error": "invalid_token"}


def test_the_well_formed_token_the_hostile_ones_start_from_is_accepted(
    issued: Issued, guarded: dict[str, tuple[str, str]]
) -> None:
    token = token_from(issued, None)
    assert {name: send_bearer(endpoint, token).status_code for name, endpoint in guarded.items()} == {
        name: 200 for name in guarded
    }


@FUZZ
@given(hostile=HOSTILE_TOKENS, endpoint=st.sampled_from(ENDPOINTS))
def test_a_malformed_token_is_an_invalid_token_and_never_a_server_error(
    issued: Issued, guarded: dict[str, tuple[str, str]], hostile: Hostile, endpoint: str
) -> None:
    assert_invalid_token(send_bearer(guarded[endpoint], token_from(issued, hostile)))


MALFORMED_KINDS = [  # one of each kind issue 14 lists; most once answered 500, or were accepted
    pytest.param(Edit("header", "crit", 5), id="fails because crit is not a list"),
    pytest.param(Edit("header", "crit", []), id="fails because crit is empty (RFC 7515 4.1.11)"),
    pytest.param(Replace("header", b'"alg"'), id="fails because the header is a string holding alg"),
    pytest.param(Replace("header", b'["alg"]'), id="fails because the header is a list holding alg"),
    pytest.param(Edit("header", "kid", ["k"]), id="fails because kid is not a string"),
    pytest.param(
        Edit("header", "jku", "https://attacker.example/jwks"), id="fails because the header points at keys"
    ),
    pytest.param(Edit("claims", "amr", 5), id="fails because amr is a number"),
    pytest.param(Edit("claims", "amr", "pwd"), id="fails because amr is a string, not a list"),
    pytest.param(Edit("claims", "amr", ["pwd", 1]), id="fails because amr holds a number"),
    pytest.param(Edit("claims", "auth_time", float("nan")), id="fails because auth_time is NaN"),
    pytest.param(Edit("claims", "auth_time", 10**309), id="fails because auth_time is beyond a float"),
    pytest.param(Edit("claims", "auth_time", "1700000000"), id="fails because auth_time is a string"),
    pytest.param(Edit("claims", "exp", True), id="fails because exp is a boolean"),
    pytest.param(Edit("claims", "iat", [1]), id="fails because iat is a list"),
    pytest.param(Edit("claims", "scope", ["openid"]), id="fails because scope is a list, not a string"),
    pytest.param(Edit("claims", "acr", ["phr"]), id="fails because acr is a list"),
    pytest.param(Edit("claims", "sub", 1), id="fails because sub is a number"),
    pytest.param(Edit("claims", "cnf", {"jkt": "0" * 43}), id="fails because a key-bound token is no bearer"),
    pytest.param(Edit("claims", "cnf", "key"), id="fails because cnf is not an object"),
    pytest.param(Drop("claims", "client_id"), id="fails because client_id is missing"),
    pytest.param(
        Replace("claims", b"[" * 3000), id="fails because the claims nest deeper than JSON recurses"
    ),
    pytest.param(Replace("claims", b"[1]"), id="fails because the claims are not an object"),
    pytest.param(
        Replace("claims", b'{"exp":' + b"9" * 5000 + b"}"), id="fails because exp has more digits than int()"
    ),
    pytest.param(Segments(2), id="fails because two segments are no JWS"),
    pytest.param(Segments(5), id="fails because five segments are a JWE, not a signed token"),
    pytest.param(Insert(10, "!"), id="fails because a segment is not base64url"),
]


@pytest.mark.parametrize("hostile", MALFORMED_KINDS)
def test_each_kind_of_malformed_token_is_an_invalid_token_everywhere(
    issued: Issued, guarded: dict[str, tuple[str, str]], hostile: Hostile
) -> None:
    for endpoint in guarded.values():
        assert_invalid_token(send_bearer(endpoint, token_from(issued, hostile)))


# -- the JWKS cache -----------------------------------------------------------------------------------------


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every URL idp.resource fetches from the provider (the real fetch still happens)."""
    urls: list[str] = []
    real = idp.resource._get_json

    def counting(url: str) -> dict[str, Any]:
        urls.append(url)
        return real(url)

    monkeypatch.setattr(idp.resource, "_get_json", counting)
    return urls


def test_the_jwks_is_fetched_once_and_an_unknown_kid_does_not_fetch_again_right_away(
    issued: Issued, fetched: list[str]
) -> None:
    validator = issued.jwks_validator()
    assert validator.validate(issued.mfa["access_token"]) is not None
    assert validator.validate(issued.phr["access_token"]) is not None
    assert fetched == [f"{issued.issuer}/.well-known/openid-configuration", f"{issued.issuer}/jwks.json"]
    stranger = forged(issued, key=ECKey.generate_key("P-256", auto_kid=True))
    assert validator.validate(stranger) is None
    assert len(fetched) == 2, "within refetch_after, a kid we lack is not worth another fetch"


def test_after_a_key_rotation_a_token_with_the_new_kid_makes_the_validator_fetch_the_jwks_again(
    live: Live, issued: Issued, fetched: list[str]
) -> None:
    """Last in the module: it rotates the provider's ES256 key and restarts `idp serve`."""
    validator = issued.jwks_validator(refetch_after=0)
    old_kid = header_of(issued.mfa["access_token"])["kid"]
    assert validator.validate(issued.mfa["access_token"]) is not None and len(fetched) == 2

    rotated = live.provider.idp("keys", "rotate", "--alg", "ES256")
    assert rotated.returncode == 0, rotated.stderr
    live.provider = restart(live.provider)
    refreshed = issued.op.refresh(issued.shop, issued.phr["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    token = refreshed.json()["access_token"]
    assert header_of(token)["kid"] != old_kid

    accepted = validator.validate(token)
    assert accepted is not None and accepted.acr == "phr", "the refresh keeps the phr of its grant"
    assert len(fetched) == 4, "the unknown kid fetched the JWKS once more"
    assert validator.validate(issued.mfa["access_token"]) is not None, "the old key stays published"
    assert len(fetched) == 4


def test_an_unreachable_provider_fails_closed_with_503(issued: Issued) -> None:
    nowhere = idp.resource.JwksValidator(issuer=f"http://127.0.0.1:{free_port()}")
    outcome = idp.resource.check(f"Bearer {issued.mfa['access_token']}", nowhere)
    assert isinstance(outcome, idp.resource.Challenge)
    assert (outcome.status, outcome.error) == (503, "temporarily_unavailable")
    garbage = idp.resource.check("Bearer a.b.c", nowhere)
    assert isinstance(garbage, idp.resource.Challenge)
    assert (garbage.status, garbage.error) == (401, "invalid_token"), "refused before any fetch"
