"""DPoP (RFC 9449) end to end against a live provider on PostgreSQL and Redis, from the attacker's side.

A proof at the token endpoint binds the access token (`cnf.jkt`, token type DPoP) and a public client's
refresh token to the client's key; userinfo and `idp.resource` take a bound token only with the DPoP
scheme and a proof by that key. The attacks: a proof replayed (also concurrently), made for another URL
or method, stale or from the future, signed by another key than the one it names, unsigned or HMAC'd;
a stolen bound refresh token used without the key or with another one; a bound access token sent as a
bearer token. Nonces: tests/test_dpop_nonces.py.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from joserfc.jws import JWSRegistry
from support.dpop import DpopKey, b64
from support.dpop_world import World, assert_openid_client_flow, challenge_error, dpop_world, error_of
from support.hostile import FUZZ, JSON_VALUES, JWT_LIKE, b64url
from support.oidc_client import TIMEOUT, Client

from idp.oidc.dpop import ProofRefused, verify_proof
from idp.resource import AccessToken, Challenge, IntrospectionValidator, JwksValidator, Presentation, check

API_URL = "https://api.example.test/orders"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with dpop_world(tmp_path_factory.mktemp("dpop"), database_prefix="idp_dpop_") as running:
        yield running


def forged(header: dict[str, Any], claims: dict[str, Any], signature: bytes) -> str:
    encode = lambda value: b64(json.dumps(value).encode())  # noqa: E731
    return f"{encode(header)}.{encode(claims)}.{b64(signature)}"


# -- discovery and binding -------------------------------------------------------------------------


def test_discovery_lists_the_proof_algorithms(world: World) -> None:
    assert world.op.metadata["dpop_signing_alg_values_supported"] == [
        "ES256",
        "EdDSA",
        "Ed25519",
        "RS256",
        "PS256",
    ]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "Ed25519", "RS256", "PS256"])
def test_a_proof_binds_the_access_token_to_the_key(world: World, alg: str) -> None:
    key = DpopKey.generate(alg)
    tokens = world.bound_tokens(world.public, key)
    assert tokens["token_type"] == "DPoP"
    claims = world.op.verify_access_token(tokens["access_token"], expected_audience=world.public.client_id)
    assert claims["cnf"] == {"jkt": key.jkt}
    introspected = world.op.introspect(tokens["access_token"], resource_server=world.api)
    assert introspected["active"] is True
    assert introspected["token_type"] == "DPoP"
    assert introspected["cnf"] == {"jkt": key.jkt}
    assert (
        world.op.introspect(tokens["refresh_token"], resource_server=world.api)["active"] is False
    )  # no aud


def test_without_a_proof_the_tokens_stay_bearer_tokens(world: World) -> None:
    form = world.code(world.public)
    tokens = world.token(world.public, form, proof=None).json()
    assert tokens["token_type"] == "Bearer"
    assert "cnf" not in world.op.verify_access_token(
        tokens["access_token"], expected_audience=world.public.client_id
    )
    assert world.userinfo("Bearer", tokens["access_token"]).status_code == 200
    # An unbound token is no DPoP token either.
    refused = world.userinfo(
        "DPoP", tokens["access_token"], proof=DpopKey.generate().proof("GET", world.userinfo_url)
    )
    assert challenge_error(refused) == "invalid_token"


# -- userinfo: the bound access token --------------------------------------------------------------


def test_userinfo_takes_a_bound_token_only_with_a_proof_by_its_key(world: World) -> None:
    key, thief = DpopKey.generate(), DpopKey.generate()
    token = world.bound_tokens(world.public, key)["access_token"]
    url = world.userinfo_url

    good = world.userinfo("DPoP", token, proof=key.proof("GET", url, access_token=token))
    assert good.status_code == 200, good.text
    assert good.json()["sub"]

    as_bearer = world.userinfo("Bearer", token)
    assert challenge_error(as_bearer) == "invalid_token"
    assert challenge_error(world.userinfo("DPoP", token)) == "invalid_dpop_proof"  # no proof at all
    another_key = world.userinfo("DPoP", token, proof=thief.proof("GET", url, access_token=token))
    assert challenge_error(another_key) == "invalid_dpop_proof"
    without_ath = world.userinfo("DPoP", token, proof=key.proof("GET", url))
    assert challenge_error(without_ath) == "invalid_dpop_proof"
    other_token = world.userinfo("DPoP", token, proof=key.proof("GET", url, access_token=token + "x"))
    assert challenge_error(other_token) == "invalid_dpop_proof"
    for_the_token_endpoint = world.userinfo(
        "DPoP", token, proof=key.proof("GET", world.token_url, access_token=token)
    )
    assert challenge_error(for_the_token_endpoint) == "invalid_dpop_proof"

    forged_token = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    unknown = world.userinfo("DPoP", forged_token, proof=key.proof("GET", url, access_token=forged_token))
    assert challenge_error(unknown) == "invalid_token"

    once = key.proof("GET", url, access_token=token)
    assert world.userinfo("DPoP", token, proof=once).status_code == 200
    assert challenge_error(world.userinfo("DPoP", token, proof=once)) == "invalid_dpop_proof"


# -- the refresh token -----------------------------------------------------------------------------


def test_a_stolen_bound_refresh_token_is_useless_without_the_key(world: World) -> None:
    key, thief = DpopKey.generate(), DpopKey.generate()
    tokens = world.bound_tokens(world.public, key)
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}

    without = world.token(world.public, form, proof=None)
    assert without.status_code == 400 and error_of(without) == "invalid_dpop_proof", without.text
    with_another_key = world.token(world.public, form, proof=thief.proof("POST", world.token_url))
    assert with_another_key.status_code == 400 and error_of(with_another_key) == "invalid_dpop_proof"
    refusals = [
        event
        for event in sorted(world.live.audit_events("dpop_proof"), key=lambda event: event.id)
        if event.client_id == world.public.client_id and event.detail.get("grant_type") == "refresh_token"
    ]
    assert [event.detail["reason"] for event in refusals[-2:]] == [
        "The refresh token is bound to a DPoP key: send a proof by it.",
        "The DPoP proof is signed with another key than the refresh token is bound to.",
    ]
    assert all(event.user_id and event.outcome == "failure" for event in refusals[-2:])

    # The refused attempts spent nothing: the client with the key still refreshes, bound again.
    refreshed = world.token(world.public, form, proof=key.proof("POST", world.token_url))
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["token_type"] == "DPoP"
    claims = world.op.verify_access_token(
        refreshed.json()["access_token"], expected_audience=world.public.client_id
    )
    assert claims["cnf"] == {"jkt": key.jkt}
    # The new refresh token is bound to the same key.
    again = {"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"]}
    assert (
        error_of(world.token(world.public, again, proof=thief.proof("POST", world.token_url)))
        == "invalid_dpop_proof"
    )
    assert world.token(world.public, again, proof=key.proof("POST", world.token_url)).status_code == 200


def test_a_confidential_clients_refresh_token_is_bound_to_its_authentication_not_a_key(world: World) -> None:
    """RFC 9449 5: the client authenticates; each refresh's proof binds that refresh's access token."""
    first, second = DpopKey.generate(), DpopKey.generate()
    tokens = world.bound_tokens(world.web, first)
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    refreshed = world.token(world.web, form, proof=second.proof("POST", world.token_url))
    assert refreshed.status_code == 200, refreshed.text
    claims = world.op.verify_access_token(
        refreshed.json()["access_token"], expected_audience=world.web.client_id
    )
    assert claims["cnf"] == {"jkt": second.jkt}
    stolen = Client(world.web.client_id, world.web.redirect_uri)  # without the client's secret
    form = {"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"]}
    assert world.token(stolen, form, proof=second.proof("POST", world.token_url)).status_code in (400, 401)


def test_a_client_registered_to_require_dpop_gets_nothing_without_a_proof(world: World) -> None:
    form = world.code(world.strict)
    refused = world.token(world.strict, form, proof=None)
    assert refused.status_code == 400 and error_of(refused) == "invalid_dpop_proof", refused.text
    key = DpopKey.generate()
    form = world.code(world.strict)
    assert (
        world.token(world.strict, form, proof=key.proof("POST", world.token_url)).json()["token_type"]
        == "DPoP"
    )


def test_a_refused_proof_leaves_the_authorization_code_usable(world: World) -> None:
    """The proof is checked before the code is looked up: a client that got a proof wrong retries."""
    key = DpopKey.generate()
    form = world.code(world.public)
    stale = key.proof("POST", world.token_url, claims={"iat": int(time.time()) - 600})
    assert error_of(world.token(world.public, form, proof=stale)) == "invalid_dpop_proof"
    retried = world.token(world.public, form, proof=key.proof("POST", world.token_url))
    assert retried.status_code == 200, retried.text
    assert retried.json()["token_type"] == "DPoP"


def test_a_code_whose_request_named_a_key_is_redeemed_only_with_a_proof_by_it(world: World) -> None:
    """RFC 9449 10: dpop_jkt binds the code itself, so an intercepted code is useless without the key."""
    key, thief = DpopKey.generate(), DpopKey.generate()
    for proof in (None, thief.proof("POST", world.token_url)):
        form = world.code(world.public, dpop_jkt=key.jkt)
        refused = world.token(world.public, form, proof=proof)
        assert refused.status_code == 400 and error_of(refused) == "invalid_dpop_proof", refused.text
    form = world.code(world.public, dpop_jkt=key.jkt)
    redeemed = world.token(world.public, form, proof=key.proof("POST", world.token_url))
    assert redeemed.status_code == 200 and redeemed.json()["token_type"] == "DPoP", redeemed.text


def test_a_malformed_dpop_jkt_is_refused_at_the_authorization_endpoint(world: World) -> None:
    attempt = world.browser.authorize(world.public, dpop_jkt="not a thumbprint")
    answer = attempt.callback(attempt.page)
    assert answer["error"] == "invalid_request" and answer["state"] == attempt.state
    assert "dpop_jkt" in answer["error_description"]


# -- what a proof must be --------------------------------------------------------------------------


def _hmac_signed(world: World) -> str:
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"guessable")}}
    claims = {"jti": "h1", "htm": "POST", "htu": world.token_url, "iat": int(time.time())}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(b"guessable", signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _unsigned(world: World) -> str:
    key = DpopKey.generate()
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": key.private.as_dict(private=False)}
    return forged(header, {"jti": "n1", "htm": "POST", "htu": world.token_url, "iat": int(time.time())}, b"")


def _private_jwk(world: World) -> str:
    key = DpopKey.generate()
    return key.proof("POST", world.token_url, header={"jwk": key.private.as_dict(private=True)})


def _with_crit(world: World, key: DpopKey) -> str:
    """Signed, with a critical header parameter no one understands (RFC 7515 4.1.11)."""
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.private.as_dict(private=False)}
    header |= {"crit": ["x-must-understand"], "x-must-understand": True}
    claims = {"jti": "c1", "htm": "POST", "htu": world.token_url, "iat": int(time.time())}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = JWSRegistry.algorithms["ES256"].sign(signing_input.encode(), key.private)
    return f"{signing_input}.{b64(signature)}"


BAD_PROOFS = [
    pytest.param(lambda w, k: k.proof("GET", w.token_url), id="fails because it is for another method"),
    pytest.param(lambda w, k: k.proof("POST", w.userinfo_url), id="fails because it is for another endpoint"),
    pytest.param(
        lambda w, k: k.proof("POST", "https://attacker.example/token"),
        id="fails because it is for another host",
    ),
    pytest.param(
        lambda w, k: k.proof("POST", w.token_url.replace("http://", "https://")),
        id="fails because of another scheme",
    ),
    pytest.param(
        lambda w, k: k.proof("POST", w.token_url, claims={"iat": int(time.time()) - 300}),
        id="fails because it was made five minutes ago",
    ),
    pytest.param(
        lambda w, k: k.proof("POST", w.token_url, claims={"iat": int(time.time()) + 300}),
        id="fails because it is dated five minutes ahead",
    ),
    pytest.param(
        lambda w, k: k.proof("POST", w.token_url, claims={"iat": str(int(time.time()))}),
        id="fails because iat is a string",
    ),
    pytest.param(
        lambda w, k: k.proof("POST", w.token_url, signer=DpopKey.generate()),
        id="fails because another key than the header's signed it",
    ),
    pytest.param(
        lambda w, k: k.proof("POST", w.token_url, header={"typ": "JWT"}),
        id="fails because typ is not dpop+jwt",
    ),
    pytest.param(
        lambda w, k: k.proof("POST", w.token_url, header={"jwk": None}), id="fails because it names no key"
    ),
    pytest.param(lambda w, k: _private_jwk(w), id="fails because the header holds a private key"),
    pytest.param(lambda w, k: _unsigned(w), id="fails because it is unsigned (alg none)"),
    pytest.param(lambda w, k: _hmac_signed(w), id="fails because it is HMAC-signed with a key it carries"),
    pytest.param(
        lambda w, k: k.proof("POST", w.token_url, claims={"jti": None}), id="fails because it has no jti"
    ),
    pytest.param(
        lambda w, k: k.proof("POST", w.token_url, claims={"htu": None}), id="fails because it has no htu"
    ),
    pytest.param(lambda w, k: "not.a.jwt", id="fails because it is no JWT"),
    pytest.param(
        lambda w, k: _with_crit(w, k),
        id="fails because of a crit header",
    ),
]


@pytest.mark.parametrize("make", BAD_PROOFS)
def test_a_bad_proof_is_refused_with_invalid_dpop_proof(world: World, make: Any) -> None:
    refused = world.machine_token(make(world, DpopKey.generate()))
    assert refused.status_code == 400, refused.text
    assert error_of(refused) == "invalid_dpop_proof"


def test_a_proof_with_the_query_and_fragment_left_off_or_added_is_the_same_url(world: World) -> None:
    """RFC 9449 4.3 (9): htu is compared without its query and fragment, the host case-insensitively."""
    key = DpopKey.generate()
    upper = world.token_url.replace("http://", "HTTP://")
    assert world.machine_token(key.proof("POST", upper + "?x=1#y")).status_code == 200


def test_forwarded_headers_do_not_change_the_url_a_proof_must_name(world: World) -> None:
    """htu is compared with the configured issuer's URL, not with X-Forwarded-* headers (the test
    client is no trusted proxy; behind one, the issuer is the public URL all the same)."""
    form = {"grant_type": "client_credentials"}
    forwarded = {"X-Forwarded-Host": "attacker.example", "X-Forwarded-Proto": "https"}
    for_the_attacker = DpopKey.generate().proof("POST", "https://attacker.example/token")
    refused = requests.post(
        world.token_url,
        headers=forwarded | {"DPoP": for_the_attacker},
        timeout=TIMEOUT,
        **world.machine.authenticated(form),
    )
    assert refused.status_code == 400 and error_of(refused) == "invalid_dpop_proof"


def test_a_forged_host_header_is_a_bad_request_not_a_server_error(world: World) -> None:
    proof = DpopKey.generate().proof("POST", "http://attacker.example/token")
    form = {"grant_type": "client_credentials"}
    refused = requests.post(
        world.token_url,
        headers={"Host": "attacker.example", "DPoP": proof},
        timeout=TIMEOUT,
        **world.machine.authenticated(form),
    )
    assert refused.status_code == 400 and error_of(refused) == "invalid_request", refused.text


def test_a_proof_is_accepted_once(world: World) -> None:
    proof = DpopKey.generate().proof("POST", world.token_url)
    assert world.machine_token(proof).status_code == 200
    replayed = world.machine_token(proof)
    assert replayed.status_code == 400 and error_of(replayed) == "invalid_dpop_proof"


def test_one_proof_raced_from_many_connections_is_accepted_once(world: World) -> None:
    proof = DpopKey.generate().proof("POST", world.token_url)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(lambda _: world.machine_token(proof).status_code, range(8)))
    assert statuses == [200] + [400] * 7


def test_client_credentials_tokens_are_bound_too(world: World) -> None:
    key = DpopKey.generate()
    issued = world.machine_token(key.proof("POST", world.token_url)).json()
    assert issued["token_type"] == "DPoP"
    claims = world.op.verify_access_token(issued["access_token"], expected_audience=world.machine.client_id)
    assert claims["cnf"] == {"jkt": key.jkt}


PROOF_KEYS = st.fixed_dictionaries(
    {"kty": st.sampled_from(["EC", "OKP", "RSA"]) | JSON_VALUES},
    optional={name: st.text(max_size=12) | JSON_VALUES for name in ("crv", "x", "y", "n", "e", "d", "k")},
)
PROOF_HEADERS = st.fixed_dictionaries(
    {
        "typ": st.just("dpop+jwt") | JSON_VALUES,
        "alg": st.sampled_from(["ES256", "EdDSA", "RS256", "PS256", "none", "HS256"]) | JSON_VALUES,
        "jwk": PROOF_KEYS | JSON_VALUES,
    },
    optional={"crit": JSON_VALUES, "b64": JSON_VALUES, "kid": JSON_VALUES},
)
HOSTILE_PROOFS = JWT_LIKE | st.builds(
    lambda header, claims, signature: (
        f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.{signature}"
    ),
    PROOF_HEADERS,
    st.fixed_dictionaries(
        {},
        optional={name: JSON_VALUES for name in ("jti", "htm", "htu", "iat", "ath", "nonce")},
    )
    | JSON_VALUES,
    st.sampled_from(["", "AAAA"]) | st.binary(max_size=80).map(b64url),
)


@FUZZ
@given(proof=HOSTILE_PROOFS, nonce=JSON_VALUES)
def test_a_malformed_proof_is_refused_and_never_an_error(proof: str, nonce: object) -> None:
    with pytest.raises(ProofRefused):
        verify_proof(
            proof,
            expected_method="POST",
            expected_url="https://idp.example/token",
            now=time.time(),
            window=60,
            access_token="token",
            nonce_is_valid=lambda sent: sent == nonce,
        )


@FUZZ
@given(claims=st.dictionaries(st.sampled_from(["jti", "htm", "htu", "iat", "ath", "nonce"]), JSON_VALUES))
def test_a_signed_proof_with_claims_of_any_shape_is_refused_and_never_an_error(
    claims: dict[str, Any],
) -> None:
    """Signed by the key in its header: only the claims are wrong (one of them at least, ath always)."""
    proof = DpopKey.generate().proof("POST", "https://idp.example/token", claims=claims | {"ath": None})
    with pytest.raises(ProofRefused):
        verify_proof(
            proof,
            expected_method="POST",
            expected_url="https://idp.example/token",
            now=time.time(),
            window=60,
            access_token="token",
        )


# -- idp.resource: a resource server ---------------------------------------------------------------


def test_a_resource_server_takes_a_bound_token_only_with_a_proof_by_its_key(world: World) -> None:
    key, thief = DpopKey.generate(), DpopKey.generate()
    token = world.bound_tokens(world.web, key)["access_token"]
    validator = JwksValidator(issuer=world.op.issuer, audience=world.web.client_id)

    def presented(proof: str | None, scheme: str = "DPoP") -> AccessToken | Challenge:
        proofs = () if proof is None else (proof,)
        return check(f"{scheme} {token}", validator, presentation=Presentation("POST", API_URL, proofs))

    accepted = presented(key.proof("POST", API_URL, access_token=token))
    assert isinstance(accepted, AccessToken) and accepted.jkt == key.jkt
    refusals = {
        "as bearer": presented(None, scheme="Bearer"),
        "no proof": presented(None),
        "another key": presented(thief.proof("POST", API_URL, access_token=token)),
        "another url": presented(key.proof("POST", API_URL + "/1", access_token=token)),
        "another method": presented(key.proof("GET", API_URL, access_token=token)),
        "no ath": presented(key.proof("POST", API_URL)),
    }
    assert {name: getattr(outcome, "error", None) for name, outcome in refusals.items()} == {
        "as bearer": "invalid_token",
        "no proof": "invalid_dpop_proof",
        "another key": "invalid_dpop_proof",
        "another url": "invalid_dpop_proof",
        "another method": "invalid_dpop_proof",
        "no ath": "invalid_dpop_proof",
    }
    assert all(outcome.www_authenticate.startswith("DPoP ") for outcome in refusals.values())  # type: ignore[union-attr]
    once = key.proof("POST", API_URL, access_token=token)
    assert isinstance(presented(once), AccessToken)
    assert getattr(presented(once), "error", None) == "invalid_dpop_proof"

    assert world.api.secret is not None
    introspecting = IntrospectionValidator(
        issuer=world.op.issuer, client_id=world.api.client_id, client_secret=world.api.secret
    )
    outcome = check(
        f"DPoP {token}",
        introspecting,
        presentation=Presentation("POST", API_URL, (key.proof("POST", API_URL, access_token=token),)),
    )
    assert isinstance(outcome, AccessToken) and outcome.jkt == key.jkt


# -- openid-client (node), a relying party library that implements DPoP --------------------------


def test_openid_client_completes_a_dpop_flow(world: World) -> None:
    assert_openid_client_flow(world, demands_nonces=False)
