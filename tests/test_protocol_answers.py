"""End to end: how a real provider answers a relying party built on Authlib's requests client.

Errors are described in sentences for people (RFC 6749 5.2 error_description), never in authlib's
wording or a Python repr; refusals outside any view (an unknown path, a body too large, a failed
CSRF check) get the provider's page or the endpoint's JSON error, never the framework's page; the
userinfo endpoint takes the bearer token from the header or a form body (RFC 6750 2.1, 2.2) and
challenges a request without one plainly (3.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuthError
from support.authlib_rp import AuthlibRelyingParty
from support.live import LiveProvider, provider_on_real_stores
from support.oidc_client import (
    TIMEOUT,
    Account,
    Browser,
    Client,
    OpenIdProvider,
    create_account,
    forms_of,
    location,
)
from support.oidc_client import (
    register_client as register,
)

# What people can read: a capital letter first, a full stop last, nothing that reads like code
# (quotes, brackets, key=value) in between.
SENTENCE = re.compile(r"[A-Z][^\[\]{}'\"<>=\\]*\.")
OVER_THE_LIMIT = "x" * (65 * 1024)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    with provider_on_real_stores(tmp_path_factory.mktemp("answers"), database_prefix="idp_answers_") as live:
        yield live


@dataclass(frozen=True)
class Clients:
    web: Client  # authorization code and refresh token
    public: Client
    machine: Client  # client credentials only


@pytest.fixture(scope="module")
def clients(live: LiveProvider) -> Clients:
    return Clients(
        web=register(live, "web"),
        public=register(live, "public", "--public"),
        machine=register(live, "machine", "--grant-type", "client_credentials", redirect=False),
    )


@dataclass(frozen=True)
class SignedIn:
    """A user signed in through the hosted pages, and the tokens Authlib fetched for the web client."""

    account: Account
    browser: Browser
    tokens: dict[str, Any]


@pytest.fixture(scope="module")
def signed_in(live: LiveProvider, op: OpenIdProvider, clients: Clients) -> SignedIn:
    account = create_account(live, "reader")
    browser = Browser(op)
    rp = AuthlibRelyingParty.of(op, clients.web)
    request = rp.authorization_url()
    answer = browser.pass_sign_in(browser.visit(request.url), account)
    return SignedIn(account, browser, rp.redeem(request, answer))


def refused_by_authlib(call: Any) -> OAuthError:
    """The OAuthError Authlib raises from an error response (it reads error and error_description)."""
    with pytest.raises(OAuthError) as raised:
        call()
    return raised.value


def is_provider_page(page: requests.Response, *, status: int, title: str) -> bool:
    """The provider's own styled page (its stylesheet, its title, one sentence), not the framework's."""
    message = re.search(r'<p role="alert">([^<]*)</p>', page.text)
    return (
        page.status_code == status
        and page.headers["Content-Type"].startswith("text/html")
        and '<link rel="stylesheet" href="/static/idp.css">' in page.text
        and f"<h1>{title}</h1>" in page.text
        and message is not None
        and SENTENCE.fullmatch(message.group(1)) is not None
    )


# -- 13. error descriptions are sentences, mapped from authlib's wording in one place ------------------


def test_a_failed_client_authentication_is_described_in_a_sentence(
    op: OpenIdProvider, clients: Clients
) -> None:
    rp = AuthlibRelyingParty.of(op, clients.machine.with_secret("not-the-secret"))

    error = refused_by_authlib(lambda: rp.session.fetch_token(grant_type="client_credentials"))

    assert error.error == "invalid_client"
    assert error.description == "The client could not be authenticated."


@dataclass(frozen=True)
class TokenRefusal:
    form: dict[str, str]
    error: str
    description: str
    client: str = "web"


TOKEN_REFUSALS = [
    pytest.param(
        TokenRefusal(
            {"grant_type": "authorization_code", "code": "forged"},
            "invalid_grant",
            "The authorization code is invalid, expired or already used.",
        ),
        id="fails because the code was never issued (authlib: Invalid 'code' in request.)",
    ),
    pytest.param(
        TokenRefusal({"grant_type": "refresh_token"}, "invalid_request", "The request has no refresh token."),
        id="fails because there is no refresh token (authlib: Missing 'refresh_token' in request.)",
    ),
    pytest.param(
        TokenRefusal(
            {"grant_type": "refresh_token", "refresh_token": "forged"},
            "invalid_grant",
            "The grant is invalid, expired or revoked, or was issued to another client.",
        ),
        id="fails because the refresh token was never issued (authlib: no description)",
    ),
    pytest.param(
        TokenRefusal(
            {"grant_type": "password", "username": "u", "password": "p"},
            "unsupported_grant_type",
            "The grant type is not supported.",
        ),
        id="fails because the grant type is unknown (authlib: no description)",
    ),
    pytest.param(
        TokenRefusal(
            {"grant_type": "client_credentials"},
            "unauthorized_client",
            "The client may not use this grant type.",
        ),
        id="fails because the client is not registered for it (authlib: 'grant_type=client_credentials')",
    ),
    pytest.param(
        TokenRefusal(
            {"grant_type": "authorization_code", "code": "forged"},
            "invalid_grant",
            "The authorization code is invalid, expired or already used.",
            client="public",
        ),
        id="fails because a public client's code was never issued",
    ),
]


@pytest.mark.parametrize("case", TOKEN_REFUSALS)
def test_token_endpoint_refusals_are_described_in_sentences(
    op: OpenIdProvider, clients: Clients, case: TokenRefusal
) -> None:
    rp = AuthlibRelyingParty.of(op, getattr(clients, case.client))

    error = refused_by_authlib(lambda: rp.session.fetch_token(**case.form))

    assert (error.error, error.description) == (case.error, case.description)


def test_introspection_and_revocation_refusals_are_described_in_sentences(
    op: OpenIdProvider, clients: Clients
) -> None:
    rp = AuthlibRelyingParty.of(op, clients.web)
    basic = (clients.web.client_id, clients.web.secret)
    answers = {
        "introspection without a token": rp.session.post(op.endpoint("introspection"), data={}, auth=basic),
        "introspection with an unknown hint": rp.session.introspect_token(
            op.endpoint("introspection"), token="t", token_type_hint="id_token"
        ),
        "revocation without a token": rp.session.post(op.endpoint("revocation"), data={}, auth=basic),
        "revocation with an unknown hint": rp.session.revoke_token(
            op.endpoint("revocation"), token="t", token_type_hint="id_token"
        ),
    }

    described = {name: response.json() for name, response in answers.items()}
    assert {name: body["error"] for name, body in described.items()} == {
        "introspection without a token": "invalid_request",
        "introspection with an unknown hint": "unsupported_token_type",
        "revocation without a token": "invalid_request",
        "revocation with an unknown hint": "unsupported_token_type",
    }
    assert all(SENTENCE.fullmatch(body.get("error_description", "")) for body in described.values()), (
        described
    )


@dataclass(frozen=True)
class AuthorizeRefusal:
    params: dict[str, str]
    description: str
    client: str = "web"
    pkce: bool = True


AUTHORIZE_REFUSALS_AT_THE_CLIENT = [
    pytest.param(
        AuthorizeRefusal({"response_type": "token"}, "Only the code response type is supported."),
        id="fails because the response type is token (authlib: The response type 'token' is not supported)",
    ),
    pytest.param(
        AuthorizeRefusal({}, "Public clients must use PKCE with S256.", client="public", pkce=False),
        id="fails because a public client sends no PKCE challenge",
    ),
    pytest.param(
        AuthorizeRefusal({"max_age": "soon"}, "The max_age parameter must be a whole number of seconds."),
        id="fails because max_age is not a number",
    ),
    pytest.param(
        AuthorizeRefusal(
            {"claims": '{"id_token": {"acr": {"essential": true, "values": ["gold"]}}}'},
            "None of the essential acr values is offered here.",
        ),
        id="fails because no essential acr value is offered (it printed a Python list)",
    ),
]


@pytest.mark.parametrize("case", AUTHORIZE_REFUSALS_AT_THE_CLIENT)
def test_authorization_refusals_sent_to_the_client_are_described_in_sentences(
    op: OpenIdProvider, clients: Clients, case: AuthorizeRefusal
) -> None:
    client = getattr(clients, case.client)
    rp = AuthlibRelyingParty.of(op, client, code_challenge_method="S256" if case.pkce else None)
    request = rp.authorization_url(**case.params)

    answer = Browser(op).visit(request.url)

    target = location(answer) or ""
    assert target.startswith(client.redirect_uri), answer.text
    assert dict(parse_qsl(urlsplit(target).query))["error_description"] == case.description


AUTHORIZE_REFUSALS_SHOWN_HERE = [
    pytest.param(
        None,
        {"redirect_uri": "http://127.0.0.1/elsewhere/callback"},
        "The redirect URI is not registered for this client.",
        id="fails because the redirect URI is not registered (authlib repeated the URI)",
    ),
    pytest.param(
        "no-such-client",
        {},
        "No client is registered with this client_id.",
        id="fails because the client is unknown",
    ),
]


@pytest.mark.parametrize(("client_id", "params", "description"), AUTHORIZE_REFUSALS_SHOWN_HERE)
def test_authorization_refusals_shown_to_the_user_are_described_in_sentences(
    op: OpenIdProvider, clients: Clients, client_id: str | None, params: dict[str, str], description: str
) -> None:
    client = Client(client_id or clients.web.client_id, clients.web.redirect_uri)
    request = AuthlibRelyingParty.of(op, client).authorization_url(**params)

    page = Browser(op).visit(request.url)

    assert is_provider_page(page, status=400, title="This sign-in link is not valid")
    assert f'<p class="hint" lang="en">{description}</p>' in page.text, "for the app's developer, in English"


# -- 13. refusals outside any view: the provider's page, or the endpoint's JSON error -----------------


def test_an_unknown_path_gets_the_providers_page(op: OpenIdProvider) -> None:
    page = requests.get(f"{op.issuer}/no-such-page", timeout=TIMEOUT)

    assert is_provider_page(page, status=404, title="Page not found")


def test_a_body_too_large_for_the_token_endpoint_is_an_oauth_error(
    op: OpenIdProvider, clients: Clients
) -> None:
    rp = AuthlibRelyingParty.of(op, clients.machine)

    error = refused_by_authlib(
        lambda: rp.session.fetch_token(grant_type="client_credentials", pad=OVER_THE_LIMIT)
    )

    assert error.error == "invalid_request"
    assert error.description == "The request is larger than the provider accepts."


def test_a_body_too_large_for_the_userinfo_endpoint_is_an_oauth_error(op: OpenIdProvider) -> None:
    response = requests.post(op.endpoint("userinfo"), data={"pad": OVER_THE_LIMIT}, timeout=TIMEOUT)

    assert response.status_code == 413
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The request is larger than the provider accepts.",
    }


def test_a_body_too_large_for_a_page_gets_the_providers_page(op: OpenIdProvider, clients: Clients) -> None:
    browser = Browser(op)
    page = browser.visit(AuthlibRelyingParty.of(op, clients.web).authorization_url().url)
    action, fields = forms_of(page)[0]

    answer = browser.http.post(action, data={**fields, "password": OVER_THE_LIMIT}, timeout=TIMEOUT)

    assert is_provider_page(answer, status=413, title="Request too large")


def test_the_token_endpoint_answers_a_get_with_an_oauth_error(op: OpenIdProvider) -> None:
    response = requests.get(op.endpoint("token"), timeout=TIMEOUT)

    assert response.status_code == 405 and "POST" in response.headers["Allow"]
    assert response.json()["error"] == "invalid_request"
    assert SENTENCE.fullmatch(response.json()["error_description"])


def test_a_form_posted_without_its_csrf_token_gets_the_providers_page(
    op: OpenIdProvider, clients: Clients
) -> None:
    browser = Browser(op)
    page = browser.visit(AuthlibRelyingParty.of(op, clients.web).authorization_url().url)
    action, fields = forms_of(page)[0]

    forged = browser.http.post(action, data={**fields, "csrf_token": "forged"}, timeout=TIMEOUT)

    assert is_provider_page(forged, status=400, title="This form has expired")


def test_a_passkey_request_without_its_csrf_token_gets_a_json_error(
    op: OpenIdProvider, clients: Clients
) -> None:
    browser = Browser(op)
    page = browser.visit(AuthlibRelyingParty.of(op, clients.web).authorization_url().url)

    forged = browser.http.post(f"{page.url}/passkey/options", json={}, timeout=TIMEOUT)

    assert forged.status_code == 400 and forged.headers["Content-Type"] == "application/json"
    assert SENTENCE.fullmatch(forged.json()["error"])


# -- 10. userinfo: the bearer token in the header or a form body, a plain challenge without one ---------


def test_userinfo_accepts_the_access_token_in_a_form_body(
    op: OpenIdProvider, clients: Clients, signed_in: SignedIn
) -> None:
    """RFC 6750 2.2, as pyoidc sends it by default: POST, application/x-www-form-urlencoded, access_token."""
    rp = AuthlibRelyingParty.of(op, clients.web, token=signed_in.tokens, token_placement="body")

    answer = rp.session.post(op.endpoint("userinfo"), headers=FORM)

    assert answer.status_code == 200, answer.text
    assert answer.json()["preferred_username"] == signed_in.account.username


def test_userinfo_accepts_the_access_token_in_the_header(
    op: OpenIdProvider, clients: Clients, signed_in: SignedIn
) -> None:
    rp = AuthlibRelyingParty.of(op, clients.web, token=signed_in.tokens)

    answer = rp.session.get(op.endpoint("userinfo"))

    assert answer.status_code == 200 and answer.json()["preferred_username"] == signed_in.account.username


@pytest.mark.parametrize(
    "request_args",
    [
        pytest.param({"method": "GET"}, id="a GET without any token"),
        pytest.param(
            {"method": "POST", "headers": FORM, "data": "scope=openid"}, id="a form without a token"
        ),
        pytest.param({"method": "GET", "headers": {"Authorization": "Basic dXNlcjpwYXNz"}}, id="Basic only"),
    ],
)
def test_userinfo_without_a_token_is_challenged_without_an_error_code(
    op: OpenIdProvider, clients: Clients, request_args: dict[str, Any]
) -> None:
    """RFC 6750 3.1: a request without authentication gets the challenge, and no error code."""
    rp = AuthlibRelyingParty.of(op, clients.web)

    answer = rp.session.request(url=op.endpoint("userinfo"), withhold_token=True, **request_args)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert "error" not in answer.text


def test_userinfo_refuses_a_token_sent_two_ways(op: OpenIdProvider, signed_in: SignedIn) -> None:
    """RFC 6750 3.1: more than one method of sending the token is invalid_request."""
    token = signed_in.tokens["access_token"]

    answer = requests.post(
        op.endpoint("userinfo"),
        data={"access_token": token},
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )

    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_request"
    assert answer.headers["WWW-Authenticate"].startswith('Bearer error="invalid_request"')


def test_userinfo_refuses_a_forged_token_in_a_form_body(op: OpenIdProvider, clients: Clients) -> None:
    rp = AuthlibRelyingParty.of(
        op, clients.web, token={"access_token": "forged", "token_type": "Bearer"}, token_placement="body"
    )

    answer = rp.session.post(op.endpoint("userinfo"), headers=FORM)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
