"""The acr contract end to end: a relying party built on Authlib against a live provider, over HTTP.

One `idp serve` (issuer http://localhost:PORT so passkeys work over HTTP, mail to its outbox, a
`payments:write` scope that demands phr) serves the module. Users are made with the real CLI and
sign in through the hosted pages; every answer is read three times, as the relying party and its
resource server see it: the ID token, the access token and introspection must say the same acr.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from support.attestation import Attester, CertificateAuthority
from support.authlib_rp import AuthlibRelyingParty
from support.live import LiveProvider, start_provider
from support.mailbox import Outbox, code_messages, latest_code
from support.oidc_client import TIMEOUT, Browser, OpenIdProvider
from support.soft_authenticator import SoftAuthenticator
from support.step_up import (
    LiveMember,
    add_passkey_over_http,
    bind_email_over_http,
    cli_client,
    live_member,
    offered,
    page_csrf,
    use_passkey_over_http,
)

MFA_URI = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
PAYMENTS = "payments:write"
PAYMENTS_POLICY = f'[scopes."{PAYMENTS}"]\nacr = "phr"\nmax_age = 300\n'
VENDOR = CertificateAuthority("Trusted Vendor")  # the provider trusts its attestation root


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    directory = tmp_path_factory.mktemp("acr")
    trusted = f'[webauthn]\nattestation_roots = "{VENDOR.write(directory / "roots").parent}"\n'
    provider = start_provider(directory, host="localhost", extra=PAYMENTS_POLICY + trusted)
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def rp(live: LiveProvider, op: OpenIdProvider) -> AuthlibRelyingParty:
    """A shop allowed the configured scope too; it introspects its own access tokens."""
    scopes = ("--scope", "openid", "--scope", "profile", "--scope", PAYMENTS)
    return AuthlibRelyingParty.of(op, cli_client(live, "shop", *scopes))


@pytest.fixture
def outbox(live: LiveProvider) -> Outbox:
    return Outbox(live.config.parent / "instance" / "outbox")


def signed_in(live: LiveProvider, op: OpenIdProvider, rp: AuthlibRelyingParty, role: str) -> LiveMember:
    """A new user's first sign-in (password, TOTP enrolled on the way) in their own user agent."""
    member = live_member(live, op, role)
    authorization = rp.authorize(member.browser)
    assert rp.finish(authorization, member.first_sign_in(authorization.page)).acr == ("mfa",) * 3
    return member


def with_passkey(
    live: LiveProvider, op: OpenIdProvider, rp: AuthlibRelyingParty, role: str, *, attested: bool
) -> LiveMember:
    """A signed-in user who then added a synced passkey, or a security key attested by VENDOR."""
    member = signed_in(live, op, rp, role)
    attester = Attester(VENDOR) if attested else None
    member.passkey = SoftAuthenticator(origin=live.issuer, backup_eligible=not attested, attester=attester)
    add_passkey_over_http(member.browser, member.passkey)
    return member


# -- 1. the order of acr_values never blocks a sign-in -------------------------------------------------


@pytest.mark.parametrize(
    ("acr_values", "answered"),
    [
        pytest.param("mfa phr", "mfa", id="mfa phr"),
        pytest.param("mfa phrh", "mfa", id="mfa phrh"),
        pytest.param(f"mfa {MFA_URI} phr phrh", "mfa", id="every advertised value, weakest first"),
        pytest.param(f"phrh phr {MFA_URI} mfa", MFA_URI, id="every advertised value, strongest first"),
    ],
)
def test_a_user_without_a_second_factor_enrols_totp_whatever_the_order_of_acr_values(
    live: LiveProvider, op: OpenIdProvider, rp: AuthlibRelyingParty, acr_values: str, answered: str
) -> None:
    newcomer = live_member(live, op, "newcomer")
    authorization = rp.authorize(newcomer.browser, acr_values=acr_values)
    done = newcomer.first_sign_in(authorization.page)  # the password, then TOTP enrolment: not unmet
    assert rp.finish(authorization, done).acr == (answered,) * 3


# -- 2. a value requested by its alias is answered with that alias ---------------------------------------


@pytest.mark.parametrize(
    "request_params",
    [
        pytest.param({"acr_values": MFA_URI}, id="acr_values"),
        pytest.param(
            {"claims": f'{{"id_token": {{"acr": {{"essential": true, "values": ["{MFA_URI}"]}}}}}}'},
            id="an essential acr claim",
        ),
    ],
)
def test_the_pape_alias_is_answered_as_the_pape_alias(
    live: LiveProvider, op: OpenIdProvider, rp: AuthlibRelyingParty, request_params: dict[str, str]
) -> None:
    member = signed_in(live, op, rp, "pape")
    authorization = rp.authorize(member.browser, **request_params)
    assert rp.finish(authorization, authorization.page).acr == (MFA_URI,) * 3


