"""Step-up: relying parties demand a stronger or fresher authentication than the session holds.

In process, through the hosted pages: acr_values, the claims parameter, max_age, a scope's policy and
a client's defaults each make the provider ask for only what is missing (the passkey, not the
password again); levels decay after their ttl; an essential level the account cannot reach is refused,
or offers passkey enrolment when policy allows; and every token says how the user authenticated.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from support.app import add_client, make_app, meta_csrf_token
from support.soft_authenticator import SoftAuthenticator
from support.step_up import (
    Member,
    RelyingParty,
    age_proofs,
    callback_params,
    header_of,
    is_factor_page,
    is_password_page,
    lead,
    member,
    offered,
    pending_id,
)

ISSUER = "http://localhost:8000"
PAYMENTS = "payments:write"
SCOPE_RULES = {PAYMENTS: {"acr": "phr", "max_age": 300}}
PHR_TTL = 900  # the default [assurance.levels.phr] ttl
MFA_TTL = 43200
ESSENTIAL_PHR = json.dumps({"id_token": {"acr": {"essential": True, "values": ["phr"]}}})
VOLUNTARY_PHR = json.dumps({"id_token": {"acr": {"values": ["phr"]}}})


@dataclass(frozen=True)
class Clients:
    """Two relying parties of one provider whose payments:write scope demands phr within 300 s."""

    app: Flask
    shop: RelyingParty  # allowed payments:write; asks for nothing by default
    bank: RelyingParty  # registered with default_acr_values = ["phr"]

    def by_name(self, name: str) -> RelyingParty:
        relying_party: RelyingParty = getattr(self, name)
        return relying_party


def clients_of(app: Flask) -> Clients:
    shop = RelyingParty(app, *add_client(app, name="Shop", scope=f"openid profile {PAYMENTS}"))
    bank = RelyingParty(app, *add_client(app, name="Bank", default_acr_values=["phr"]))
    return Clients(app, shop, bank)


@pytest.fixture
def clients(tmp_path: Path) -> Clients:
    return clients_of(make_app(tmp_path, scopes=SCOPE_RULES))


@pytest.fixture
def enrolling(tmp_path: Path) -> Clients:
    """A provider that lets a user create a passkey when a client insists on phr."""
    return clients_of(make_app(tmp_path, scopes=SCOPE_RULES, assurance={"enrol_at_step_up": ["webauthn"]}))


def with_passkey(clients: Clients, username: str = "alice") -> Member:
    return member(clients.shop, username, passkey=SoftAuthenticator())


# -- stepping up from an MFA session -----------------------------------------------------------------


def test_acr_values_phr_after_a_totp_sign_in_asks_for_the_passkey_alone_and_yields_phr(
    clients: Clients,
) -> None:
    alice = with_passkey(clients)
    age_proofs(alice.browser, seconds=120)  # she signed in with password + TOTP two minutes ago
    before = alice.silently()
    assert before["acr"] == "mfa" and before["amr"] == ["pwd", "otp", "mfa"]

    page = alice.authorize(acr_values="phr")
    assert is_factor_page(page) and not is_password_page(page)
    assert offered(page) == {"passkey"}, "only what is missing: no password, no TOTP code"
    claims = alice.id_token(alice.use_passkey(page))
    assert claims["acr"] == "phr"
    assert claims["auth_time"] > before["auth_time"], "the passkey was just used"
    assert {"swk", "user", "mfa"} <= set(claims["amr"]) and "otp" not in claims["amr"]
    assert claims["amr"] == ["pwd", "swk", "user", "mfa"], (
        "the way used: the session's password + the passkey"
    )


def test_max_age_zero_asks_for_the_second_factor_again_every_time_never_the_password(
    clients: Clients,
) -> None:
    alice = member(clients.shop, "alice")
    auth_times = []
    for _ in range(2):
        requested_at = int(time.time())
        page = alice.authorize(max_age="0")
        assert is_factor_page(page) and offered(page) == {"totp", "recovery_code"}
        claims = alice.id_token(alice.enter_code(page))
        assert claims["acr"] == "mfa" and claims["auth_time"] >= requested_at
        auth_times.append(claims["auth_time"])
    assert auth_times == sorted(auth_times)


@pytest.mark.parametrize(
    ("default_max_age", "params", "asks_again"),
    [
        (0, {}, True),
        (3600, {"max_age": "0"}, True),
        (0, {"max_age": "3600"}, True),
        (3600, {}, False),
    ],
    ids=[
        "the client's default_max_age=0 makes every request re-prove",
        "the request's max_age=0 is stricter than the client's default",
        "the client's default_max_age=0 is stricter than the request's max_age",
        "a sign-in younger than the client's default_max_age is enough",
    ],
)
def test_the_smallest_of_the_requests_and_the_clients_max_age_wins(
    clients: Clients, default_max_age: int, params: dict[str, str], asks_again: bool
) -> None:
    console = RelyingParty(
        clients.app, *add_client(clients.app, name="Console", default_max_age=default_max_age)
    )
    alice = member(clients.shop, "alice")
    page = alice.authorize(console, **params)
    if asks_again:
        assert is_factor_page(page) and offered(page) == {"totp", "recovery_code"}
        page = alice.enter_code(page)
    assert alice.id_token(page, console)["acr"] == "mfa"


@dataclass(frozen=True)
class Ask:
    """One way for a relying party to demand phr: its request parameters, and which client sends them."""

    client: str
    params: dict[str, str]
    client_name: str
    answered: str = "phr"  # the ID token's acr: as requested, else the strongest level reached


ASKS_FOR_PHR = [
    pytest.param(Ask("shop", {"acr_values": "phr"}, "Shop"), id="acr_values names phr"),
    pytest.param(
        Ask("shop", {"claims": ESSENTIAL_PHR}, "Shop"), id="the claims parameter makes phr essential"
    ),
    pytest.param(
        Ask("shop", {"claims": VOLUNTARY_PHR}, "Shop"), id="the claims parameter asks for phr voluntarily"
    ),
    pytest.param(
        Ask("shop", {"scope": f"openid {PAYMENTS}"}, "Shop"), id="the payments:write scope's policy"
    ),
    pytest.param(
        Ask("shop", {"scope": f"openid {PAYMENTS}", "acr_values": "mfa"}, "Shop"),
        id="the scope's phr wins over acr_values=mfa (strictest wins)",
    ),
    pytest.param(Ask("bank", {}, "Bank"), id="the client's default_acr_values"),
    pytest.param(
        Ask("bank", {"acr_values": "mfa"}, "Bank"), id="the client's default phr wins over acr_values=mfa"
    ),
]


@pytest.mark.parametrize("ask", ASKS_FOR_PHR)
def test_every_way_of_demanding_phr_shows_the_passkey_alone_naming_the_client_and_level(
    clients: Clients, ask: Ask
) -> None:
    alice = with_passkey(clients)
    relying_party = clients.by_name(ask.client)
    page = alice.authorize(relying_party, **ask.params)
    assert is_factor_page(page) and offered(page) == {"passkey"}
    assert lead(page) == f"{ask.client_name} asks for a passkey or security key."
    claims = alice.id_token(alice.use_passkey(page), relying_party)
    assert claims["acr"] == "phr" and claims["aud"] == [relying_party.client_id]


def test_the_second_factor_page_at_mfa_says_a_second_factor_is_asked_for(clients: Clients) -> None:
    alice = member(clients.shop, "alice")
    page = alice.authorize(max_age="0")
    assert lead(page) == "Shop asks for a second factor."


@pytest.mark.parametrize(
    ("path", "field", "status"),
    [("/signin/{pending}/factor", "code", 200), ("/signin/{pending}/recovery", "recovery_code", 302)],
    ids=["fails because a TOTP code is not a passkey", "fails because a recovery code is not a passkey"],
)
def test_a_weaker_factor_posted_to_a_phr_step_proves_nothing(
    clients: Clients, path: str, field: str, status: int
) -> None:
    alice = with_passkey(clients)
    page = alice.authorize(acr_values="phr")
    posted = alice.browser.client.post(
        path.format(pending=pending_id(page)),
        data={"csrf_token": meta_csrf_token(page), field: alice.totp.code()},
    )
    assert posted.status_code == status
    again = alice.browser.follow(alice.browser.client.get(f"/authorize/resume/{pending_id(page)}"))
    assert is_factor_page(again) and offered(again) == {"passkey"}, "still only the passkey will do"


def test_the_scope_policy_max_age_asks_for_the_passkey_again_though_phr_is_still_held(
    clients: Clients,
) -> None:
    alice = with_passkey(clients)
    alice.id_token(alice.use_passkey(alice.authorize(acr_values="phr")))
    age_proofs(alice.browser, seconds=400)  # within phr's ttl, beyond payments:write's max_age of 300 s
    assert alice.silently(acr_values="phr")["acr"] == "phr"
    page = alice.authorize(scope=f"openid {PAYMENTS}")
    assert offered(page) == {"passkey"}
    claims = alice.id_token(alice.use_passkey(page))
    assert claims["acr"] == "phr" and time.time() - claims["auth_time"] < 5


# -- a level lasts its ttl -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "acr"),
    [(PHR_TTL - 60, "phr"), (PHR_TTL + 60, "mfa")],
    ids=["phr is still held within its 900 s ttl", "phr decayed after its ttl: the session holds mfa only"],
)
def test_a_silent_request_for_phr_or_mfa_gets_the_strongest_level_still_held(
    clients: Clients, age: int, acr: str
) -> None:
    alice = with_passkey(clients)
    alice.id_token(alice.use_passkey(alice.authorize(acr_values="phr")))
    age_proofs(alice.browser, seconds=age)
    assert alice.silently(acr_values="phr mfa")["acr"] == acr


def test_after_the_mfa_ttl_a_silent_request_gets_login_required(clients: Clients) -> None:
    alice = member(clients.shop, "alice")
    age_proofs(alice.browser, seconds=MFA_TTL + 60)
    answer = callback_params(alice.authorize(prompt="none"))
    assert answer["error"] == "login_required" and answer["state"] == "xyz"


# -- an account that cannot reach the level ------------------------------------------------------------


def test_phr_asked_for_voluntarily_from_an_account_without_a_passkey_gives_mfa(clients: Clients) -> None:
    alice = member(clients.shop, "alice")
    assert alice.id_token(alice.authorize(acr_values="phr"))["acr"] == "mfa"


DEMANDS_PHR = [
    pytest.param(Ask("shop", {"claims": ESSENTIAL_PHR}, "Shop"), id="phr is essential"),
    pytest.param(
        Ask("shop", {"scope": f"openid {PAYMENTS}"}, "Shop"),
        id="the payments:write scope demands phr (none requested: the strongest level reached is answered)",
    ),
    pytest.param(
        Ask("bank", {}, "Bank"),
        id="the client's default_acr_values demand phr",
    ),
]


@pytest.mark.parametrize("ask", DEMANDS_PHR)
def test_a_demanded_phr_the_account_cannot_reach_is_unmet_when_enrolment_is_off(
    clients: Clients, ask: Ask
) -> None:
    alice = member(clients.shop, "alice")
    answer = callback_params(alice.authorize(clients.by_name(ask.client), **ask.params))
    assert answer["error"] == "unmet_authentication_requirements"
    assert answer["state"] == "xyz" and answer["iss"] == ISSUER
    assert "code" not in answer


def enrol_passkey_in_sign_in(alice: Member, page: Any, passkey: SoftAuthenticator) -> Any:
    """What webauthn.js does on the sign-in's passkey enrolment page; returns where it leads."""
    assert page.request.path == f"/signin/{pending_id(page)}/enrol/passkey", page.request.path
    csrf = meta_csrf_token(page)
    base = f"/signin/{pending_id(page)}/enrol/passkey"
    options = alice.browser.post_json(f"{base}/options", {}, csrf=csrf)
    assert options.status_code == 200, options.get_data(as_text=True)
    created = alice.browser.post_json(base, {"credential": passkey.create(options.get_json())}, csrf=csrf)
    assert created.status_code == 200, created.get_data(as_text=True)
    alice.passkey = passkey
    return alice.browser.follow(alice.browser.client.get(created.get_json()["redirect"]))


