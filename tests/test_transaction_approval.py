"""Transaction approval (RFC 9396 authorization details + WebAuthn), end to end over HTTP.

One `idp serve` on PostgreSQL and Redis (issuer http://localhost:PORT so passkeys work over HTTP)
declares two types: `payment` (a schema file beside the config, approval at phr, single use) and
`report` (an inline schema, no level of its own, reusable). Users sign in through the hosted pages
with a software authenticator; tokens are read as a client, a resource server and an attacker see them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
import requests
from support.client_jwts import ClientKey, request_object_claims
from support.live import E2E_REDIS_URL, LiveProvider, provider_on_real_stores
from support.oidc_client import TIMEOUT, Attempt, Client, OpenIdProvider
from support.step_up import (
    LiveMember,
    add_passkey_over_http,
    cli_client,
    exchanged,
    live_member,
    offered,
    page_csrf,
    post_json,
    unverified_claims,
    use_passkey_over_http,
)

from idp.store.ephemeral import KEY_PREFIX

PAYMENT_SCHEMA = {
    "type": "object",
    "properties": {
        "type": {"const": "payment"},
        "amount": {"type": "string", "pattern": "^[0-9]{1,9}\\.[0-9]{2}$"},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "creditorName": {"type": "string", "minLength": 1, "maxLength": 70},
    },
    "required": ["type", "amount", "currency", "creditorName"],
    "additionalProperties": False,
}
TYPES = """
[authorization_details.payment]
schema = "payment.schema.json"
title = "Pay {amount} {currency} to {creditorName}"
acr = "phr"
one_time = true

[authorization_details.report]
schema = { type = "object", properties = { name = { type = "string" } }, required = ["name"] }
title = "Read the report {name}"
"""
PAYMENT = {"type": "payment", "amount": "120.00", "currency": "EUR", "creditorName": "ACME Ltd"}
REPORT = {"type": "report", "name": "Q3 sales"}


def details(*items: dict[str, Any]) -> str:
    return json.dumps(list(items))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    directory = tmp_path_factory.mktemp("rar")
    (directory / "payment.schema.json").write_text(json.dumps(PAYMENT_SCHEMA))
    with provider_on_real_stores(directory, database_prefix="rar", extra=TYPES, host="localhost") as live:
        yield live


@pytest.fixture(scope="module")
def shop(live: LiveProvider) -> Client:
    """A confidential client that also introspects its own tokens."""
    return cli_client(live, "shop", "--scope", "openid", "--scope", "profile")


@pytest.fixture(scope="module")
def bank_api(live: LiveProvider, shop: Client) -> Client:
    """A resource server registered for the shop's tokens."""
    return cli_client(live, "bank-api", "--grant-type", "client_credentials", "--introspect", shop.client_id)


@pytest.fixture
def member(live: LiveProvider, op: OpenIdProvider, shop: Client) -> LiveMember:
    """A user signed in at mfa (password + TOTP) who then added a passkey."""
    member = live_member(live, op, "payer")
    member.sign_in(shop)
    add_passkey_over_http(member.browser, member.passkey)
    return member


def approve_with_passkey(member: LiveMember, page: requests.Response) -> requests.Response:
    return use_passkey_over_http(member.browser, page, member.passkey)


def shown(page: requests.Response) -> list[str]:
    """The lines of the page's "You are approving" list, as text."""
    section = page.text.split('<ul id="transaction-details">', 1)[1].split("</ul>", 1)[0]
    return [item.split("</li>", 1)[0] for item in section.split("<li>")[1:]]


