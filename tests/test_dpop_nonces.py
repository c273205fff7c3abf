"""DPoP nonces (RFC 9449 8) from a provider configured with `[dpop] require_nonce`: a proof without one
gets `use_dpop_nonce` and the nonce to use, at the token endpoint and at userinfo, and openid-client
(node) retries by itself. A refused proof spends no authorization code. Two nodes share nonces and
spent proofs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from support.dpop import DpopKey
from support.dpop_world import World, assert_openid_client_flow, challenge_error, dpop_world, error_of
from support.live import start_instance
from support.oidc_client import TIMEOUT


@pytest.fixture(scope="module")
def nonce_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    directory = tmp_path_factory.mktemp("dpop-nonce")
    extra = "[dpop]\nrequire_nonce = true\n"
    with dpop_world(directory, database_prefix="idp_dpop_nonce_", extra=extra) as running:
        yield running


def test_a_server_that_demands_a_nonce_says_so_and_the_client_retries(nonce_world: World) -> None:
    world, key = nonce_world, DpopKey.generate()
    form = world.code(world.public)
    first = world.token(world.public, form, proof=key.proof("POST", world.token_url))
    assert first.status_code == 400 and error_of(first) == "use_dpop_nonce", first.text
    nonce = first.headers["DPoP-Nonce"]
    forged_nonce = world.token(
        world.public, form, proof=key.proof("POST", world.token_url, nonce=nonce[:-2] + "AA")
    )
    assert error_of(forged_nonce) == "use_dpop_nonce"
    not_ascii = world.token(world.public, form, proof=key.proof("POST", world.token_url, nonce="é" * 10))
    assert error_of(not_ascii) == "use_dpop_nonce"
    # The same code, now with the nonce: nothing was spent by the refusals.
    tokens = world.token(world.public, form, proof=key.proof("POST", world.token_url, nonce=nonce))
    assert tokens.status_code == 200, tokens.text
    token = tokens.json()["access_token"]

    without = world.userinfo("DPoP", token, proof=key.proof("GET", world.userinfo_url, access_token=token))
    assert challenge_error(without) == "use_dpop_nonce"
    nonce = without.headers["DPoP-Nonce"]
    proof = key.proof("GET", world.userinfo_url, access_token=token, nonce=nonce)
    assert world.userinfo("DPoP", token, proof=proof).status_code == 200


def test_a_nonce_is_good_for_other_requests_and_keys_until_it_expires(nonce_world: World) -> None:
    """Stateless nonces: one given out to a client works for its next proofs, made with any key."""
    refused = nonce_world.machine_token(DpopKey.generate().proof("POST", nonce_world.token_url))
    nonce = refused.headers["DPoP-Nonce"]
    for _ in range(2):
        proof = DpopKey.generate().proof("POST", nonce_world.token_url, nonce=nonce)
        assert nonce_world.machine_token(proof).status_code == 200


def test_openid_client_completes_a_dpop_flow_retrying_with_the_nonce(nonce_world: World) -> None:
    assert_openid_client_flow(nonce_world, demands_nonces=True)


def test_a_second_node_takes_the_first_nodes_nonce_and_refuses_its_spent_proofs(nonce_world: World) -> None:
    """Both nodes check htu against the configured issuer, derive the same nonces from the session
    secret, and record spent proofs in the shared Redis."""
    world = nonce_world
    second = start_instance(world.live)
    try:
        at_second = second.origin + "/token"

        def token_at_second(proof: str) -> requests.Response:
            form = {"grant_type": "client_credentials"}
            return requests.post(
                at_second, headers={"DPoP": proof}, timeout=TIMEOUT, **world.machine.authenticated(form)
            )

        nonce = world.machine_token(DpopKey.generate().proof("POST", world.token_url)).headers["DPoP-Nonce"]
        proof = DpopKey.generate().proof("POST", world.token_url, nonce=nonce)
        assert token_at_second(proof).status_code == 200
        replayed_at_first = world.machine_token(proof)
        assert replayed_at_first.status_code == 400 and error_of(replayed_at_first) == "invalid_dpop_proof"
        # The second node's own address is not the issuer's: a proof for it is for another URL.
        for_its_address = DpopKey.generate().proof("POST", at_second, nonce=nonce)
        assert error_of(token_at_second(for_its_address)) == "invalid_dpop_proof"
    finally:
        second.stop()