# -- 3. acr is the level reached --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attested", "request_params", "answered"),
    [
        pytest.param(False, {}, "phr", id="no acr_values: a synced passkey says phr"),
        pytest.param(True, {}, "phrh", id="no acr_values: an attested key says phrh"),
        pytest.param(False, {"acr_values": "mfa phr"}, "mfa", id="mfa phr: the first value satisfied"),
        pytest.param(True, {"acr_values": "phr phrh"}, "phr", id="phr phrh: the first value satisfied"),
    ],
)
def test_a_passkey_sign_in_answers_the_level_it_reached_or_the_first_value_it_satisfies(
    live: LiveProvider,
    op: OpenIdProvider,
    rp: AuthlibRelyingParty,
    attested: bool,
    request_params: dict[str, str],
    answered: str,
) -> None:
    member = with_passkey(live, op, rp, "keyholder", attested=attested)
    elsewhere = Browser(op)  # another user agent: no session, the passkey alone on the first page
    authorization = rp.authorize(elsewhere, **request_params)
    done = use_passkey_over_http(elsewhere, authorization.page, member.passkey)
    assert rp.finish(authorization, done).acr == (answered,) * 3


# -- 4. discovery tells relying parties what they can ask for ------------------------------------------


def test_discovery_lists_the_configured_scope_and_the_alias_and_a_client_gets_both(
    live: LiveProvider, op: OpenIdProvider, rp: AuthlibRelyingParty
) -> None:
    assert PAYMENTS in op.metadata["scopes_supported"]
    assert {"openid", "profile", "email"} <= set(op.metadata["scopes_supported"])
    assert op.metadata["acr_values_supported"] == ["mfa", MFA_URI, "phr", "phrh"]
    member = with_passkey(live, op, rp, "payer", attested=False)
    authorization = rp.authorize(member.browser, scope=f"openid {PAYMENTS}")
    assert offered(authorization.page) == {"passkey"}, "the scope's policy asks for phr"
    answered = rp.finish(
        authorization, use_passkey_over_http(member.browser, authorization.page, member.passkey)
    )
    assert answered.acr == ("phr",) * 3 and PAYMENTS in answered.access_token["scope"].split()


# -- 5. a weaker factor never refreshes a stronger level -------------------------------------------------


@dataclass(frozen=True)
class Mailed:
    """A member with TOTP, a passkey and a verified address, who reached phr with the passkey."""

    member: LiveMember
    address: str


@pytest.fixture
def mailed(live: LiveProvider, op: OpenIdProvider, rp: AuthlibRelyingParty, outbox: Outbox) -> Mailed:
    member = with_passkey(live, op, rp, "mailed", attested=False)
    address = f"{member.account.username}@mail.example"
    bind_email_over_http(member.browser, outbox, address)
    authorization = rp.authorize(member.browser, acr_values="phr")
    done = use_passkey_over_http(member.browser, authorization.page, member.passkey)
    assert rp.finish(authorization, done).acr == ("phr",) * 3
    return Mailed(member, address)


def test_an_emailed_code_cannot_refresh_phr_even_when_posted_without_being_offered(
    rp: AuthlibRelyingParty, outbox: Outbox, mailed: Mailed
) -> None:
    browser, passkey = mailed.member.browser, mailed.member.passkey
    requested_at = int(time.time())
    authorization = rp.authorize(browser, acr_values="phr", max_age="0")
    page = authorization.page
    assert offered(page) == {"passkey"}, "a fresh phr needs the key again: no code is offered"
    mailed_before = len(code_messages(outbox))
    forced = browser.settle(
        browser.http.post(
            page.url.removesuffix("/factor") + "/email/send",
            data={"csrf_token": page_csrf(page)},
            allow_redirects=False,
            timeout=TIMEOUT,
        )
    )
    assert len(code_messages(outbox)) == mailed_before, "no code is sent for a level it cannot refresh"
    assert offered(forced) == {"passkey"}, "still only the key will do"
    answered = rp.finish(authorization, use_passkey_over_http(browser, forced, passkey))
    assert answered.acr == ("phr",) * 3 and answered.id_token["auth_time"] >= requested_at


def test_an_emailed_code_still_refreshes_mfa_after_the_password(
    rp: AuthlibRelyingParty, outbox: Outbox, mailed: Mailed
) -> None:
    browser = mailed.member.browser
    authorization = rp.authorize(browser, acr_values="mfa", max_age="0")
    assert offered(authorization.page) == {"passkey", "totp", "email_code", "recovery_code"}
    sent = browser.submit_to(authorization.page, "/email/send")
    done = browser.submit_to(sent, "/email", email_code=latest_code(outbox, to=mailed.address))
    answered = rp.finish(authorization, done)
    assert answered.acr == ("mfa",) * 3 and "email" in answered.id_token["amr"]
