"""Pushed authorization requests (RFC 9126) end to end: Authlib's client pushes its request to a live
provider on PostgreSQL and Redis (authenticated by its secret, or by private_key_jwt with a signed
request object inside), and the browser carries only the request_uri. Then the attacker's moves: a used
request_uri, another client's, two browsers racing for one, a client that must push sending its request
in the query, and pushes that are not allowed; last, the server-wide requirement from the config.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import redis
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from support.app import REDIRECT_URI, add_client, make_app
from support.client_jwts import ClientKey, request_object_claims
from support.live import E2E_REDIS_URL, LiveProvider, provider_on_real_stores
from support.oidc_client import (
    Browser,
    Client,
    OpenIdProvider,
    create_account,
    is_password_page,
    location,
    register_client,
)

MFA_AMR = {"pwd", "otp", "mfa"}
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    with provider_on_real_stores(tmp_path_factory.mktemp("par"), database_prefix="idp_par_") as provider:
        yield provider


@dataclass(frozen=True)
class Clients:
    app: Client  # a confidential client with a secret
    other: Client  # another one
    must_push: Client  # registered with --require-par
    signer: Client  # private_key_jwt, signing its request objects with `key`
    key: ClientKey


@pytest.fixture(scope="module")
def clients(live: LiveProvider, tmp_path_factory: pytest.TempPathFactory) -> Clients:
    key = ClientKey.generate("ES256")
    jwks = key.write_jwks(tmp_path_factory.mktemp("keys"))
    keyed = ("--token-endpoint-auth-method", "private_key_jwt", "--jwks-file", str(jwks))
    return Clients(
        app=register_client(live, "app"),
        other=register_client(live, "other"),
        must_push=register_client(live, "must-push", "--require-par"),
        signer=register_client(live, "signer", *keyed, "--require-par"),
        key=key,
    )


@dataclass(frozen=True)
class Pushed:
    """What the client pushed and what the provider answered."""

    request_uri: str
    expires_in: int
    state: str
    nonce: str
    verifier: str


def authorization_params(client: Client) -> dict[str, str]:
    verifier = generate_token(48)
    return {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": client.redirect_uri,
        "scope": "openid profile",
        "state": generate_token(12),
        "nonce": generate_token(12),
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
        "verifier": verifier,
    }


def secret_session(client: Client) -> OAuth2Session:
    return OAuth2Session(client.client_id, client.secret, redirect_uri=client.redirect_uri, scope="openid")


def push(op: OpenIdProvider, session: OAuth2Session, params: dict[str, str]) -> requests.Response:
    """Authlib's client posts the request to the PAR endpoint, authenticated as for the token endpoint."""
    return session.post(
        op.metadata["pushed_authorization_request_endpoint"],
        data=params,
        auth=session.client_auth(session.token_endpoint_auth_method),
        withhold_token=True,
    )


def pushed(op: OpenIdProvider, client: Client) -> Pushed:
    params = authorization_params(client)
    verifier = params.pop("verifier")
    response = push(op, secret_session(client), params)
    assert response.status_code == 201, response.text
    assert response.headers["Cache-Control"] == "no-store"
    answer = response.json()
    return Pushed(answer["request_uri"], answer["expires_in"], params["state"], params["nonce"], verifier)


def visit(
    op: OpenIdProvider, client: Client, request_uri: str, browser: Browser | None = None
) -> requests.Response:
    """The browser arrives with nothing but the client's id and the reference (RFC 9126 4)."""
    query = urlencode({"client_id": client.client_id, "request_uri": request_uri})
    return (browser or Browser(op)).visit(f"{op.metadata['authorization_endpoint']}?{query}")


def client_error(response: requests.Response, client: Client) -> dict[str, str]:
    target = location(response) if response.is_redirect else None
    assert target is not None and target.startswith(client.redirect_uri + "?"), response.text[:300]
    answer = dict(parse_qsl(urlsplit(target).query))
    assert "code" not in answer
    return answer


# -- the relying party's way ------------------------------------------------------------------------------


def test_discovery_advertises_the_par_endpoint_not_required_by_default(op: OpenIdProvider) -> None:
    assert op.metadata["pushed_authorization_request_endpoint"] == f"{op.issuer}/par"
    assert op.metadata["require_pushed_authorization_requests"] is False


