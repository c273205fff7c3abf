"""Scale-out: two `idp serve` instances of one config share PostgreSQL and Redis, so either serves any step.

The first instance listens at the issuer's address; the second (`idp --config F serve --port P2`)
beside it, as a second node behind a load balancer would. Nothing a step needs stays in a process:
the pending sign-in, the session, single-use TOTP steps and refresh-token rotation all live in the
shared stores, so a user agent or client may switch instances between any two requests.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from support.device_flow import DEVICE_GRANT, approve, poll, start
from support.live import LiveProvider, start_instance, start_provider
from support.oidc_client import (
    TIMEOUT,
    Account,
    Attempt,
    Browser,
    Client,
    OpenIdProvider,
    is_factor_page,
    path_of,
)
from support.services import dedicated_database, emptied_redis

REDIS_URL_ENV = "IDP_TEST_SCALE_REDIS_URL"
REDIS_URL = os.environ.get(REDIS_URL_ENV) or "redis://127.0.0.1:6379/13"
REDIRECT_URI = "http://127.0.0.1/scale-out/callback"


@dataclass(frozen=True)
class Cluster:
    """The provider as relying parties know it (`op`, at the issuer) and as reached through each node."""

    op: OpenIdProvider
    one: OpenIdProvider
    two: OpenIdProvider
    client: Client
    live: LiveProvider


def reached_at(op: OpenIdProvider, origin: str) -> OpenIdProvider:
    """`op` through the instance at `origin`: every endpoint there, and the user agent follows that
    instance's redirects. Tokens still name the shared issuer: verify them with `op`."""
    view = copy.copy(op)
    view.issuer = origin
    view.metadata = {
        name: value.replace(op.issuer, origin, 1) if str(value).startswith(op.issuer + "/") else value
        for name, value in op.metadata.items()
    }
    return view


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    redis_url = emptied_redis(REDIS_URL, env=REDIS_URL_ENV)
    with dedicated_database(prefix="idp_scale_") as database_url:
        directory = tmp_path_factory.mktemp("scale")
        live = start_provider(directory, database_url=database_url, redis_url=redis_url)
        try:
            second = start_instance(live)
            try:
                op = OpenIdProvider(live.issuer)
                yield Cluster(op, op, reached_at(op, second.origin), register(live), live)
            finally:
                second.stop()
        finally:
            live.stop()
            emptied_redis(REDIS_URL, env=REDIS_URL_ENV)


def register(live: LiveProvider) -> Client:
    done = live.idp("clients", "create", "--name", "scale-out", "--redirect-uri", REDIRECT_URI, "--json")
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    return Client(created["client_id"], REDIRECT_URI, created["client_secret"])


