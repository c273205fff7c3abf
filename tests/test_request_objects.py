"""Request objects (RFC 9101, OIDC Core 6) end to end: Authlib's client sends its authorization request
as a JWT signed with the key it registered through the CLI, to a live provider on PostgreSQL and Redis,
and the request object's parameters win over the query's. Then the attacker's moves: a request object
replayed, for another audience, expired, not yet valid, unsigned, signed by another key, naming another
client; and a request_uri that points anywhere but at a pushed request.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import OctKey
from support.client_jwts import ClientKey, request_object_claims, unsigned
from support.live import LiveProvider, provider_on_real_stores
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
QUERY_STATE = "state-in-the-query"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    with provider_on_real_stores(tmp_path_factory.mktemp("jar"), database_prefix="idp_jar_") as provider:
        yield provider


@dataclass(frozen=True)
class Clients:
    signer: Client  # registered its keys (--jwks-file): signed request objects, any advertised alg
    key: ClientKey
    unsigned: Client  # opted in to unsigned request objects (--request-object-signing-alg none)
    keyless: Client  # registered no keys
    ps256_only: Client  # registered the same keys and --request-object-signing-alg PS256


@pytest.fixture(scope="module")
def clients(live: LiveProvider, tmp_path_factory: pytest.TempPathFactory) -> Clients:
    key = ClientKey.generate("RS256")
    jwks = key.write_jwks(tmp_path_factory.mktemp("keys"))
    return Clients(
        signer=register_client(live, "signer", "--jwks-file", str(jwks)),
        key=key,
        unsigned=register_client(live, "unsigned", "--request-object-signing-alg", "none"),
        keyless=register_client(live, "keyless"),
        ps256_only=register_client(
            live, "ps256", "--jwks-file", str(jwks), "--request-object-signing-alg", "PS256"
        ),
    )


def request_claims(
    op: OpenIdProvider, client: Client, *, lifetime: int = 300, **params: Any
) -> dict[str, Any]:
    """A complete authorization request (PKCE, nonce, state) as request object claims."""
    verifier = generate_token(48)
    request = {
        "client_id": client.client_id,
        "response_type": "code",
        "redirect_uri": client.redirect_uri,
        "scope": "openid profile",
        "state": generate_token(12),
        "nonce": generate_token(12),
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    return request_object_claims(request | params, issuer=op.issuer, lifetime=lifetime)


def authorize_with(op: OpenIdProvider, client: Client, **query: str) -> requests.Response:
    """A browser arriving with the client's id, redirect URI and `query` (a request or request_uri)."""
    params = {"client_id": client.client_id, "response_type": "code", "redirect_uri": client.redirect_uri}
    url = f"{op.metadata['authorization_endpoint']}?{urlencode({**params, 'state': QUERY_STATE, **query})}"
    return Browser(op).visit(url)


def client_error(response: requests.Response, client: Client) -> dict[str, str]:
    """The error the provider sent to the client's redirect URI (with the query's state and its iss)."""
    target = location(response) if response.is_redirect else None
    assert target is not None and target.startswith(client.redirect_uri + "?"), response.text[:300]
    answer = dict(parse_qsl(urlsplit(target).query))
    assert "code" not in answer
    return answer


# -- the relying party's way ------------------------------------------------------------------------------


def test_discovery_advertises_request_objects_and_pushed_request_uris_only(op: OpenIdProvider) -> None:
    assert op.metadata["request_parameter_supported"] is True
    assert op.metadata["request_object_signing_alg_values_supported"] == ["RS256", "PS256", "ES256", "none"]
    assert op.metadata["request_uri_parameter_supported"] is True
    assert op.metadata["require_request_uri_registration"] is True, "no URL of the client's is ever fetched"