@pytest.mark.parametrize("ask", DEMANDS_PHR)
def test_a_demanded_phr_offers_passkey_enrolment_then_asks_for_the_new_passkey(
    enrolling: Clients, ask: Ask
) -> None:
    alice = member(enrolling.shop, "alice")
    relying_party = enrolling.by_name(ask.client)
    page = alice.authorize(relying_party, **ask.params)
    assert lead(page).startswith(f"{ask.client_name} asks for a passkey or security key. Create one now")
    assertion_step = enrol_passkey_in_sign_in(alice, page, SoftAuthenticator(backup_eligible=False))
    assert is_factor_page(assertion_step) and offered(assertion_step) == {"passkey"}, "creating is not using"
    claims = alice.id_token(alice.use_passkey(assertion_step), relying_party)
    assert claims["acr"] == ask.answered and claims["amr"] == ["pwd", "swk", "user", "mfa"]


def test_passkey_enrolment_at_step_up_needs_a_fresh_second_factor_first(enrolling: Clients) -> None:
    alice = member(enrolling.shop, "alice")
    age_proofs(alice.browser, seconds=400)  # older than the 300 s allowed for adding a factor
    page = alice.authorize(claims=ESSENTIAL_PHR)
    assert is_factor_page(page) and offered(page) == {"totp", "recovery_code"}
    enrolment = alice.enter_code(page)
    assertion_step = enrol_passkey_in_sign_in(alice, enrolment, SoftAuthenticator())
    assert alice.id_token(alice.use_passkey(assertion_step))["acr"] == "phr"