def test_authlib_pushes_a_request_and_the_browser_carries_only_its_reference(
    live: LiveProvider, op: OpenIdProvider, clients: Clients
) -> None:
    request = pushed(op, clients.app)
    assert request.request_uri.startswith(REQUEST_URI_PREFIX) and request.expires_in == 60
    browser = Browser(op)

    leaving = browser.pass_sign_in(
        visit(op, clients.app, request.request_uri, browser), create_account(live, "par")
    )

    session = secret_session(clients.app)
    tokens = session.fetch_token(
        op.endpoint("token"),
        authorization_response=location(leaving),
        code_verifier=request.verifier,
        state=request.state,
    )
    id_token = op.verify_id_token(
        tokens["id_token"], expected_audience=clients.app.client_id, expected_nonce=request.nonce
    )
    assert set(id_token["amr"]) == MFA_AMR and set(tokens["scope"].split()) == {"openid", "profile"}


def test_a_private_key_jwt_client_pushes_a_signed_request_object(
    live: LiveProvider, op: OpenIdProvider, clients: Clients
) -> None:
    """The three together, as FAPI 2.0 has them: PAR, authenticated by private_key_jwt, carrying JAR."""
    params = authorization_params(clients.signer)
    verifier = params.pop("verifier")
    claims = request_object_claims(params, issuer=op.issuer)
    session = OAuth2Session(
        clients.signer.client_id,
        clients.key.private,
        token_endpoint_auth_method="private_key_jwt",
        redirect_uri=clients.signer.redirect_uri,
    )
    session.register_client_auth_method(PrivateKeyJWT(op.issuer, alg="ES256"))
    response = push(op, session, {"client_id": clients.signer.client_id, "request": clients.key.sign(claims)})
    assert response.status_code == 201, response.text
    browser = Browser(op)

    page = visit(op, clients.signer, response.json()["request_uri"], browser)
    leaving = browser.pass_sign_in(page, create_account(live, "fapi"))

    session.register_client_auth_method(PrivateKeyJWT(op.endpoint("token"), alg="ES256"))
    tokens = session.fetch_token(
        op.endpoint("token"),
        authorization_response=location(leaving),
        code_verifier=verifier,
        state=params["state"],
    )
    op.verify_id_token(
        tokens["id_token"], expected_audience=clients.signer.client_id, expected_nonce=params["nonce"]
    )


def test_a_pushed_request_lives_sixty_seconds_in_the_ephemeral_store(
    op: OpenIdProvider, clients: Clients
) -> None:
    request = pushed(op, clients.app)
    key = "idp:par:" + hashlib.sha256(request.request_uri.encode()).hexdigest()

    with redis.Redis.from_url(E2E_REDIS_URL) as store:
        ttl = store.ttl(key)

    assert 55 <= ttl <= 60


def test_a_pushed_request_is_kept_without_the_clients_credentials(
    op: OpenIdProvider, clients: Clients
) -> None:
    params = authorization_params(clients.app)
    del params["verifier"], params["client_id"]  # client_secret_post puts client_id in the form itself
    session = OAuth2Session(
        clients.app.client_id, clients.app.secret, token_endpoint_auth_method="client_secret_post"
    )

    response = push(op, session, params)

    assert response.status_code == 201, response.text
    key = "idp:par:" + hashlib.sha256(response.json()["request_uri"].encode()).hexdigest()
    with redis.Redis.from_url(E2E_REDIS_URL) as store:
        kept = store.get(key)
    assert kept is not None and params["state"].encode() in kept
    assert clients.app.secret is not None and clients.app.secret.encode() not in kept


def test_with_a_request_object_only_its_parameters_are_pushed(op: OpenIdProvider, clients: Clients) -> None:
    """RFC 9126 3: the other authorization parameters belong in the request object; outside it they count
    for nothing (here prompt=none, which would otherwise answer login_required)."""
    params = authorization_params(clients.signer)
    params.pop("verifier")
    request_object = clients.key.sign(request_object_claims(params, issuer=op.issuer))
    session = OAuth2Session(
        clients.signer.client_id, clients.key.private, token_endpoint_auth_method="private_key_jwt"
    )
    session.register_client_auth_method(PrivateKeyJWT(op.issuer, alg="ES256"))

    response = push(
        op, session, {"client_id": clients.signer.client_id, "request": request_object, "prompt": "none"}
    )

    assert response.status_code == 201, response.text
    assert is_password_page(visit(op, clients.signer, response.json()["request_uri"]))


# -- the attacker's moves ----------------------------------------------------------------------------------


def test_a_used_request_uri_is_refused(op: OpenIdProvider, clients: Clients) -> None:
    request = pushed(op, clients.app)
    assert is_password_page(visit(op, clients.app, request.request_uri))

    again = visit(op, clients.app, request.request_uri)

    assert client_error(again, clients.app)["error"] == "invalid_request_uri"


def test_another_clients_request_uri_is_refused_and_stays_usable_for_its_client(
    op: OpenIdProvider, clients: Clients
) -> None:
    request = pushed(op, clients.app)

    stolen = visit(op, clients.other, request.request_uri)

    assert client_error(stolen, clients.other)["error"] == "invalid_request_uri"
    assert is_password_page(visit(op, clients.app, request.request_uri))