def test_authlib_sends_a_signed_request_object_whose_parameters_win_over_the_query(
    live: LiveProvider, op: OpenIdProvider, clients: Clients
) -> None:
    verifier, nonce, state = generate_token(48), generate_token(16), generate_token(12)
    asks_for_mfa = {"id_token": {"acr": {"values": ["mfa"]}, "auth_time": {"essential": True}}}
    request = {
        "client_id": clients.signer.client_id,
        "response_type": "code",
        "redirect_uri": clients.signer.redirect_uri,
        "scope": "openid profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
        "claims": asks_for_mfa,  # a JSON object in a request object, not a string
        "max_age": 3600,  # a number
    }
    claims = request_object_claims(request, issuer=op.issuer)
    session = OAuth2Session(
        clients.signer.client_id,
        clients.signer.secret,
        redirect_uri=clients.signer.redirect_uri,
        scope="openid",  # the query asks for less than the request object, and with another state
    )
    url, _query_state = session.create_authorization_url(
        op.metadata["authorization_endpoint"], state=QUERY_STATE, request=clients.key.sign(claims)
    )
    browser = Browser(op)
    leaving = browser.pass_sign_in(browser.visit(url), create_account(live, "jar"))

    tokens = session.fetch_token(
        op.endpoint("token"), authorization_response=location(leaving), code_verifier=verifier, state=state
    )

    assert set(tokens["scope"].split()) == {"openid", "profile"}
    id_token = op.verify_id_token(
        tokens["id_token"], expected_audience=clients.signer.client_id, expected_nonce=nonce
    )
    assert id_token["acr"] == "mfa" and set(id_token["amr"]) == MFA_AMR


def test_a_request_object_signed_with_ps256_is_verified_too(op: OpenIdProvider, clients: Clients) -> None:
    request_object = clients.key.sign(request_claims(op, clients.signer), alg="PS256")

    assert is_password_page(authorize_with(op, clients.signer, request=request_object))


def test_a_client_registered_for_ps256_has_only_ps256_request_objects_verified(
    op: OpenIdProvider, clients: Clients
) -> None:
    claims = request_claims(op, clients.ps256_only)

    rs256 = authorize_with(op, clients.ps256_only, request=clients.key.sign(claims, alg="RS256"))
    ps256 = authorize_with(op, clients.ps256_only, request=clients.key.sign(claims, alg="PS256"))

    assert client_error(rs256, clients.ps256_only)["error"] == "invalid_request"
    assert is_password_page(ps256), ps256.text[:300]


def test_an_unsigned_request_object_is_accepted_from_a_client_that_opted_in(
    op: OpenIdProvider, clients: Clients
) -> None:
    page = authorize_with(op, clients.unsigned, request=unsigned(request_claims(op, clients.unsigned)))

    assert is_password_page(page), page.text[:300]


# -- the attacker's moves ----------------------------------------------------------------------------------

Forgery = Callable[[OpenIdProvider, Clients], str]


def _signed(lifetime: int = 300, **changes: Any) -> Forgery:
    """A request object by the signer's key, valid for `lifetime`, with claims changed (None: left out)."""

    def make(op: OpenIdProvider, clients: Clients) -> str:
        claims = request_claims(op, clients.signer, lifetime=lifetime) | changes
        return clients.key.sign({name: value for name, value in claims.items() if value is not None})

    return make


def _unsigned(op: OpenIdProvider, clients: Clients) -> str:
    return unsigned(request_claims(op, clients.signer))


def _another_key(op: OpenIdProvider, clients: Clients) -> str:
    return ClientKey.generate("RS256").sign(request_claims(op, clients.signer))


def _another_key_type(op: OpenIdProvider, clients: Clients) -> str:
    return ClientKey.generate("ES256").sign(request_claims(op, clients.signer))


def _hs256_with_the_public_key(op: OpenIdProvider, clients: Clients) -> str:
    """The classic confusion: HMAC keyed with the client's public key, which anyone can read."""
    public = json.dumps(clients.key.jwks()["keys"][0]).encode()
    return jwt.encode({"alg": "HS256"}, request_claims(op, clients.signer), OctKey.import_key(public))