# -- tokens carry the authentication they were issued for ----------------------------------------------


def test_the_access_token_is_an_at_jwt_carrying_acr_amr_and_auth_time_and_introspection_agrees(
    clients: Clients,
) -> None:
    alice = with_passkey(clients)
    tokens = alice.tokens(alice.use_passkey(alice.authorize(acr_values="phr")))
    id_claims = alice.browser.id_token_claims(tokens["id_token"])
    header = header_of(tokens["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    access = access_claims(clients.app, tokens["access_token"])
    authentication = {name: id_claims[name] for name in ("acr", "amr", "auth_time", "sid")}
    assert {name: access[name] for name in authentication} == authentication
    assert access["acr"] == "phr"
    introspected = clients.shop.introspect(tokens["access_token"])
    assert introspected["active"] is True
    assert {name: introspected[name] for name in authentication} == authentication


def access_claims(app: Flask, token: str) -> dict[str, Any]:
    """The access token verified against the published JWKS, as a resource server would."""
    keys = jwt.PyJWKSet.from_dict(app.test_client().get("/jwks.json").get_json())
    key = keys[header_of(token)["kid"]]
    claims: dict[str, Any] = jwt.decode(
        token, key=key, algorithms=[key.algorithm_name], options={"verify_aud": False}, issuer=ISSUER
    )
    return claims


def test_a_refresh_keeps_the_authentication_of_its_grant_even_after_the_session_steps_up(
    clients: Clients,
) -> None:
    alice = with_passkey(clients)
    age_proofs(alice.browser, seconds=120)
    at_mfa = alice.tokens(alice.authorize(prompt="none"))
    at_phr = alice.tokens(alice.use_passkey(alice.authorize(acr_values="phr")))
    mfa_auth_time = access_claims(clients.app, at_mfa["access_token"])["auth_time"]

    refreshed = clients.shop.refresh(at_mfa["refresh_token"])
    claims = access_claims(clients.app, refreshed["access_token"])
    assert claims["acr"] == "mfa" and claims["auth_time"] == mfa_auth_time, "not the session's new phr"
    assert clients.shop.introspect(refreshed["access_token"])["acr"] == "mfa"
    assert clients.shop.introspect(refreshed["refresh_token"])["acr"] == "mfa"

    stepped_up = access_claims(clients.app, clients.shop.refresh(at_phr["refresh_token"])["access_token"])
    assert stepped_up["acr"] == "phr" and stepped_up["auth_time"] > mfa_auth_time