def test_two_browsers_racing_with_one_request_uri_get_one_sign_in(
    op: OpenIdProvider, clients: Clients
) -> None:
    request = pushed(op, clients.app)

    with ThreadPoolExecutor(max_workers=6) as pool:
        pages = list(pool.map(lambda _: visit(op, clients.app, request.request_uri), range(6)))

    assert sum(is_password_page(page) for page in pages) == 1
    refused = [page for page in pages if not is_password_page(page)]
    assert all(client_error(page, clients.app)["error"] == "invalid_request_uri" for page in refused)


def test_a_client_that_must_push_cannot_send_its_request_in_the_query(
    op: OpenIdProvider, clients: Clients
) -> None:
    params = authorization_params(clients.must_push)
    params.pop("verifier")

    answer = client_error(
        Browser(op).visit(op.metadata["authorization_endpoint"], params=params), clients.must_push
    )

    assert answer["error"] == "invalid_request" and answer["state"] == params["state"]
    assert is_password_page(visit(op, clients.must_push, pushed(op, clients.must_push).request_uri))


def test_a_client_that_must_push_cannot_send_a_request_object_in_the_query(
    op: OpenIdProvider, clients: Clients
) -> None:
    params = authorization_params(clients.signer)
    params.pop("verifier")
    signed = clients.key.sign(request_object_claims(params, issuer=op.issuer))
    query = {"client_id": clients.signer.client_id, "response_type": "code", "request": signed}

    answer = client_error(
        Browser(op).visit(op.metadata["authorization_endpoint"], params=query), clients.signer
    )

    assert answer["error"] == "invalid_request"


PUSH_REFUSALS = [
    pytest.param(
        {"request_uri": REQUEST_URI_PREFIX + "x"},
        "invalid_request",
        id="fails because a request_uri cannot be pushed",
    ),
    pytest.param(
        {"redirect_uri": "https://attacker.example/cb"},
        "invalid_request",
        id="fails because the redirect URI is not registered (JSON, no redirect)",
    ),
    pytest.param(
        {"code_challenge_method": "plain"},
        "invalid_request",
        id="fails because PKCE plain is refused as at the authorization endpoint",
    ),
    pytest.param(
        {"response_type": "token"},
        "unsupported_response_type",
        id="fails because only the code flow is supported",
    ),
]


@pytest.mark.parametrize(("change", "error"), PUSH_REFUSALS)
def test_a_push_the_authorization_endpoint_would_refuse_is_refused_in_json(
    op: OpenIdProvider, clients: Clients, change: dict[str, str], error: str
) -> None:
    params = authorization_params(clients.app)
    params.pop("verifier")

    response = push(op, secret_session(clients.app), params | change)

    assert response.status_code == 400 and response.json()["error"] == error, response.text
    assert "Location" not in response.headers


def test_a_push_naming_another_client_than_the_one_authenticated_is_refused(
    op: OpenIdProvider, clients: Clients
) -> None:
    params = authorization_params(clients.other)
    params.pop("verifier")

    response = push(op, secret_session(clients.app), params)

    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_a_push_with_a_wrong_secret_is_refused_with_invalid_client(
    op: OpenIdProvider, clients: Clients
) -> None:
    params = authorization_params(clients.app)
    params.pop("verifier")
    impostor = OAuth2Session(clients.app.client_id, "not-the-secret", redirect_uri=clients.app.redirect_uri)

    response = push(op, impostor, params)

    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


# -- the server-wide requirement ---------------------------------------------------------------------------


def test_par_required_by_config_refuses_every_request_in_the_query(tmp_path: Path) -> None:
    app = make_app(tmp_path, par={"required": True})
    client_id, secret = add_client(app)
    browser = app.test_client()
    assert browser.get("/.well-known/openid-configuration").get_json()[
        "require_pushed_authorization_requests"
    ]
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "state": "s",
        "code_challenge": create_s256_code_challenge(generate_token(48)),
        "code_challenge_method": "S256",
    }

    refused = browser.get("/authorize", query_string=params)

    assert refused.status_code == 302 and refused.location.startswith(REDIRECT_URI + "?")
    assert dict(parse_qsl(urlsplit(refused.location).query))["error"] == "invalid_request"
    answer = browser.post("/par", data=params, auth=(client_id, secret))
    assert answer.status_code == 201, answer.get_data(as_text=True)
    query = {"client_id": client_id, "request_uri": answer.get_json()["request_uri"]}
    signing_in = browser.get("/authorize", query_string=query)
    assert signing_in.status_code == 302 and signing_in.location.startswith("/signin/")
