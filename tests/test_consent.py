"""End to end: prompt=consent and prompt=select_account (OIDC Core 3.1.2.1, 3.1.2.4), with a relying
party on Authlib's requests client against a real provider on PostgreSQL and Redis.

A client registered with `--third-party` asks each user once (per scope) to allow it what it
requests; the answer is remembered per user and client, listed on the account page and removable
there. prompt=consent asks again, for any client. The provider keeps one account per browser
session, so prompt=select_account offers "Continue as <name>" or "Use another account", which ends
the session's proofs and starts at the password page. With prompt=none, whatever would need one of
these pages is the client's error instead: consent_required, account_selection_required.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from authlib.integrations.requests_client import OAuthError
from support.app import Browser as InProcessBrowser
from support.app import add_client, add_user, code_from, make_app
from support.authlib_rp import AuthlibRelyingParty, AuthorizationUrl
from support.live import LiveProvider, provider_on_real_stores
from support.oidc_client import (
    TIMEOUT,
    Account,
    Browser,
    Client,
    OpenIdProvider,
    create_account,
    forms_of,
    is_password_page,
    path_of,
)
from support.oidc_client import (
    register_client as register,
)

CONSENT_PAGE = re.compile(r"^/signin/[^/]+/consent$")
CHOICE_PAGE = re.compile(r"^/signin/[^/]+/account$")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    with provider_on_real_stores(tmp_path_factory.mktemp("consent"), database_prefix="idp_consent_") as live:
        yield live


@dataclass(frozen=True)
class Clients:
    own: Client  # the operator's own application: no consent unless prompt=consent
    partner: Client  # --third-party


@pytest.fixture(scope="module")
def clients(live: LiveProvider) -> Clients:
    return Clients(
        own=register(live, "own"),
        partner=register(
            live, "partner", "--third-party", "--scope", "openid", "--scope", "profile", "--scope", "email"
        ),
    )


@dataclass
class Person:
    """A user with their own browser, signed in (through the own application) once."""

    account: Account
    browser: Browser


@pytest.fixture
def person(live: LiveProvider, op: OpenIdProvider, clients: Clients) -> Person:
    account = create_account(live, "person")
    browser = Browser(op)
    own = AuthlibRelyingParty.of(op, clients.own)
    request = own.authorization_url()
    own.redeem(request, browser.pass_sign_in(browser.visit(request.url), account))
    return Person(account, browser)


def is_consent_page(page: requests.Response, client_name: str) -> bool:
    return bool(CONSENT_PAGE.match(path_of(page))) and f"<strong>{client_name}</strong> asks" in page.text


def is_choice_page(page: requests.Response, username: str) -> bool:
    return bool(CHOICE_PAGE.match(path_of(page))) and f"Continue as {username}" in page.text


def authorize(
    person: Person, rp: AuthlibRelyingParty, **params: str
) -> tuple[AuthorizationUrl, requests.Response]:
    request = rp.authorization_url(**params)
    return request, person.browser.visit(request.url)


# -- consent for a third-party client --------------------------------------------------------------


def test_a_third_party_client_asks_once_after_the_sign_in_and_is_remembered(
    live: LiveProvider, op: OpenIdProvider, clients: Clients
) -> None:
    account = create_account(live, "newcomer")
    browser = Browser(op)
    partner = AuthlibRelyingParty.of(op, clients.partner, scope="openid profile email")
    request = partner.authorization_url()

    asked = browser.pass_sign_in(browser.visit(request.url), account)

    assert is_consent_page(asked, "partner"), asked.text
    assert "Your user name" in asked.text and "Your email address" in asked.text
    tokens = partner.redeem(request, browser.submit(asked, decision="allow"))
    assert partner.session.get(op.endpoint("userinfo")).json()["email"] == f"{account.username}@example.test"
    assert "id_token" in tokens

    again = partner.authorization_url()
    assert partner.redeem(again, browser.visit(again.url))["access_token"], "remembered: no page this time"


def test_the_operators_own_client_does_not_ask(op: OpenIdProvider, clients: Clients, person: Person) -> None:
    own = AuthlibRelyingParty.of(op, clients.own)

    request, answer = authorize(person, own)

    assert own.redeem(request, answer)["access_token"]


def test_more_scopes_than_were_allowed_ask_again(
    op: OpenIdProvider, clients: Clients, person: Person
) -> None:
    narrow = AuthlibRelyingParty.of(op, clients.partner, scope="openid")
    request, asked = authorize(person, narrow)
    narrow.redeem(request, person.browser.submit(asked, decision="allow"))
    wide = AuthlibRelyingParty.of(op, clients.partner, scope="openid email")

    request, asked = authorize(person, wide)

    assert is_consent_page(asked, "partner") and "Your email address" in asked.text
    assert wide.redeem(request, person.browser.submit(asked, decision="allow"))["scope"] == "openid email"


@pytest.mark.parametrize("client", ["own", "partner"], ids=["the own client", "a third-party client"])
def test_prompt_consent_asks_again_even_when_consent_is_remembered(
    op: OpenIdProvider, clients: Clients, person: Person, client: str
) -> None:
    rp = AuthlibRelyingParty.of(op, getattr(clients, client))
    request, first = authorize(person, rp, prompt="consent")
    assert is_consent_page(first, client), "prompt=consent was ignored"
    rp.redeem(request, person.browser.submit(first, decision="allow"))

    request, again = authorize(person, rp, prompt="consent")

    assert is_consent_page(again, client)
    assert rp.redeem(request, person.browser.submit(again, decision="allow"))["access_token"]


def test_denying_consent_answers_access_denied_and_keeps_the_user_signed_in(
    op: OpenIdProvider, clients: Clients, person: Person
) -> None:
    partner = AuthlibRelyingParty.of(op, clients.partner)
    request, asked = authorize(person, partner)

    denied = partner.callback_params(person.browser.submit(asked, decision="deny"))

    assert denied["error"] == "access_denied" and denied["state"] == request.state
    assert denied["error_description"] == "The user did not allow this client access."
    own = AuthlibRelyingParty.of(op, clients.own)
    request, answer = authorize(person, own, prompt="none")
    assert own.redeem(request, answer)["access_token"], "still signed in"
    request, asked = authorize(person, partner)
    assert is_consent_page(asked, "partner"), "a refusal is not remembered as consent"


@pytest.mark.parametrize(
    ("prompt", "error"),
    [
        pytest.param("none", "consent_required", id="fails because the user has not allowed the client yet"),
        pytest.param("none consent", "consent_required", id="fails because consent needs a page"),
        pytest.param(
            "none select_account", "account_selection_required", id="fails because a choice needs a page"
        ),
        pytest.param("none login", "login_required", id="fails because signing in again needs a page"),
    ],
)
def test_prompt_none_answers_what_a_page_would_have_asked(
    op: OpenIdProvider, clients: Clients, person: Person, prompt: str, error: str
) -> None:
    partner = AuthlibRelyingParty.of(op, clients.partner)

    request, answer = authorize(person, partner, prompt=prompt)

    refused = partner.callback_params(answer)
    assert (refused["error"], refused["state"], refused["iss"]) == (error, request.state, op.issuer)
    assert "code" not in refused


# -- consent on the account page ----------------------------------------------------------------------


def test_consent_is_listed_on_the_account_page_and_removing_it_ends_the_clients_grants(
    op: OpenIdProvider, clients: Clients, person: Person
) -> None:
    partner = AuthlibRelyingParty.of(op, clients.partner, scope="openid profile")
    request, asked = authorize(person, partner)
    tokens = partner.redeem(request, person.browser.submit(asked, decision="allow"))

    listed = person.browser.visit(f"{op.issuer}/account/applications")
    assert path_of(listed) == "/account/applications" and "<strong>partner</strong>" in listed.text
    removed = person.browser.submit(listed)

    assert "partner no longer has access." in removed.text and "<strong>partner</strong>" not in removed.text
    with pytest.raises(OAuthError) as refused:
        partner.session.refresh_token(op.endpoint("token"), refresh_token=tokens["refresh_token"])
    assert refused.value.error == "invalid_grant"
    assert partner.session.get(op.endpoint("userinfo")).status_code == 401, "its access token is revoked"
    request, asked = authorize(person, partner)
    assert is_consent_page(asked, "partner"), "asked again"


def test_another_users_consent_cannot_be_removed(
    live: LiveProvider, op: OpenIdProvider, clients: Clients, person: Person
) -> None:
    partner = AuthlibRelyingParty.of(op, clients.partner)
    request, asked = authorize(person, partner)
    partner.redeem(request, person.browser.submit(asked, decision="allow"))
    stranger = Person(create_account(live, "stranger"), Browser(op))
    own = AuthlibRelyingParty.of(op, clients.own)
    stranger.browser.pass_sign_in(stranger.browser.visit(own.authorization_url().url), stranger.account)
    own_page = stranger.browser.visit(f"{op.issuer}/account")

    refused = stranger.browser.http.post(
        f"{op.issuer}/account/applications/{clients.partner.client_id}/remove",
        data={"csrf_token": forms_of(own_page)[0][1]["csrf_token"]},
        timeout=TIMEOUT,
    )

    assert "That application has no access." in refused.text

    request, answer = authorize(person, partner)
    assert partner.redeem(request, answer)["access_token"], "the person's consent is still remembered"


# -- consent: what an attacker would try ---------------------------------------------------------------


def test_another_browser_cannot_allow_a_victims_pending_consent(
    op: OpenIdProvider, clients: Clients, person: Person
) -> None:
    partner = AuthlibRelyingParty.of(op, clients.partner)
    _request, asked = authorize(person, partner)
    attacker = Browser(op)

    stolen = attacker.visit(asked.url)

    assert stolen.status_code == 400 and "Sign-in expired" in stolen.text
    spent = person.browser.submit(asked, decision="allow")
    assert spent.status_code == 400 and "Sign-in expired" in spent.text, "the sign-in was spent"
    listed = person.browser.visit(f"{op.issuer}/account/applications")
    assert "<strong>partner</strong>" not in listed.text, "no consent recorded"


def test_allowing_twice_at_once_issues_one_code(op: OpenIdProvider, clients: Clients, person: Person) -> None:
    partner = AuthlibRelyingParty.of(op, clients.partner)
    _request, asked = authorize(person, partner)
    action, fields = forms_of(asked)[0]

    def allow() -> requests.Response:
        return person.browser.http.post(
            action, data={**fields, "decision": "allow"}, allow_redirects=False, timeout=TIMEOUT
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: allow(), range(4)))

    assert all(answer.status_code < 500 for answer in answers)
    codes = [a for a in answers if a.is_redirect and "code=" in (a.headers.get("Location") or "")]
    assert len(codes) == 1, [a.status_code for a in answers]


def test_a_forged_decision_is_neither_allow_nor_deny(
    op: OpenIdProvider, clients: Clients, person: Person
) -> None:
    partner = AuthlibRelyingParty.of(op, clients.partner)
    _request, asked = authorize(person, partner)

    forged = person.browser.submit(asked, decision="allow-all")

    assert forged.status_code == 400 and is_consent_page(forged, "partner")


# -- prompt=select_account ------------------------------------------------------------------------------


def test_select_account_offers_to_continue_as_the_account_signed_in_here(
    op: OpenIdProvider, clients: Clients, person: Person
) -> None:
    own = AuthlibRelyingParty.of(op, clients.own)
    request, choice = authorize(person, own, prompt="select_account")

    assert is_choice_page(choice, person.account.username), "prompt=select_account was ignored"
    tokens = own.redeem(request, person.browser.submit(choice, choice="continue"))
    assert own.session.get(op.endpoint("userinfo")).json()["preferred_username"] == person.account.username
    assert tokens["access_token"]


def test_another_account_ends_the_sessions_proofs_and_starts_at_the_password_page(
    live: LiveProvider, op: OpenIdProvider, clients: Clients, person: Person
) -> None:
    own = AuthlibRelyingParty.of(op, clients.own)
    request, choice = authorize(person, own, prompt="select_account")

    password_page = person.browser.submit(choice, choice="another")

    assert is_password_page(password_page)
    _silent_request, silent = authorize(person, own, prompt="none")
    assert own.callback_params(silent)["error"] == "login_required", "the first account's proofs are gone"
    other = create_account(live, "other")
    own.redeem(request, person.browser.pass_sign_in(password_page, other))
    assert own.session.get(op.endpoint("userinfo")).json()["preferred_username"] == other.username


def test_select_account_without_an_account_here_starts_at_the_password_page(
    op: OpenIdProvider, clients: Clients
) -> None:
    own = AuthlibRelyingParty.of(op, clients.own)

    page = Browser(op).visit(own.authorization_url(prompt="select_account").url)

    assert is_password_page(page)


def test_another_browser_cannot_choose_for_a_victim(
    op: OpenIdProvider, clients: Clients, person: Person
) -> None:
    own = AuthlibRelyingParty.of(op, clients.own)
    _request, choice = authorize(person, own, prompt="select_account")

    stolen = Browser(op).visit(choice.url)

    assert stolen.status_code == 400 and "Sign-in expired" in stolen.text
    request, answer = authorize(person, own, prompt="none")
    assert own.redeem(request, answer)["access_token"], "the victim is still signed in"


# -- what relying parties and operators see -------------------------------------------------------------


def test_discovery_lists_every_prompt_value(op: OpenIdProvider) -> None:
    assert set(op.metadata["prompt_values_supported"]) == {"none", "login", "consent", "select_account"}


def test_the_cli_registers_and_lists_third_party_clients(live: LiveProvider, clients: Clients) -> None:
    assert "--third-party" in live.idp("clients", "create", "--help").stdout
    listed = {line.split("\t")[0]: line for line in live.idp("clients", "list").stdout.splitlines()}
    assert "third-party" in listed[clients.partner.client_id]
    assert "third-party" not in listed[clients.own.client_id]


# -- remembered for [consent] lifetime (in process, with a lifetime of two seconds) ----------------------


def test_a_consent_older_than_its_lifetime_is_asked_again_and_brings_back_none_of_its_scopes(
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path, consent={"lifetime": 2})
    add_user(app, "alice", PASSWORD)
    client_id, _secret = add_client(app, scope="openid profile email", third_party=True)
    browser = InProcessBrowser(app.test_client(), client_id)
    asked, _totp = browser.sign_in_with_enrolment("alice", PASSWORD)
    assert asked.request.path.endswith("/consent")
    code_from(browser.submit(asked, decision="allow"))  # openid profile, remembered for 2 s
    time.sleep(2.1)

    narrower = browser.authorize(scope="openid")

    assert narrower.request.path.endswith("/consent"), "forgotten after its lifetime: asked again"
    code_from(browser.submit(narrower, decision="allow"))
    wider = browser.authorize(scope="openid profile")
    assert wider.request.path.endswith("/consent"), "profile was allowed only by the forgotten consent"