FORGERIES = [
    pytest.param(
        _signed(aud="https://other-idp.example"),
        "invalid_request_object",
        id="fails because aud is another server",
    ),
    pytest.param(_signed(aud=None), "invalid_request_object", id="fails because it has no aud"),
    pytest.param(
        _signed(lifetime=-120), "invalid_request_object", id="fails because it expired two minutes ago"
    ),
    pytest.param(_signed(nbf=2**31), "invalid_request_object", id="fails because it is not valid yet (nbf)"),
    pytest.param(
        _signed(lifetime=7200),
        "invalid_request_object",
        id="fails because it is valid for longer than its jti is kept",
    ),
    pytest.param(_signed(exp=None), "invalid_request_object", id="fails because it has no exp"),
    pytest.param(
        _signed(jti=None), "invalid_request_object", id="fails because it has no jti to refuse a replay by"
    ),
    pytest.param(
        _signed(iss="someone-else"), "invalid_request_object", id="fails because iss is not the client"
    ),
    pytest.param(
        _signed(client_id="someone-else"), "invalid_request", id="fails because client_id is another client"
    ),
    pytest.param(
        _signed(request_uri="https://attacker.example/ro"),
        "invalid_request",
        id="fails because it nests a request_uri",
    ),
    pytest.param(
        _unsigned,
        "invalid_request",
        id="fails because it is unsigned (alg none) and the client did not opt in",
    ),
    pytest.param(
        _another_key, "invalid_request_object", id="fails because a key the client never registered signed it"
    ),
    pytest.param(
        _another_key_type,
        "invalid_request_object",
        id="fails because an EC key signed it, the client has RSA",
    ),
    pytest.param(
        _hs256_with_the_public_key,
        "invalid_request",
        id="fails because HS256 keyed with the public key is no signature",
    ),
    pytest.param(
        lambda op, clients: "not.a.jwt", "invalid_request_object", id="fails because it is not a JWT"
    ),
]


@pytest.mark.parametrize(("forge", "error"), FORGERIES)
def test_a_forged_request_object_is_answered_with_the_specs_error_at_the_client(
    op: OpenIdProvider, clients: Clients, forge: Forgery, error: str
) -> None:
    answer = client_error(authorize_with(op, clients.signer, request=forge(op, clients)), clients.signer)

    assert answer["error"] == error, answer
    assert answer["state"] == QUERY_STATE and answer["iss"] == op.issuer


def test_a_replayed_request_object_is_refused(op: OpenIdProvider, clients: Clients) -> None:
    request_object = clients.key.sign(request_claims(op, clients.signer))
    assert is_password_page(authorize_with(op, clients.signer, request=request_object))

    replayed = authorize_with(op, clients.signer, request=request_object)

    assert client_error(replayed, clients.signer)["error"] == "invalid_request_object"


def test_a_client_without_keys_cannot_send_a_signed_request_object(
    op: OpenIdProvider, clients: Clients
) -> None:
    forged = clients.key.sign(request_claims(op, clients.keyless))

    answer = client_error(authorize_with(op, clients.keyless, request=forged), clients.keyless)

    assert answer["error"] == "invalid_request_object"


@pytest.mark.parametrize(
    "request_uri",
    [
        "https://attacker.example/request.jwt",
        "http://127.0.0.1:6379/",
        "file:///etc/passwd",
        "urn:example:anything",
    ],
    ids=[
        "fails because fetching an https URL would be SSRF",
        "fails because fetching an internal address would be SSRF",
        "fails because a file URL is no request",
        "fails because only pushed request URNs are references",
    ],
)
def test_a_request_uri_that_is_not_a_pushed_request_is_not_supported(
    op: OpenIdProvider, clients: Clients, request_uri: str
) -> None:
    answer = client_error(authorize_with(op, clients.signer, request_uri=request_uri), clients.signer)

    assert answer["error"] == "request_uri_not_supported"
    assert answer["state"] == QUERY_STATE


def test_request_and_request_uri_together_are_refused(op: OpenIdProvider, clients: Clients) -> None:
    request_object = clients.key.sign(request_claims(op, clients.signer))
    response = authorize_with(op, clients.signer, request=request_object, request_uri="urn:x")

    assert client_error(response, clients.signer)["error"] == "invalid_request"
