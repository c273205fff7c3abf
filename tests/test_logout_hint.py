"""RP-Initiated Logout 1.0 §2: only an ID token of the browser's own session signs it out unasked.

Against a live provider (PostgreSQL, Redis), each browser with its own cookie jar. The attacker's move
is logout CSRF: send the victim's browser to the end-session endpoint with an ID token the attacker
holds (their own, or the victim's from an earlier session) and a registered address to return to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

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
)
from support.step_up import cli_client

SIGNED_OUT = "http://127.0.0.1/logout-hint/signed-out"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    with provider_on_real_stores(
        tmp_path_factory.mktemp("logout"),
        database_prefix="idp_logout_",
    ) as provider:
        yield provider


@pytest.fixture(scope="module")
def client(live: LiveProvider) -> Client:
    return cli_client(live, "logout-hint", "--post-logout-redirect-uri", SIGNED_OUT)


@dataclass
class User:
    """A user's own browser, signed in, and the ID token of that browser's latest sign-in."""

    op: OpenIdProvider
    client: Client
    account: Account
    browser: Browser
    id_token: str = ""

    def sign_in(self) -> None:
        attempt, callback = self.browser.sign_in(self.client, self.account)
        tokens = self.op.exchange(attempt, callback["code"])
        assert tokens.status_code == 200, tokens.text
        self.id_token = tokens.json()["id_token"]

    def end_session(self, **params: str) -> requests.Response:
        """The browser sent to the end-session endpoint (by its client, or by a page an attacker made)."""
        return self.browser.http.get(
            self.op.endpoint("end_session"), params=params, allow_redirects=False, timeout=TIMEOUT
        )

    def still_signed_in(self) -> bool:
        """A prompt=none request yields a code: the session survived."""
        attempt = self.browser.authorize(self.client, prompt="none")
        return "code" in attempt.callback(attempt.page)


def signed_in(live: LiveProvider, op: OpenIdProvider, client: Client, role: str) -> User:
    user = User(op, client, create_account(live, role), Browser(op))
    user.sign_in()
    return user


def is_confirmation(page: requests.Response) -> bool:
    return page.status_code == 200 and "<h1>Sign out?</h1>" in page.text


def another_users_token(live: LiveProvider, victim: User) -> str:
    """The attacker signs in with an account of their own, in their own browser, and keeps its ID token."""
    return signed_in(live, victim.op, victim.client, "attacker").id_token


def an_earlier_sessions_token(_live: LiveProvider, victim: User) -> str:
    """The victim's ID token of a session since ended (left in a shared computer's history, say)."""
    earlier = victim.id_token
    ended = victim.end_session(id_token_hint=earlier)
    assert ended.status_code == 200 and "You are signed out" in ended.text, "its own session: at once"
    victim.sign_in()
    return earlier


@pytest.mark.parametrize(
    "hint_of",
    [
        pytest.param(another_users_token, id="fails because the hint is another user's ID token"),
        pytest.param(an_earlier_sessions_token, id="fails because the hint names an earlier session"),
    ],
)
def test_a_hint_of_another_session_asks_before_signing_out_and_the_session_survives(
    live: LiveProvider, op: OpenIdProvider, client: Client, hint_of: Callable[[LiveProvider, User], str]
) -> None:
    victim = signed_in(live, op, client, "victim")
    hint = hint_of(live, victim)

    lured = victim.end_session(id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT, state="s1")

    assert is_confirmation(lured), f"{lured.status_code} {lured.headers.get('Location')}"
    assert victim.still_signed_in(), "nothing ends before the user confirms"


def test_confirming_signs_out_and_returns_to_the_hinted_clients_registered_address(
    live: LiveProvider, op: OpenIdProvider, client: Client
) -> None:
    victim = signed_in(live, op, client, "victim")
    hint = another_users_token(live, victim)
    asked = victim.end_session(id_token_hint=hint, post_logout_redirect_uri=SIGNED_OUT, state="s2")
    ((action, fields),) = forms_of(asked)

    confirmed = victim.browser.http.post(action, data=fields, allow_redirects=False, timeout=TIMEOUT)

    assert confirmed.status_code == 302 and confirmed.headers["Location"] == f"{SIGNED_OUT}?state=s2"
    attempt = victim.browser.authorize(client, prompt="none")
    assert attempt.callback(attempt.page)["error"] == "login_required"


def test_the_sessions_own_hint_signs_out_at_once(
    live: LiveProvider, op: OpenIdProvider, client: Client
) -> None:
    user = signed_in(live, op, client, "leaving")

    left = user.end_session(id_token_hint=user.id_token, post_logout_redirect_uri=SIGNED_OUT, state="s3")

    assert left.status_code == 302 and left.headers["Location"] == f"{SIGNED_OUT}?state=s3"
    attempt = user.browser.authorize(client, prompt="none")
    assert attempt.callback(attempt.page)["error"] == "login_required"
