"""End to end: a relying party of our own (requests + PyJWT, no authlib) against a real provider.

One `idp serve` backed by PostgreSQL and Redis serves the whole module; users and clients are made
with the real CLI, and every sign-in goes through the hosted pages as a browser without JavaScript
would. Each user's authenticator never offers the provider a time step it has already seen, so the
single-use rule for TOTP codes is exercised rather than tripped over.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
from support.live import LiveProvider, provider_on_real_stores
from support.oidc_client import (
    Account,
    Attempt,
    Authenticator,
    Browser,
    Client,
    OpenIdProvider,
    Pkce,
    create_account,
    enrolment_secret,
    forms_of,
    is_enrolment_page,
    is_factor_page,
    is_password_page,
)
from support.oidc_client import (
    register_client as register,
)

MFA_AMR = {"pwd", "otp", "mfa"}
UNREGISTERED_URI = "http://127.0.0.1/nowhere/callback"


# -- the provider and what is registered with it --------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    with provider_on_real_stores(tmp_path_factory.mktemp("e2e"), database_prefix="idp_e2e_") as provider:
        yield provider


@pytest.fixture(scope="module")
def op(live: LiveProvider) -> OpenIdProvider:
    """The provider as the relying party knows it: from discovery only."""
    return OpenIdProvider(live.issuer)


@dataclass(frozen=True)
class Clients:
    confidential: Client  # RS256 ID tokens, a registered post-logout address
    public: Client
    es256: Client
    machine: Client  # client_credentials only
    signed_out_uri: str = "http://127.0.0.1/confidential/signed-out"


@pytest.fixture(scope="module")
def clients(live: LiveProvider) -> Clients:
    signed_out = Clients.signed_out_uri
    with ThreadPoolExecutor(max_workers=4) as pool:
        confidential = pool.submit(register, live, "confidential", "--post-logout-redirect-uri", signed_out)
        public = pool.submit(register, live, "public", "--public")
        es256 = pool.submit(register, live, "es256", "--id-token-alg", "ES256")
        machine = pool.submit(register, live, "machine", "--grant-type", "client_credentials", redirect=False)
        return Clients(confidential.result(), public.result(), es256.result(), machine.result())


@dataclass
class Member:
    """An enrolled user with a live session in their browser, and the ID token of that sign-in."""

    account: Account
    browser: Browser
    id_token: str
    sub: str


@pytest.fixture(scope="module")
def member(live: LiveProvider, op: OpenIdProvider, clients: Clients) -> Member:
    account = create_account(live, "member")
    browser = Browser(op)
    attempt, callback = browser.sign_in(clients.confidential, account)
    tokens = exchanged(op, attempt, callback)
    claims = op.verify_id_token(
        tokens["id_token"], expected_audience=clients.confidential.client_id, expected_nonce=attempt.nonce
    )
    return Member(account, browser, tokens["id_token"], claims["sub"])


def exchanged(op: OpenIdProvider, attempt: Attempt, callback: dict[str, str]) -> dict[str, Any]:
    assert callback["state"] == attempt.state and callback["iss"] == op.issuer, callback
    response = op.exchange(attempt, callback["code"])
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def tokens_from_session(
    op: OpenIdProvider, browser: Browser, client: Client, **params: str
) -> tuple[Attempt, dict[str, Any]]:
    """An authorization the existing session satisfies outright: straight back to the client, then tokens."""
    attempt = browser.authorize(client, **params)
    return attempt, exchanged(op, attempt, attempt.callback(attempt.page))


def refused(response: Any, status: int, error: str) -> bool:
    return bool(response.status_code == status and response.json().get("error") == error)


def alert(page: Any) -> str:
    start = page.text.index('role="alert">') + len('role="alert">')
    return str(page.text[start : page.text.index("<", start)])


# -- the first sign-in ------------------------------------------------------------------------------


def test_a_new_user_enrols_totp_before_any_code_and_the_id_token_proves_mfa(
    live: LiveProvider, op: OpenIdProvider, clients: Clients
) -> None:
    account = create_account(live, "newcomer")
    browser = Browser(op)
    client = clients.confidential
    started = int(time.time())

    attempt = browser.authorize(client)
    assert is_password_page(attempt.page)
    enrolment = browser.submit(attempt.page, username=account.username, password=account.password)

    assert is_enrolment_page(enrolment), "a user without a second factor sets one up first"
    pending_id = enrolment.url.split("/signin/")[1].split("/")[0]
    resume = f"{live.issuer}/authorize/resume/{pending_id}"
    assert browser.visit(resume).url == enrolment.url, "resuming the request does not skip enrolment"
    assert not browser.went_to(client.redirect_uri), "no code before the second factor is confirmed"
    authenticator = Authenticator(enrolment_secret(enrolment))
    wrong = browser.submit(enrolment, code=authenticator.totp.at(time.time() - 600))
    assert wrong.status_code == 401 and is_enrolment_page(wrong)
    assert not browser.went_to(client.redirect_uri)

    codes = browser.submit(wrong, code=authenticator.next_code())
    callback = attempt.callback(browser.save_recovery_codes(codes))
    tokens = exchanged(op, attempt, callback)

    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    claims = op.verify_id_token(
        tokens["id_token"], expected_audience=client.client_id, expected_nonce=attempt.nonce
    )
    assert claims["acr"] == "mfa"
    assert set(claims["amr"]) == MFA_AMR and len(claims["amr"]) == len(MFA_AMR) and "mfa" in claims["amr"]
    assert started <= claims["auth_time"] <= time.time()
    assert claims["sid"] and isinstance(claims["sid"], str)
    assert claims["iat"] <= time.time() < claims["exp"]
    userinfo = op.userinfo(tokens["access_token"])
    assert userinfo.status_code == 200
    assert userinfo.json()["sub"] == claims["sub"]
    assert userinfo.json()["preferred_username"] == account.username


@pytest.mark.parametrize(
    ("scope", "released"),
    [
        pytest.param("openid", {"sub"}, id="openid alone releases only sub"),
        pytest.param("openid profile", {"sub", "preferred_username", "name"}, id="profile adds the username"),
        pytest.param("openid email", {"sub", "email", "email_verified"}, id="email adds the address"),
    ],
)
def test_userinfo_releases_claims_by_scope(
    op: OpenIdProvider, clients: Clients, member: Member, scope: str, released: set[str]
) -> None:
    _, tokens = tokens_from_session(op, member.browser, clients.confidential, scope=scope)

    userinfo = op.userinfo(tokens["access_token"])

    assert userinfo.status_code == 200
    assert set(userinfo.json()) == released
    assert userinfo.json()["sub"] == member.sub


# -- second factor codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wrong_code",
    [
        pytest.param(
            lambda used, _authenticator: used,
            id="fails because the code already completed a sign-in in its time step",
        ),
        pytest.param(
            lambda _used, authenticator: authenticator.totp.at(time.time() - 600),
            id="fails because the code belongs to a step ten minutes ago",
        ),
        pytest.param(lambda _used, _authenticator: "12345", id="fails because a code has six digits"),
    ],
)
def test_a_refused_second_factor_issues_no_code(
    live: LiveProvider, op: OpenIdProvider, clients: Clients, wrong_code: Any
) -> None:
    account = create_account(live, "replayer")
    first = Browser(op)
    attempt = first.authorize(clients.confidential)
    enrolment = first.submit(attempt.page, username=account.username, password=account.password)
    authenticator = Authenticator(enrolment_secret(enrolment))
    used = authenticator.next_code()
    attempt.callback(first.save_recovery_codes(first.submit(enrolment, code=used)))

    second = Browser(op)
    attempt = second.authorize(clients.confidential)
    factor = second.submit(attempt.page, username=account.username, password=account.password)
    assert is_factor_page(factor)
    code = wrong_code(used, authenticator)
    refusal = second.submit(factor, code=code)

    assert refusal.status_code == 401 and is_factor_page(refusal)
    assert not second.went_to(clients.confidential.redirect_uri)
    if code == used:
        assert authenticator.is_timely(used), "the replay is refused as used, not as stale"
    attempt.callback(second.submit(refusal, code=authenticator.next_code()))  # a fresh code still works


# -- tokens: refresh, introspection, revocation, code replay -----------------------------------------


def test_refresh_rotates_and_reusing_a_rotated_token_revokes_the_whole_family(
    op: OpenIdProvider, clients: Clients, member: Member
) -> None:
    client = clients.confidential
    _, tokens = tokens_from_session(op, member.browser, client)

    rotated = op.refresh(client, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()
    assert fresh["refresh_token"] != tokens["refresh_token"]
    introspected = op.introspect(fresh["access_token"], resource_server=client)
    assert introspected["active"] is True and introspected["acr"] == "mfa"
    assert set(introspected["amr"]) == MFA_AMR

    assert refused(op.refresh(client, tokens["refresh_token"]), 400, "invalid_grant"), (
        "the old token is spent"
    )
    assert refused(op.refresh(client, fresh["refresh_token"]), 400, "invalid_grant"), (
        "reuse revoked the family"
    )
    for token in (fresh["access_token"], tokens["access_token"], fresh["refresh_token"]):
        assert op.introspect(token, resource_server=client) == {"active": False}


def test_introspection_tells_a_resource_server_how_the_user_authenticated(
    op: OpenIdProvider, clients: Clients, member: Member
) -> None:
    client = clients.confidential
    attempt, tokens = tokens_from_session(op, member.browser, client)
    id_token = op.verify_id_token(
        tokens["id_token"], expected_audience=client.client_id, expected_nonce=attempt.nonce
    )

    found = op.introspect(tokens["access_token"], resource_server=client)

    assert found["active"] is True
    assert found["acr"] == "mfa" and set(found["amr"]) == MFA_AMR
    assert found["auth_time"] == id_token["auth_time"]
    assert found["client_id"] == client.client_id and found["sub"] == member.sub
    assert found["scope"] == "openid profile"
    assert found["iat"] <= time.time() < found["exp"]
    assert op.introspect(tokens["refresh_token"], resource_server=client)["active"] is True


@pytest.mark.parametrize(
    ("owner", "revoker", "revoked"),
    [
        pytest.param(
            "confidential", "confidential", True, id="its confidential client revokes it with HTTP Basic"
        ),
        pytest.param(
            "public", "public", True, id="its public client revokes it by client_id alone (RFC 7009 2.1)"
        ),
        pytest.param("confidential", "es256", False, id="fails because another client cannot revoke it"),
    ],
)
def test_revoking_a_refresh_token_ends_its_grant_only_for_the_client_it_was_issued_to(
    op: OpenIdProvider, clients: Clients, member: Member, owner: str, revoker: str, revoked: bool
) -> None:
    _, tokens = tokens_from_session(op, member.browser, getattr(clients, owner))

    response = op.revoke(tokens["refresh_token"], client=getattr(clients, revoker), hint="refresh_token")

    assert response.status_code == 200 or not revoked, response.text
    assert (op.userinfo(tokens["access_token"]).status_code == 401) is revoked
    refreshed = op.refresh(getattr(clients, owner), tokens["refresh_token"])
    assert refused(refreshed, 400, "invalid_grant") is revoked, refreshed.text


def test_a_replayed_authorization_code_is_refused_and_revokes_what_it_issued(
    op: OpenIdProvider, clients: Clients, member: Member
) -> None:
    client = clients.confidential
    attempt = member.browser.authorize(client)
    code = attempt.callback(attempt.page)["code"]
    first = op.exchange(attempt, code)
    assert first.status_code == 200, first.text

    assert refused(op.exchange(attempt, code), 400, "invalid_grant")

    for token in (first.json()["access_token"], first.json()["refresh_token"]):
        assert op.introspect(token, resource_server=client) == {"active": False}


# -- protocol rules -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizationRefusal:
    client: str
    params: dict[str, str | None] = field(default_factory=dict)
    error: str | None = None  # None: an error page here, never a redirect


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            AuthorizationRefusal("confidential", {"redirect_uri": UNREGISTERED_URI}),
            id="fails on a page because the redirect_uri is not registered",
        ),
        pytest.param(
            AuthorizationRefusal(
                "confidential", {"redirect_uri": UNREGISTERED_URI, "response_type": "token"}
            ),
            id="fails on a page because an unregistered redirect_uri never gets even an error",
        ),
        pytest.param(
            AuthorizationRefusal(
                "public", {"code_challenge": None, "code_challenge_method": None}, error="invalid_request"
            ),
            id="fails because a public client sent no PKCE challenge",
        ),
        pytest.param(
            AuthorizationRefusal("public", {"code_challenge_method": "plain"}, error="invalid_request"),
            id="fails because the plain PKCE method is not accepted",
        ),
        pytest.param(
            AuthorizationRefusal(
                "confidential", {"response_type": "token"}, error="unsupported_response_type"
            ),
            id="fails because only the code flow is offered",
        ),
        pytest.param(
            AuthorizationRefusal("confidential", {"prompt": "none"}, error="login_required"),
            id="fails because prompt=none finds no session",
        ),
    ],
)
def test_an_authorization_request_is_refused(
    op: OpenIdProvider, clients: Clients, case: AuthorizationRefusal
) -> None:
    client: Client = getattr(clients, case.client)
    browser = Browser(op)

    attempt = browser.authorize(client, **case.params)

    if case.error is None:
        assert attempt.page.status_code == 400 and "Location" not in attempt.page.headers
        assert not browser.went_to(UNREGISTERED_URI) and not browser.went_to(client.redirect_uri)
        return
    callback = attempt.callback(attempt.page)
    assert "code" not in callback
    assert callback["error"] == case.error
    assert callback["state"] == attempt.state and callback["iss"] == op.issuer


@dataclass(frozen=True)
class TokenRefusal:
    presenter: str
    secret: str | None = None
    form: dict[str, str | None] = field(default_factory=dict)  # None leaves the parameter out
    status: int = 400
    error: str = "invalid_grant"


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            TokenRefusal("confidential", form={"code_verifier": Pkce.new().verifier}),
            id="fails because the code_verifier does not match the challenge",
        ),
        pytest.param(
            TokenRefusal("confidential", form={"code_verifier": None}, error="invalid_request"),
            id="fails because a code bound to a challenge needs its code_verifier",
        ),
        pytest.param(
            TokenRefusal("confidential", form={"redirect_uri": "http://127.0.0.1/es256/callback"}),
            id="fails because the redirect_uri differs from the authorization request's",
        ),
        pytest.param(TokenRefusal("es256"), id="fails because the code was issued to another client"),
        pytest.param(
            TokenRefusal("confidential", secret="not-the-secret", status=401, error="invalid_client"),
            id="fails because the client secret is wrong",
        ),
    ],
)
def test_a_token_request_is_refused(
    op: OpenIdProvider, clients: Clients, member: Member, case: TokenRefusal
) -> None:
    attempt = member.browser.authorize(clients.confidential)
    code = attempt.callback(attempt.page)["code"]
    presenter: Client = getattr(clients, case.presenter)
    if case.secret is not None:
        presenter = presenter.with_secret(case.secret)
    assert attempt.pkce is not None
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": clients.confidential.redirect_uri,
        "code_verifier": attempt.pkce.verifier,
        **case.form,
    }

    response = op.token(presenter, **{name: value for name, value in form.items() if value is not None})

    assert refused(response, case.status, case.error), response.text
    assert "access_token" not in response.json()


def test_form_post_answers_with_a_page_that_posts_code_state_and_iss_to_the_redirect_uri(
    op: OpenIdProvider, clients: Clients, member: Member
) -> None:
    client = clients.confidential

    attempt = member.browser.authorize(client, response_mode="form_post")

    assert attempt.page.status_code == 200 and attempt.page.headers["Content-Type"].startswith("text/html")
    [(action, fields)] = forms_of(attempt.page)
    assert action == client.redirect_uri
    assert set(fields) == {"code", "state", "iss"}
    assert fields["state"] == attempt.state and fields["iss"] == op.issuer
    assert exchanged(op, attempt, fields)["id_token"]


# -- re-authentication -------------------------------------------------------------------------------


def test_prompt_login_asks_for_the_password_again_despite_a_session(
    op: OpenIdProvider, clients: Clients, member: Member
) -> None:
    asked_at = int(time.time())

    attempt = member.browser.authorize(clients.confidential, prompt="login")

    assert is_password_page(attempt.page)
    factor = member.browser.submit(
        attempt.page, username=member.account.username, password=member.account.password
    )
    assert is_factor_page(factor), "a forced login proves both factors again"
    assert member.account.authenticator is not None
    callback = attempt.callback(member.browser.submit(factor, code=member.account.authenticator.next_code()))
    claims = op.verify_id_token(
        exchanged(op, attempt, callback)["id_token"],
        expected_audience=clients.confidential.client_id,
        expected_nonce=attempt.nonce,
    )
    assert claims["auth_time"] >= asked_at and claims["sub"] == member.sub


def test_max_age_zero_asks_for_the_second_factor_again_but_not_the_password(
    op: OpenIdProvider, clients: Clients, member: Member
) -> None:
    asked_at = int(time.time())

    attempt = member.browser.authorize(clients.confidential, max_age="0")

    assert is_factor_page(attempt.page) and not is_password_page(attempt.page)
    assert member.account.authenticator is not None
    callback = attempt.callback(
        member.browser.submit(attempt.page, code=member.account.authenticator.next_code())
    )
    claims = op.verify_id_token(
        exchanged(op, attempt, callback)["id_token"],
        expected_audience=clients.confidential.client_id,
        expected_nonce=attempt.nonce,
    )
    assert claims["auth_time"] >= asked_at
    assert set(claims["amr"]) == MFA_AMR


# -- signing, machines, accounts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("client_name", "alg", "kty"),
    [
        pytest.param("confidential", "RS256", "RSA", id="RS256 by default"),
        pytest.param("es256", "ES256", "EC", id="ES256 when the client registered it"),
    ],
)
def test_id_tokens_are_signed_with_the_clients_algorithm_by_a_published_key(
    op: OpenIdProvider, clients: Clients, member: Member, client_name: str, alg: str, kty: str
) -> None:
    client: Client = getattr(clients, client_name)

    attempt, tokens = tokens_from_session(op, member.browser, client)

    header = jwt.get_unverified_header(tokens["id_token"])
    assert header["alg"] == alg
    published = op.signing_key(header["kid"])
    assert published.key_type == kty and published.algorithm_name == alg
    claims = op.verify_id_token(
        tokens["id_token"], expected_audience=client.client_id, expected_nonce=attempt.nonce
    )
    assert claims["sub"] == member.sub


def test_client_credentials_give_a_machine_an_access_token_without_any_user(
    op: OpenIdProvider, clients: Clients
) -> None:
    machine = clients.machine

    response = op.token(machine, grant_type="client_credentials")

    assert response.status_code == 200, response.text
    tokens = response.json()
    assert "refresh_token" not in tokens and "id_token" not in tokens
    found = op.introspect(tokens["access_token"], resource_server=machine)
    assert found["active"] is True and found["client_id"] == machine.client_id
    assert not {"acr", "amr", "auth_time", "sid"} & set(found)
    assert op.userinfo(tokens["access_token"]).status_code == 401, "no user behind the token"
    assert refused(
        op.token(clients.confidential, grant_type="client_credentials"), 400, "unauthorized_client"
    )


@dataclass
class Leaver:
    """A user who signed in, took grants and an unredeemed code, and was then disabled with the CLI."""

    account: Account
    browser: Browser
    grants: Iterator[dict[str, Any]]
    pending_code: tuple[Attempt, str]


@pytest.fixture(scope="module")
def leaver(live: LiveProvider, op: OpenIdProvider, clients: Clients) -> Leaver:
    client = clients.confidential
    account = create_account(live, "leaver")
    browser = Browser(op)
    attempt, callback = browser.sign_in(client, account)
    grants = [exchanged(op, attempt, callback)] + [
        tokens_from_session(op, browser, client)[1] for _ in range(3)
    ]
    unredeemed = browser.authorize(client)
    pending_code = (unredeemed, unredeemed.callback(unredeemed.page)["code"])
    disabled = live.idp("users", "disable", account.username)
    assert disabled.returncode == 0, disabled.stderr
    return Leaver(account, browser, iter(grants), pending_code)


def test_a_disabled_user_loses_their_session_and_cannot_sign_in_again(
    op: OpenIdProvider, clients: Clients, leaver: Leaver
) -> None:
    client = clients.confidential

    attempt = leaver.browser.authorize(client)

    assert is_password_page(attempt.page), "disabling ended the session: nobody is signed in there"
    stranger = Browser(op)
    attempt = stranger.authorize(client)
    refusal = stranger.submit(
        attempt.page, username=leaver.account.username, password=leaver.account.password
    )
    assert refusal.status_code == 401 and is_password_page(refusal)
    assert not stranger.went_to(client.redirect_uri)
    wrong = stranger.submit(refusal, username=leaver.account.username, password=leaver.account.password + "x")
    assert wrong.status_code == 401 and is_password_page(wrong)
    assert alert(refusal) == alert(wrong), "a disabled account is refused like a wrong password"


def introspect_access_token(op: OpenIdProvider, client: Client, tokens: dict[str, Any]) -> object:
    return op.introspect(tokens["access_token"], resource_server=client)


def introspect_refresh_token(op: OpenIdProvider, client: Client, tokens: dict[str, Any]) -> object:
    return op.introspect(tokens["refresh_token"], resource_server=client)


def call_userinfo(op: OpenIdProvider, _client: Client, tokens: dict[str, Any]) -> object:
    return op.userinfo(tokens["access_token"]).status_code


def refresh_the_grant(op: OpenIdProvider, client: Client, tokens: dict[str, Any]) -> object:
    response = op.refresh(client, tokens["refresh_token"])
    return response.status_code, response.json().get("error")


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        pytest.param(
            introspect_access_token, {"active": False}, id="introspection calls the access token inactive"
        ),
        pytest.param(
            introspect_refresh_token, {"active": False}, id="introspection calls the refresh token inactive"
        ),
        pytest.param(call_userinfo, 401, id="userinfo refuses the access token"),
        pytest.param(refresh_the_grant, (400, "invalid_grant"), id="refreshing fails as an invalid grant"),
    ],
)
def test_a_disabled_users_tokens_stop_working(
    op: OpenIdProvider, clients: Clients, leaver: Leaver, probe: Any, expected: object
) -> None:
    assert probe(op, clients.confidential, next(leaver.grants)) == expected


def test_a_code_issued_before_the_user_was_disabled_is_refused(op: OpenIdProvider, leaver: Leaver) -> None:
    attempt, code = leaver.pending_code

    assert refused(op.exchange(attempt, code), 400, "invalid_grant")


def test_reset_mfa_makes_the_user_enrol_again_at_the_next_sign_in(
    live: LiveProvider, op: OpenIdProvider, clients: Clients
) -> None:
    client = clients.confidential
    account = create_account(live, "phone-lost")
    Browser(op).sign_in(client, account)
    assert account.authenticator is not None
    lost = account.authenticator.secret

    reset = live.idp("users", "reset-mfa", account.username)

    assert reset.returncode == 0, reset.stderr
    browser = Browser(op)
    attempt = browser.authorize(client)
    enrolment = browser.submit(attempt.page, username=account.username, password=account.password)
    assert is_enrolment_page(enrolment) and enrolment_secret(enrolment) != lost
    assert not browser.went_to(client.redirect_uri)
    codes = browser.submit(enrolment, code=Authenticator(enrolment_secret(enrolment)).next_code())
    callback = attempt.callback(browser.save_recovery_codes(codes))  # the lost ones went with the reset
    claims = op.verify_id_token(
        exchanged(op, attempt, callback)["id_token"],
        expected_audience=client.client_id,
        expected_nonce=attempt.nonce,
    )
    assert set(claims["amr"]) == MFA_AMR


# -- logout --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        pytest.param(
            {"post_logout_redirect_uri": UNREGISTERED_URI},
            id="fails because the post_logout_redirect_uri is not registered",
        ),
        pytest.param(
            {"post_logout_redirect_uri": Clients.signed_out_uri, "client_id": "someone-else"},
            id="fails because client_id is not the ID token's audience",
        ),
    ],
)
def test_logout_is_refused_on_a_page_and_the_session_survives(
    op: OpenIdProvider, clients: Clients, member: Member, params: dict[str, str]
) -> None:
    response = member.browser.http.get(
        op.endpoint("end_session"),
        params={"id_token_hint": member.id_token, "state": "s1", **params},
        allow_redirects=False,
        timeout=10,
    )

    assert response.status_code == 400 and "Location" not in response.headers
    attempt = member.browser.authorize(clients.confidential, prompt="none")
    assert "code" in attempt.callback(attempt.page), "a refused logout ends nothing"


def test_logout_returns_to_the_registered_address_with_state_and_ends_the_session(
    live: LiveProvider, op: OpenIdProvider, clients: Clients
) -> None:
    client = clients.confidential
    account = create_account(live, "leaving")
    browser = Browser(op)
    attempt, callback = browser.sign_in(client, account)
    id_token = exchanged(op, attempt, callback)["id_token"]
    state = secrets.token_urlsafe(8)

    response = browser.http.get(
        op.endpoint("end_session"),
        params={
            "id_token_hint": id_token,
            "post_logout_redirect_uri": clients.signed_out_uri,
            "state": state,
        },
        allow_redirects=False,
        timeout=10,
    )

    assert response.status_code == 302
    assert response.headers["Location"] == f"{clients.signed_out_uri}?state={state}"
    attempt = browser.authorize(client, prompt="none")
    after = attempt.callback(attempt.page)
    assert (
        after["error"] == "login_required" and after["state"] == attempt.state and after["iss"] == op.issuer
    )