@pytest.fixture
def account(cluster: Cluster) -> Account:
    """A new user who enrolled TOTP at a first sign-in (on instance one)."""
    account = Account(f"scale-{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(15))
    done = cluster.live.idp("users", "create", account.username, "--password-stdin", stdin=account.password)
    assert done.returncode == 0, done.stderr
    Browser(cluster.one).sign_in(cluster.client, account)
    assert account.authenticator is not None
    return account


def exchanged(node: OpenIdProvider, attempt: Attempt, callback: dict[str, str]) -> dict[str, Any]:
    assert callback["state"] == attempt.state, callback
    response = node.exchange(attempt, callback["code"])
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


def refused(response: requests.Response, error: str) -> bool:
    return bool(response.status_code == 400 and response.json().get("error") == error)


def served_by(browser: Browser, node: OpenIdProvider) -> bool:
    return all(response.url.startswith(node.issuer + "/") for response in browser.seen)


# -- the tests ------------------------------------------------------------------------------------


@pytest.mark.parametrize("document", ["/.well-known/openid-configuration", "/jwks.json"])
def test_both_instances_publish_one_provider(cluster: Cluster, document: str) -> None:
    one, two = (requests.get(node.issuer + document, timeout=TIMEOUT) for node in (cluster.one, cluster.two))

    assert one.status_code == two.status_code == 200
    assert one.json() == two.json(), "same issuer, endpoints and signing keys on every instance"


def test_a_sign_in_started_on_one_instance_finishes_on_the_other(cluster: Cluster, account: Account) -> None:
    assert account.authenticator is not None
    on_one = Browser(cluster.one)
    attempt = on_one.authorize(cluster.client)
    factor_on_one = on_one.submit(attempt.page, username=account.username, password=account.password)
    assert is_factor_page(factor_on_one), factor_on_one.text

    on_two = Browser(cluster.two, http=on_one.http)  # the same user agent, now sent to the other node
    factor = on_two.visit(cluster.two.issuer + path_of(factor_on_one))
    assert is_factor_page(factor), "the password proof and the pending request are known on instance two"
    callback = attempt.callback(on_two.submit(factor, code=account.authenticator.next_code()))
    tokens = exchanged(cluster.two, attempt, callback)

    assert served_by(on_one, cluster.one) and served_by(on_two, cluster.two)
    assert callback["iss"] == cluster.op.issuer
    claims = cluster.op.verify_id_token(
        tokens["id_token"], expected_audience=cluster.client.client_id, expected_nonce=attempt.nonce
    )
    assert claims["acr"] == "mfa" and {"pwd", "otp"} <= set(claims["amr"])
    assert cluster.one.userinfo(tokens["access_token"]).json()["sub"] == claims["sub"]


def test_a_refresh_token_rotated_on_one_instance_is_refused_as_reused_on_the_other(
    cluster: Cluster, account: Account
) -> None:
    attempt, callback = Browser(cluster.one).sign_in(cluster.client, account)
    tokens = exchanged(cluster.one, attempt, callback)
    client = cluster.client

    rotated = cluster.one.refresh(client, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    fresh = rotated.json()
    assert cluster.two.introspect(fresh["access_token"], resource_server=client)["active"] is True

    assert refused(cluster.two.refresh(client, tokens["refresh_token"]), "invalid_grant")

    assert refused(cluster.one.refresh(client, fresh["refresh_token"]), "invalid_grant"), (
        "the reuse revoked the whole family, on both instances"
    )
    for node in (cluster.one, cluster.two):
        for token in (fresh["refresh_token"], fresh["access_token"], tokens["access_token"]):
            assert node.introspect(token, resource_server=client) == {"active": False}


def test_a_totp_code_used_on_one_instance_is_refused_on_the_other(cluster: Cluster, account: Account) -> None:
    assert account.authenticator is not None
    first = Browser(cluster.one)
    attempt = first.authorize(cluster.client)
    factor = first.submit(attempt.page, username=account.username, password=account.password)
    used = account.authenticator.next_code()
    attempt.callback(first.submit(factor, code=used))

    second = Browser(cluster.two)
    attempt = second.authorize(cluster.client)
    factor = second.submit(attempt.page, username=account.username, password=account.password)
    assert is_factor_page(factor), factor.text
    refusal = second.submit(factor, code=used)

    assert refusal.status_code == 401 and is_factor_page(refusal)
    assert not second.went_to(cluster.client.redirect_uri)
    assert account.authenticator.is_timely(used), "refused as already used, not as stale"
    attempt.callback(second.submit(refusal, code=account.authenticator.next_code()))  # a fresh one works
    assert served_by(first, cluster.one) and served_by(second, cluster.two)


def test_a_device_approved_on_one_instance_gets_its_tokens_once_across_both(
    cluster: Cluster, account: Account
) -> None:
    """RFC 8628: codes issued by one node, the user at /device on the other, racing polls at both."""
    done = cluster.live.idp(
        "clients", "create", "--name", "scale-cli", "--public", "--grant-type", DEVICE_GRANT, "--json"
    )
    assert done.returncode == 0, done.stderr
    cli = Client(json.loads(done.stdout)["client_id"], "")
    started = start(cluster.one, cli)
    approve(Browser(cluster.two), started, account)
    nodes = [cluster.one, cluster.two] * 4
    with ThreadPoolExecutor(max_workers=len(nodes)) as pool:
        answers = list(pool.map(lambda node: poll(node, started), nodes))
    assert sorted(answer.status_code for answer in answers) == [200] + [400] * (len(nodes) - 1)
    assert all(refused(answer, "invalid_grant") for answer in answers if answer.status_code == 400)
    issued = next(answer.json() for answer in answers if answer.status_code == 200)
    claims = cluster.op.verify_access_token(issued["access_token"], expected_audience=cli.client_id)
    assert claims["acr"] == "mfa" and {"pwd", "otp"} <= set(claims["amr"])