def sha256_b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def canonical(*items: dict[str, Any]) -> bytes:
    return json.dumps(list(items), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- requests: the declared types, validated -------------------------------------------------------


def test_discovery_lists_the_configured_types(op: OpenIdProvider) -> None:
    assert op.metadata["authorization_details_types_supported"] == ["payment", "report"]


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param("{not json", id="not JSON"),
        pytest.param(json.dumps(PAYMENT), id="an object, not an array"),
        pytest.param("[]", id="an empty array"),
        pytest.param(details({"amount": "1.00"}), id="a detail without a type"),
        pytest.param(details({"type": "wire", "amount": "1.00"}), id="an unknown type"),
        pytest.param(details({**PAYMENT, "amount": "120"}), id="an amount the schema refuses"),
        pytest.param(details({**PAYMENT, "iban": "DE00"}), id="a property the schema does not allow"),
        pytest.param(details({"type": "report"}), id="a required property missing"),
        pytest.param(details(*[REPORT] * 11), id="more details than accepted"),
    ],
)
def test_bad_authorization_details_go_back_to_the_client_as_invalid_authorization_details(
    live: LiveProvider, op: OpenIdProvider, shop: Client, sent: str
) -> None:
    attempt = live_member(live, op, "bad").browser.authorize(shop, authorization_details=sent)
    answer = attempt.callback(attempt.page)
    assert answer["error"] == "invalid_authorization_details", answer
    assert answer["state"] == attempt.state and answer["iss"] == op.issuer
    assert answer.get("error_description")


# -- shown, then signed --------------------------------------------------------------------------------


def test_the_payment_is_shown_signed_with_the_passkey_and_carried_in_the_tokens(
    live: LiveProvider, op: OpenIdProvider, shop: Client, bank_api: Client, member: LiveMember
) -> None:
    attempt = member.browser.authorize(shop, authorization_details=details(PAYMENT))
    page = attempt.page
    assert offered(page) == {"passkey"}, "the type demands phr: only a passkey reaches it"
    assert shown(page) == ["Pay 120.00 EUR to ACME Ltd"]
    tokens = exchanged(op, attempt, approve_with_passkey(member, page))

    expected_hash = sha256_b64url(canonical(PAYMENT))
    assert tokens["authorization_details"] == [PAYMENT], "RFC 9396 7: the token response says what"
    assert "refresh_token" not in tokens, "an approved transaction is not renewed"
    claims = unverified_claims(tokens["access_token"])
    assert claims["authorization_details"] == [PAYMENT] and claims["acr"] == "phr"
    assert claims["approval"] == {"hash": expected_hash, "one_time": True}
    introspected = op.introspect(tokens["access_token"], resource_server=bank_api)
    assert introspected["active"] is True
    assert introspected["authorization_details"] == [PAYMENT]
    assert introspected["approval"] == {"hash": expected_hash, "one_time": True}
    assert introspected["acr"] == "phr" and "swk" in introspected["amr"] and introspected["auth_time"]
    assert op.introspect(tokens["access_token"], resource_server=bank_api) == {"active": False}, (
        "a one_time transaction's token is spent by its first use"
    )
    approval = [e for e in live.audit_events("transaction_approval") if e.client_id == shop.client_id][-1]
    assert approval.outcome == "success"
    assert approval.detail == {
        "hash": expected_hash,
        "types": ["payment"],
        "method": "webauthn",
        "signed": True,
    }


def test_the_details_are_escaped_on_the_page(live: LiveProvider, shop: Client, member: LiveMember) -> None:
    hostile = {**PAYMENT, "creditorName": '<img src=x onerror="alert(1)">'}
    page = member.browser.authorize(shop, authorization_details=details(hostile)).page
    assert shown(page) == ["Pay 120.00 EUR to &lt;img src=x onerror=&#34;alert(1)&#34;&gt;"]
    assert "<img src=x" not in page.text


