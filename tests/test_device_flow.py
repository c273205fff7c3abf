"""End to end: the device authorization grant (RFC 8628) over HTTP against a live provider on PostgreSQL
and Redis. The device is `requests` at the device authorization and token endpoints; the user is a
second user agent (support.oidc_client.Browser) at /device and the hosted sign-in pages.

Attacks tried: polling too fast, redeeming an approved code twice (also at once), another client
polling a device code, guessing user codes, finishing someone's approval in another browser, a late
code, a form posted without its CSRF token.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from support.device_flow import (
    DEVICE_GRANT,
    approve,
    confirm_page,
    error_of,
    id_token_claims,
    poll,
    request_device_authorization,
    start,
)
from support.live import LiveProvider, provider_on_real_stores, start_provider
from support.oidc_client import (
    TIMEOUT,
    Browser,
    Client,
    OpenIdProvider,
    create_account,
    is_password_page,
    path_of,
    register_client,
)

USER_CODE = re.compile(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}")
POLL_INTERVAL = 1
SIGN_INS_PER_ADDRESS = 6  # on the strict provider


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    extra = f'[device]\npoll_interval = {POLL_INTERVAL}\n[scopes."deploy"]\nacr = "phr"\n'
    with provider_on_real_stores(
        tmp_path_factory.mktemp("device"), database_prefix="idp_device_", extra=extra
    ) as live:
        yield live


@dataclass(frozen=True)
class Devices:
    cli: Client  # public, device grant only
    tool: Client  # confidential, device grant and refresh tokens
    web: Client  # an ordinary web application: no device grant


@pytest.fixture(scope="module")
def devices(live: LiveProvider) -> Devices:
    return Devices(
        cli=register_client(live, "cli", "--public", "--grant-type", DEVICE_GRANT, redirect=False),
        tool=register_client(
            live, "tool", "--grant-type", DEVICE_GRANT, "--grant-type", "refresh_token", redirect=False
        ),
        web=register_client(live, "web"),
    )


# -- the device authorization endpoint ------------------------------------------------------------


def test_discovery_names_the_device_authorization_endpoint_and_grant(
    op: OpenIdProvider, live: LiveProvider
) -> None:
    assert op.metadata["device_authorization_endpoint"] == f"{live.issuer}/device_authorization"
    assert DEVICE_GRANT in op.metadata["grant_types_supported"]


def test_the_codes_a_device_gets(op: OpenIdProvider, devices: Devices, live: LiveProvider) -> None:
    started = start(op, devices.cli)
    assert USER_CODE.fullmatch(started.user_code), started.user_code
    assert len(started.device_code) >= 40
    assert started.answer["verification_uri"] == f"{live.issuer}/device"
    complete = urlsplit(started.answer["verification_uri_complete"])
    assert f"{complete.scheme}://{complete.netloc}{complete.path}" == f"{live.issuer}/device"
    assert parse_qs(complete.query) == {"user_code": [started.user_code]}
    assert started.answer["expires_in"] == 600 and started.answer["interval"] == POLL_INTERVAL
    assert start(op, devices.cli).user_code != started.user_code


@pytest.mark.parametrize(
    ("case", "form", "error"),
    [
        ("fails because the client is not registered for the device grant", {}, "unauthorized_client"),
        ("fails because max_age is not a number", {"max_age": "soon"}, "invalid_request"),
    ],
    ids=lambda value: value if isinstance(value, str) and value.startswith("fails") else "",
)
def test_device_authorization_refusals(
    op: OpenIdProvider, devices: Devices, case: str, form: dict[str, str], error: str
) -> None:
    client = devices.web if error == "unauthorized_client" else devices.cli
    assert error_of(request_device_authorization(op, client, **form)) == error, case


def test_a_poll_without_a_device_code_is_invalid_request(op: OpenIdProvider, devices: Devices) -> None:
    response = op.token(devices.cli, grant_type=DEVICE_GRANT)
    assert error_of(response) == "invalid_request"
    assert response.json()["error_description"] == "The request has no device code."


def test_a_confidential_device_client_must_authenticate(op: OpenIdProvider, devices: Devices) -> None:
    wrong = devices.tool.with_secret("not-the-secret")
    response = request_device_authorization(op, wrong)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"


# -- polling -------------------------------------------------------------------------------------


def test_polling_too_fast_slows_the_device_down_by_five_seconds(op: OpenIdProvider, devices: Devices) -> None:
    started = start(op, devices.cli)
    assert error_of(poll(op, started)) == "authorization_pending"
    assert error_of(poll(op, started)) == "slow_down"
    time.sleep(POLL_INTERVAL + 1)  # the old interval is not enough any more: 5 s more again
    assert error_of(poll(op, started)) == "slow_down"
    time.sleep(POLL_INTERVAL + 2 * 5 + 0.5)  # a device that waits as told polls again
    assert error_of(poll(op, started)) == "authorization_pending"


def test_an_approved_device_gets_tokens_with_acr_and_amr_once(
    op: OpenIdProvider, devices: Devices, live: LiveProvider
) -> None:
    started = start(op, devices.cli)
    assert error_of(poll(op, started)) == "authorization_pending"
    account = create_account(live, "device")
    approve(Browser(op), started, account)
    issued = poll(op, started)
    assert issued.status_code == 200, issued.text
    tokens = issued.json()
    assert "refresh_token" not in tokens  # the client is not registered for refresh tokens
    claims = op.verify_access_token(tokens["access_token"], expected_audience=devices.cli.client_id)
    assert claims["acr"] == "mfa" and set(claims["amr"]) >= {"pwd", "otp", "mfa"}
    assert abs(claims["auth_time"] - time.time()) < 60
    assert claims["scope"] == "openid profile"
    identity = id_token_claims(op, tokens["id_token"], expected_audience=devices.cli.client_id)
    assert identity["sub"] == claims["sub"] and identity["preferred_username"] == account.username
    assert (identity["acr"], identity["amr"], identity["auth_time"]) == (
        claims["acr"],
        claims["amr"],
        claims["auth_time"],
    )
    assert identity["sid"] and "nonce" not in identity
    assert op.userinfo(tokens["access_token"]).json()["preferred_username"] == account.username
    assert error_of(poll(op, started)) == "invalid_grant"
    approvals = [event for event in live.audit_events("sign_in") if event.client_id == devices.cli.client_id]
    assert approvals and approvals[-1].outcome == "success" and approvals[-1].detail["acr"] == "mfa"


def test_concurrent_polls_of_an_approved_code_get_tokens_once(
    op: OpenIdProvider, devices: Devices, live: LiveProvider
) -> None:
    started = start(op, devices.cli)
    approve(Browser(op), started, create_account(live, "race"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: poll(op, started), range(8)))
    assert sorted(answer.status_code for answer in answers) == [200] + [400] * 7
    assert {answer.json()["error"] for answer in answers if answer.status_code == 400} == {"invalid_grant"}


def test_another_client_cannot_poll_a_device_code_and_leaves_it_to_its_own(
    op: OpenIdProvider, devices: Devices, live: LiveProvider
) -> None:
    started = start(op, devices.tool)
    other = register_client(live, "other-cli", "--public", "--grant-type", DEVICE_GRANT, redirect=False)
    assert error_of(poll(op, started, client=other)) == "invalid_grant"
    approve(Browser(op), started, create_account(live, "theirs"))
    assert error_of(poll(op, started, client=other)) == "invalid_grant"
    issued = poll(op, started)
    assert issued.status_code == 200, issued.text
    refreshed = op.refresh(devices.tool, issued.json()["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    claims = op.verify_access_token(
        refreshed.json()["access_token"], expected_audience=devices.tool.client_id
    )
    assert claims["acr"] == "mfa"


def test_a_devices_refresh_token_ends_with_the_browser_session_that_approved_it(
    op: OpenIdProvider, devices: Devices, live: LiveProvider
) -> None:
    started = start(op, devices.tool)
    browser = Browser(op)
    approve(browser, started, create_account(live, "signs-out"))
    tokens = poll(op, started).json()
    refreshed = op.refresh(devices.tool, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    signed_out = browser.visit(op.endpoint("end_session"), params={"id_token_hint": tokens["id_token"]})
    assert signed_out.status_code == 200 and "signed out" in signed_out.text.lower(), signed_out.text
    assert error_of(op.refresh(devices.tool, refreshed.json()["refresh_token"])) == "invalid_grant"


def test_a_denied_device_hears_access_denied_and_its_code_is_spent(
    op: OpenIdProvider, devices: Devices
) -> None:
    started = start(op, devices.cli)
    browser = Browser(op)
    confirm = confirm_page(browser, started.user_code.lower().replace("-", " "))
    assert confirm.status_code == 200
    assert "cli" in confirm.text and started.user_code in confirm.text
    assert "Know that you are signed in" in confirm.text and "Your user name" in confirm.text
    denied = browser.submit(confirm, decision="deny")
    assert denied.status_code == 200 and "Device denied" in denied.text
    assert error_of(poll(op, started)) == "access_denied"
    assert error_of(poll(op, started)) == "access_denied"
    again = confirm_page(Browser(op), started.user_code)
    assert again.status_code == 400 and "not valid or has expired" in again.text


def test_a_scope_whose_policy_the_user_cannot_meet_denies_the_device(
    op: OpenIdProvider, live: LiveProvider
) -> None:
    """[scopes."deploy"] acr = "phr": a user without a passkey cannot approve a device asking for it."""
    deployer = register_client(
        live,
        "deployer",
        "--public",
        "--grant-type",
        DEVICE_GRANT,
        "--scope",
        "openid",
        "--scope",
        "deploy",
        redirect=False,
    )
    started = start(op, deployer, scope="openid deploy")
    browser = Browser(op)
    confirm = confirm_page(browser, started.user_code)
    assert "deploy" in confirm.text
    page = browser.submit(confirm, decision="allow")
    account = create_account(live, "no-passkey")
    refused = browser.submit(page, username=account.username, password=account.password)
    assert refused.status_code == 403 and "cannot reach the phr level" in refused.text, refused.text
    assert error_of(poll(op, started)) == "access_denied"


def test_an_approval_cannot_be_finished_in_another_browser(
    op: OpenIdProvider, devices: Devices, live: LiveProvider
) -> None:
    started = start(op, devices.cli)
    victim = Browser(op)
    signing_in = victim.submit(confirm_page(victim, started.user_code), decision="allow")
    assert is_password_page(signing_in)
    attacker = Browser(op)
    stolen = attacker.visit(signing_in.url)
    assert stolen.status_code == 400 and "Sign-in expired" in stolen.text
    account = create_account(live, "bound")
    spent = victim.submit(signing_in, username=account.username, password=account.password)
    assert spent.status_code == 400 and "Sign-in expired" in spent.text
    assert error_of(poll(op, started)) == "authorization_pending"


def test_the_code_form_refuses_a_post_without_its_csrf_token(op: OpenIdProvider, devices: Devices) -> None:
    started = start(op, devices.cli)
    forged = requests.post(
        f"{op.issuer}/device", data={"user_code": started.user_code, "decision": "deny"}, timeout=TIMEOUT
    )
    assert forged.status_code == 400
    assert error_of(poll(op, started)) == "authorization_pending"


# -- late codes and guessed codes (a provider of their own: short lifetimes, a strict guard) ---------


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    extra = (
        "[device]\ncode_lifetime = 10\npoll_interval = 1\n"
        "[throttle.user_code_address]\nfree_attempts = 3\nbase_delay = 60\nmax_delay = 60\n"
        f"[address_limits]\nsign_ins = {SIGN_INS_PER_ADDRESS}\naudited_failures = 1000000\n"
    )
    provider = start_provider(tmp_path_factory.mktemp("device-strict"), extra=extra)
    try:
        yield provider
    finally:
        provider.stop()


def test_an_expired_device_code_hears_expired_token(strict: LiveProvider) -> None:
    op = OpenIdProvider(strict.issuer)
    cli = register_client(strict, "late-cli", "--public", "--grant-type", DEVICE_GRANT, redirect=False)
    started = start(op, cli)
    time.sleep(10.5)
    assert error_of(poll(op, started)) == "expired_token"
    late = confirm_page(Browser(op), started.user_code)
    assert late.status_code == 400 and "not valid or has expired" in late.text


def test_guessing_user_codes_is_throttled_even_for_the_right_code(strict: LiveProvider) -> None:
    op = OpenIdProvider(strict.issuer)
    cli = register_client(strict, "guessed-cli", "--public", "--grant-type", DEVICE_GRANT, redirect=False)
    started = start(op, cli)
    guesser = Browser(op)
    for guess in ("BCDF-GHJK", "bcdf-ghjl", "not a code"):
        wrong = confirm_page(guesser, guess)
        assert wrong.status_code == 400 and "not valid or has expired" in wrong.text
    held = confirm_page(guesser, started.user_code)
    assert held.status_code == 429 and int(held.headers["Retry-After"]) > 0
    assert path_of(held) == "/device"
    throttled = [event for event in strict.audit_events("device_user_code") if event.outcome == "throttled"]
    assert throttled


def test_device_authorizations_count_as_sign_ins_started_from_an_address(strict: LiveProvider) -> None:
    """A flood of device authorizations stops adding state once the address's quota is used."""
    op = OpenIdProvider(strict.issuer)
    cli = register_client(strict, "flood-cli", "--public", "--grant-type", DEVICE_GRANT, redirect=False)
    answers = [request_device_authorization(op, cli) for _ in range(SIGN_INS_PER_ADDRESS + 1)]
    statuses = [answer.status_code for answer in answers]
    assert 429 in statuses, statuses
    refused = answers[statuses.index(429)]
    assert refused.json()["error"] == "slow_down" and int(refused.headers["Retry-After"]) > 0
    assert set(statuses[statuses.index(429) :]) == {429}, statuses
