"""Changing the password needs the current password (or a passkey) and a second factor proven for the
change, and signs out every other session and app unless the user keeps them.

Against a live provider (PostgreSQL, Redis; a localhost issuer, so passkeys work), each browser with
its own cookie jar. The attacker's moves: a session left signed in (however fresh) used to change the
password, and a session or refresh token someone kept after learning the old password.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from support.live import LiveProvider, provider_on_real_stores
from support.oidc_client import (
    TIMEOUT,
    Account,
    Browser,
    Client,
    OpenIdProvider,
    create_account,
    forms_of,
    is_factor_page,
    is_password_page,
    path_of,
)
from support.soft_authenticator import SoftAuthenticator
from support.step_up import add_passkey_over_http, cli_client, offered, use_passkey_over_http

NEW_PASSWORD = "seven quiet harbours at dusk"
CHANGED = "Your password was changed."


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    with provider_on_real_stores(
        tmp_path_factory.mktemp("password"),
        database_prefix="idp_password_",
        host="localhost",
    ) as provider:
        yield provider


@pytest.fixture(scope="module")
def client(live: LiveProvider) -> Client:
    return cli_client(live, "password-change")


@dataclass
class Device:
    """One browser of the user, signed in, and the tokens an app got from that sign-in."""

    browser: Browser
    tokens: dict[str, Any]

    def visit(self, path: str) -> requests.Response:
        return self.browser.visit(self.browser.provider.issuer + path)


def sign_in_on_a_new_device(op: OpenIdProvider, client: Client, account: Account) -> Device:
    browser = Browser(op)
    attempt, callback = browser.sign_in(client, account)
    tokens = op.exchange(attempt, callback["code"])
    assert tokens.status_code == 200, tokens.text
    return Device(browser, tokens.json())


@pytest.fixture
def account(live: LiveProvider) -> Account:
    return create_account(live, "changer")


def reauthenticate(device: Device, account: Account) -> requests.Response:
    """Open the password page: the current password (the name filled in), a code, then the form."""
    page = device.visit("/account/password")
    assert is_password_page(page), f"the current password is asked for first, not {path_of(page)}"
    assert f'value="{account.username}"' in page.text, "signing in again as the session's user"
    factor = device.browser.submit(page, password=account.password)
    assert is_factor_page(factor), factor.text
    assert account.authenticator is not None
    form = device.browser.submit(factor, code=account.authenticator.next_code())
    assert path_of(form) == "/account/password" and 'name="repeat"' in form.text, form.text
    return form


def signs_in_with(op: OpenIdProvider, client: Client, username: str, password: str) -> bool:
    """The password page accepts the pair (it goes on to the second factor)."""
    browser = Browser(op)
    page = browser.submit(browser.authorize(client).page, username=username, password=password)
    return is_factor_page(page)


def test_a_fresh_session_alone_cannot_change_the_password(
    op: OpenIdProvider, client: Client, account: Account
) -> None:
    """Someone at a browser the user just signed in on (and walked away from) knows no password."""
    unattended = sign_in_on_a_new_device(op, client, account)

    page = unattended.visit("/account/password")
    (csrf,) = {fields["csrf_token"] for _action, fields in forms_of(unattended.visit("/account"))}
    forged = unattended.browser.http.post(
        f"{op.issuer}/account/password",
        data={"csrf_token": csrf, "password": NEW_PASSWORD, "repeat": NEW_PASSWORD},
        allow_redirects=False,
        timeout=TIMEOUT,
    )

    assert is_password_page(page), f"the form was shown at {path_of(page)}"
    assert forged.status_code == 302 and "/authorize/resume/" in forged.headers["Location"]
    assert signs_in_with(op, client, account.username, account.password), "the password is unchanged"
    assert not signs_in_with(op, client, account.username, NEW_PASSWORD)


def test_the_current_password_and_a_code_change_it_and_sign_out_every_other_session_and_app(
    op: OpenIdProvider, client: Client, account: Account
) -> None:
    here = sign_in_on_a_new_device(op, client, account)
    elsewhere = sign_in_on_a_new_device(op, client, account)  # or whoever learnt the old password
    form = reauthenticate(here, account)

    changed = here.browser.submit(form, password=NEW_PASSWORD, repeat=NEW_PASSWORD)

    assert path_of(changed) == "/account" and CHANGED in changed.text
    assert is_password_page(elsewhere.visit("/account")), "the other session was ended"
    for device in (here, elsewhere):
        refreshed = op.refresh(client, device.tokens["refresh_token"])
        assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
        assert op.introspect(device.tokens["access_token"], resource_server=client) == {"active": False}
    assert path_of(here.visit("/account")) == "/account", "this session goes on"
    assert signs_in_with(op, client, account.username, NEW_PASSWORD)
    assert not signs_in_with(op, client, account.username, account.password)


def test_other_sessions_and_apps_stay_signed_in_when_the_user_keeps_them(
    op: OpenIdProvider, client: Client, account: Account
) -> None:
    here = sign_in_on_a_new_device(op, client, account)
    elsewhere = sign_in_on_a_new_device(op, client, account)
    form = reauthenticate(here, account)

    changed = here.browser.submit(
        form, password=NEW_PASSWORD, repeat=NEW_PASSWORD, keep_signed_in_elsewhere="yes"
    )

    assert CHANGED in changed.text
    assert path_of(elsewhere.visit("/account")) == "/account"
    assert op.refresh(client, elsewhere.tokens["refresh_token"]).status_code == 200
    assert op.introspect(here.tokens["access_token"], resource_server=client)["active"] is True


def test_a_passkey_stands_in_for_the_current_password(
    live: LiveProvider, op: OpenIdProvider, client: Client, account: Account
) -> None:
    device = sign_in_on_a_new_device(op, client, account)
    passkey = SoftAuthenticator(origin=live.issuer)
    add_passkey_over_http(device.browser, passkey)

    page = device.visit("/account/password")
    assert offered(page) == {"passkey"}, "the passkey alone (it verifies the user)"
    form = use_passkey_over_http(device.browser, page, passkey)

    assert path_of(form) == "/account/password" and 'name="repeat"' in form.text
    changed = device.browser.submit(form, password=NEW_PASSWORD, repeat=NEW_PASSWORD)
    assert CHANGED in changed.text