def test_a_totp_code_does_not_approve_a_payment_that_demands_phr(
    op: OpenIdProvider, shop: Client, member: LiveMember
) -> None:
    attempt = member.browser.authorize(shop, authorization_details=details(PAYMENT))
    assert member.account.authenticator is not None
    code = member.account.authenticator.next_code()
    posted = member.browser.http.post(
        attempt.page.url,
        data={"csrf_token": page_csrf(attempt.page), "code": code},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    assert posted.status_code == 200 and offered(posted) == {"passkey"}, "the factor page again, not a code"
    again = member.browser.visit(attempt.page.url)
    assert offered(again) == {"passkey"}, "still waiting for the passkey"


def test_a_passkey_used_for_another_sign_in_does_not_approve_the_payment(
    op: OpenIdProvider, shop: Client, member: LiveMember
) -> None:
    """The session is at phr already (a step-up in another tab): the payment is still shown and signed."""
    member.step_up(shop, acr_values="phr")
    attempt = member.browser.authorize(shop, authorization_details=details(PAYMENT))
    assert offered(attempt.page) == {"passkey"} and shown(attempt.page) == ["Pay 120.00 EUR to ACME Ltd"]
    tokens = exchanged(op, attempt, approve_with_passkey(member, attempt.page))
    assert tokens["authorization_details"] == [PAYMENT]


def test_each_approval_is_of_its_own_sign_in(op: OpenIdProvider, shop: Client, member: LiveMember) -> None:
    """Two identical payments started at once: approving the first does not approve the second."""
    first = member.browser.authorize(shop, authorization_details=details(PAYMENT))
    second = member.browser.authorize(shop, authorization_details=details(PAYMENT))
    exchanged(op, first, approve_with_passkey(member, first.page))
    again = member.browser.visit(second.page.url)
    assert offered(again) == {"passkey"} and shown(again) == ["Pay 120.00 EUR to ACME Ltd"]


def test_a_reusable_type_without_a_level_of_its_own_is_approved_with_the_authenticator_app(
    op: OpenIdProvider, shop: Client, bank_api: Client, member: LiveMember
) -> None:
    attempt = member.browser.authorize(shop, authorization_details=details(REPORT))
    assert shown(attempt.page) == ["Read the report Q3 sales"] and "totp" in offered(attempt.page)
    assert member.account.authenticator is not None
    done = member.browser.submit_to(attempt.page, "/factor", code=member.account.authenticator.next_code())
    tokens = exchanged(op, attempt, done)
    assert unverified_claims(tokens["access_token"])["approval"]["one_time"] is False
    for _ in range(2):
        assert op.introspect(tokens["access_token"], resource_server=bank_api)["active"] is True


# -- tampering: the assertion signs what was shown, nothing else ---------------------------------------------


def passkey_options_of(member: LiveMember, page: requests.Response) -> tuple[dict[str, Any], str, str]:
    base = page.url.split("?")[0].removesuffix("/factor")
    csrf = page_csrf(page)
    options = post_json(member.browser, f"{base}/passkey/options", {}, csrf=csrf)
    assert options.status_code == 200, options.text
    return options.json(), base, csrf


def test_an_assertion_over_another_challenge_does_not_verify(
    shop: Client, member: LiveMember, live: LiveProvider
) -> None:
    """A compromised front end has the key sign other details (another challenge): refused."""
    attempt = member.browser.authorize(shop, authorization_details=details(PAYMENT))
    options, base, csrf = passkey_options_of(member, attempt.page)
    forged = {**options, "challenge": sha256_b64url(canonical({**PAYMENT, "amount": "9999.00"}) + b"n")}
    answer = post_json(
        member.browser, f"{base}/passkey", {"credential": member.passkey.get(forged)}, csrf=csrf
    )
    assert answer.status_code == 400, answer.text
    assert offered(member.browser.visit(attempt.page.url)) == {"passkey"}, "nothing was approved"


def test_details_changed_in_the_store_after_the_page_was_shown_no_longer_verify(
    shop: Client, member: LiveMember
) -> None:
    """The stored request's amount changed between the page and the assertion: the challenge is derived
    again from what is stored, and the assertion over what was shown does not match it."""
    attempt = member.browser.authorize(shop, authorization_details=details(PAYMENT))
    options, base, csrf = passkey_options_of(member, attempt.page)
    sign_in_id = urlsplit(base).path.rsplit("/", 1)[1]
    store = redis.Redis.from_url(E2E_REDIS_URL)
    key = f"{KEY_PREFIX}authz:{sign_in_id}"
    stored = json.loads(store.get(key) or b"{}")
    params = stored["destination"]["params"]
    params["authorization_details"] = params["authorization_details"].replace("120.00", "9999.00")
    store.set(key, json.dumps(stored), keepttl=True)
    credential = member.passkey.get(options)
    answer = post_json(member.browser, f"{base}/passkey", {"credential": credential}, csrf=csrf)
    assert answer.status_code == 400 and "changed" in answer.json()["error"], answer.text


# -- pushed requests carry details too -----------------------------------------------------------------------


def test_pushed_authorization_details_are_shown_and_granted(
    op: OpenIdProvider, shop: Client, member: LiveMember
) -> None:
    attempt = member.browser.authorize(shop, authorization_details=details(PAYMENT))  # for state and PKCE
    pushed = push(op, shop, attempt, details(PAYMENT))
    assert pushed.status_code == 201, pushed.text
    page = member.browser.visit(
        op.metadata["authorization_endpoint"],
        params={"client_id": shop.client_id, "request_uri": pushed.json()["request_uri"]},
    )
    assert shown(page) == ["Pay 120.00 EUR to ACME Ltd"]
    tokens = exchanged(op, attempt, approve_with_passkey(member, page))
    assert tokens["authorization_details"] == [PAYMENT]


def test_pushed_bad_details_are_refused_at_the_pushed_request_endpoint(
    live: LiveProvider, op: OpenIdProvider, shop: Client
) -> None:
    attempt = live_member(live, op, "pusher").browser.authorize(
        shop, authorization_details=details({"type": "x"})
    )
    refused = push(op, shop, attempt, details({"type": "x"}))
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_authorization_details"


def push(op: OpenIdProvider, shop: Client, attempt: Attempt, authorization_details: str) -> requests.Response:
    """A request with the attempt's state and PKCE, pushed by the client (RFC 9126)."""
    assert attempt.pkce is not None
    params = {
        "response_type": "code",
        "client_id": shop.client_id,
        "redirect_uri": shop.redirect_uri,
        "scope": "openid profile",
        "state": attempt.state,
        "code_challenge": attempt.pkce.challenge,
        "code_challenge_method": "S256",
        "authorization_details": authorization_details,
    }
    return requests.post(
        op.endpoint("pushed_authorization_request"), timeout=TIMEOUT, **shop.authenticated(params)
    )


def test_details_in_a_signed_request_object_are_a_json_array_claim(
    live: LiveProvider, op: OpenIdProvider, member: LiveMember, tmp_path: Path
) -> None:
    """RFC 9396 3: in a request object the details are JSON, not a string; they are shown and granted."""
    key = ClientKey.generate("ES256")
    signer = cli_client(live, "signer", "--jwks-file", str(key.write_jwks(tmp_path)))
    attempt = member.browser.authorize(signer, authorization_details=details(REPORT))  # state and PKCE
    assert attempt.pkce is not None
    claims = request_object_claims(
        {
            "response_type": "code",
            "client_id": signer.client_id,
            "redirect_uri": signer.redirect_uri,
            "scope": "openid",
            "state": attempt.state,
            "code_challenge": attempt.pkce.challenge,
            "code_challenge_method": "S256",
            "authorization_details": [PAYMENT],
        },
        issuer=op.issuer,
    )
    page = member.browser.visit(
        op.metadata["authorization_endpoint"],
        params={"client_id": signer.client_id, "request": key.sign(claims)},
    )
    assert shown(page) == ["Pay 120.00 EUR to ACME Ltd"] and offered(page) == {"passkey"}
    assert exchanged(op, attempt, approve_with_passkey(member, page))["authorization_details"] == [PAYMENT]


# -- single use, raced -------------------------------------------------------------------------------------


def test_concurrent_introspections_of_a_one_time_token_find_it_active_once(
    op: OpenIdProvider, shop: Client, bank_api: Client, member: LiveMember
) -> None:
    attempt = member.browser.authorize(shop, authorization_details=details(PAYMENT))
    token = exchanged(op, attempt, approve_with_passkey(member, attempt.page))["access_token"]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: op.introspect(token, resource_server=bank_api), range(8)))
    assert sum(answer["active"] for answer in answers) == 1


def test_the_code_of_an_approved_payment_is_redeemed_once(
    op: OpenIdProvider, shop: Client, member: LiveMember
) -> None:
    attempt = member.browser.authorize(shop, authorization_details=details(PAYMENT))
    done = approve_with_passkey(member, attempt.page)
    code = attempt.callback(done)["code"]
    assert op.exchange(attempt, code).status_code == 200
    assert op.exchange(attempt, code).status_code == 400
