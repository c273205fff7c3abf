"""The account pages of a live provider (PostgreSQL, Redis, two workers) raced by parallel requests of one
signed-in session, as two tabs or an attacker holding the session cookie would send them: what the pages
refuse one change at a time, they refuse when the changes arrive together.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from support.live import LiveProvider, provider_on_real_stores
from support.oidc_client import TIMEOUT, Browser, Client, OpenIdProvider, forms_of, is_enrolment_page
from support.step_up import LiveMember, add_passkey_over_http, cli_client, live_member, offered

ROUNDS = 3
RECOVERY_LEFT = re.compile(r'id="recovery-left">(\d+)')


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    # WebAuthn needs a domain: localhost
    with provider_on_real_stores(
        tmp_path_factory.mktemp("races"), database_prefix="idp_races_", host="localhost"
    ) as provider:
        yield provider


@pytest.fixture(scope="module")
def client(live: LiveProvider) -> Client:
    return cli_client(live, "races")


def signed_in(live: LiveProvider, op: OpenIdProvider, client: Client, role: str) -> LiveMember:
    """A new user who signed in (password, TOTP enrolled on the way): a fresh MFA session."""
    member = live_member(live, op, role)
    member.sign_in(client)
    return member


def removal_forms(browser: Browser) -> list[tuple[str, dict[str, str]]]:
    """The overview's remove links, one per second factor, each to a confirmation: its form's action
    and fields."""
    overview = browser.visit(f"{browser.provider.issuer}/account")
    assert overview.status_code == 200, overview.url
    confirmations = re.findall(r'href="(/account/factors/[^"]+/remove)"', overview.text)
    return [forms_of(browser.visit(browser.provider.issuer + path))[0] for path in confirmations]


def second_factors(member: LiveMember, client: Client) -> set[str]:
    """What a new sign-in as the member asks for after the password; none when it asks to enrol one."""
    browser = Browser(member.browser.provider)
    account = member.account
    page = browser.submit(
        browser.authorize(client).page, username=account.username, password=account.password
    )
    return set() if is_enrolment_page(page) else offered(page) & {"totp", "passkey"}


def all_at_once(browser: Browser, posts: list[tuple[str, dict[str, str]]]) -> list[requests.Response]:
    """Send the posts in parallel, each from its own cookie jar holding this browser's session."""
    start = threading.Barrier(len(posts))

    def send(post: tuple[str, dict[str, str]]) -> requests.Response:
        jar = requests.Session()
        jar.cookies.update(browser.http.cookies)
        start.wait(timeout=10)
        return jar.post(post[0], data=post[1], allow_redirects=False, timeout=TIMEOUT)

    with ThreadPoolExecutor(len(posts)) as pool:
        return list(pool.map(send, posts))


def test_removing_both_second_factors_at_once_leaves_one(
    live: LiveProvider, op: OpenIdProvider, client: Client
) -> None:
    for round_ in range(ROUNDS):
        member = signed_in(live, op, client, f"remover{round_}")
        add_passkey_over_http(member.browser, member.passkey)
        both = removal_forms(member.browser)
        assert len(both) == 2, "an authenticator app and a passkey"

        answers = all_at_once(member.browser, both)

        assert [answer.status_code for answer in answers] == [302, 302]
        assert len(second_factors(member, client)) == 1, "one removal was refused: it was the last factor"


def test_generating_recovery_codes_twice_at_once_leaves_one_set(
    live: LiveProvider, op: OpenIdProvider, client: Client
) -> None:
    member = signed_in(live, op, client, "regenerator")
    page = member.browser.visit(f"{live.issuer}/account/recovery-codes/new")
    (generate,) = forms_of(page)

    answers = all_at_once(member.browser, [generate, generate])

    assert [answer.status_code for answer in answers] == [200, 200]
    shown = [set(re.findall(r"<li><code>([^<]+)</code></li>", answer.text)) for answer in answers]
    assert [len(codes) for codes in shown] == [10, 10] and not shown[0] & shown[1]
    left = RECOVERY_LEFT.search(member.browser.visit(f"{live.issuer}/account/recovery-codes").text)
    assert left is not None and left.group(1) == "10", "the set generated last replaced the other"
