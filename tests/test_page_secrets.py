"""No secret outlives its page: recovery codes just generated, and an authenticator key being set up,
live minutes under a key of their own (never in the 12-hour session), and account-change mail links
to the configured issuer.

Against a live provider (PostgreSQL, Redis), each browser with its own cookie jar. The attacker's
moves: read a session's stored data later (a Redis dump, a stolen backup), download another
browser's codes, and forge the Host header of the request that triggers a mail, so that its link
points at a look-alike site.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

import pytest
import redis
from support.live import LiveProvider, provider_on_real_stores
from support.mailbox import Outbox, bodies, latest_code
from support.oidc_client import (
    TIMEOUT,
    Authenticator,
    Browser,
    Client,
    OpenIdProvider,
    create_account,
    enrolment_secret,
    forms_of,
    is_enrolment_page,
    path_of,
)
from support.services import e2e_redis_url
from support.step_up import cli_client

RECOVERY_CODE = re.compile(r"<li><code>([a-z2-7]{4}(?:-[a-z2-7]{4}){3})</code></li>")
COOKIE = "idp_session"
FEW_MINUTES = 300
SIGN_IN_LIFETIME = 900


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    with provider_on_real_stores(
        tmp_path_factory.mktemp("secrets"),
        database_prefix="idp_secrets_",
    ) as provider:
        yield provider


@pytest.fixture(scope="module")
def client(live: LiveProvider) -> Client:
    return cli_client(live, "page-secrets")


@pytest.fixture
def store() -> Iterator[redis.Redis]:
    """The provider's Redis database, read the way someone holding a dump of it would."""
    with redis.Redis.from_url(e2e_redis_url()) as connection:
        yield connection


def signed_in_browsers(live: LiveProvider, op: OpenIdProvider, client: Client, count: int) -> list[Browser]:
    """One user signed in on `count` browsers (password and a code on each)."""
    account = create_account(live, "keeper")
    browsers = [Browser(op) for _ in range(count)]
    for browser in browsers:
        browser.sign_in(client, account)
    return browsers


def session_key(browser: Browser) -> str:
    cookie = browser.http.cookies.get(COOKIE)
    assert cookie is not None
    return "idp:session:" + hashlib.sha256(cookie.encode()).hexdigest()


def holding(store: redis.Redis, secrets: list[str]) -> dict[str, int]:
    """Every key whose value holds any of `secrets`, with the seconds it has left to live."""
    found = {}
    for key in store.scan_iter():
        value = store.get(key) or b""
        if any(secret.encode() in value for secret in secrets):
            found[key.decode()] = int(store.ttl(key))
    return found


def test_fresh_recovery_codes_live_minutes_under_their_own_key_and_download_once_where_made(
    live: LiveProvider, op: OpenIdProvider, client: Client, store: redis.Redis
) -> None:
    here, elsewhere = signed_in_browsers(live, op, client, 2)
    issuer = op.issuer
    shown = here.submit(here.visit(f"{issuer}/account/recovery-codes/new"))
    codes = RECOVERY_CODE.findall(shown.text)
    assert len(codes) == 10

    kept = holding(store, codes)
    assert session_key(here) not in kept, "the 12-hour session holds no code"
    assert len(kept) == 1 and all(0 < ttl <= FEW_MINUTES for ttl in kept.values()), kept

    not_theirs = elsewhere.http.get(
        f"{issuer}/account/recovery-codes.txt", allow_redirects=False, timeout=TIMEOUT
    )
    assert not_theirs.status_code == 302, "another browser of the same user downloads nothing"
    download = here.http.get(f"{issuer}/account/recovery-codes.txt", allow_redirects=False, timeout=TIMEOUT)
    assert download.status_code == 200 and all(code in download.text for code in codes)
    again = here.http.get(f"{issuer}/account/recovery-codes.txt", allow_redirects=False, timeout=TIMEOUT)
    assert again.status_code == 302
    assert holding(store, codes) == {}, "once downloaded, only the digests remain"


def test_an_authenticator_key_being_set_up_lives_a_sign_in_under_its_own_key(
    live: LiveProvider, op: OpenIdProvider, client: Client, store: redis.Redis
) -> None:
    account = create_account(live, "enrolling")
    browser = Browser(op)
    attempt = browser.authorize(client)
    enrolment = browser.submit(attempt.page, username=account.username, password=account.password)
    assert is_enrolment_page(enrolment)
    first = enrolment_secret(enrolment)

    drafts = holding(store, [first])
    assert session_key(browser) not in drafts, "the session holds no authenticator key"
    assert len(drafts) == 1 and all(0 < ttl <= SIGN_IN_LIFETIME for ttl in drafts.values()), drafts
    account.authenticator = Authenticator(first)
    attempt.callback(
        browser.save_recovery_codes(browser.submit(enrolment, code=account.authenticator.next_code()))
    )
    assert holding(store, [first]) == {}, "once confirmed, it is a sealed factor only"

    another = browser.visit(f"{op.issuer}/account/totp/new")
    second = enrolment_secret(another)
    drafts = holding(store, [second])
    assert session_key(browser) not in drafts and len(drafts) == 1, drafts
    assert all(0 < ttl <= SIGN_IN_LIFETIME for ttl in drafts.values())


def test_account_change_mail_links_to_the_issuer_whatever_host_the_request_named(
    live: LiveProvider, op: OpenIdProvider, client: Client
) -> None:
    (browser,) = signed_in_browsers(live, op, client, 1)
    outbox = Outbox(live.config.parent / "instance" / "outbox")
    address = f"keeper-{len(outbox.files)}@example.test"
    confirm = browser.submit(browser.visit(f"{op.issuer}/account/email/new"), address=address)
    assert path_of(browser.submit(confirm, code=latest_code(outbox, to=address))) == "/account"
    page = browser.visit(f"{op.issuer}/account/recovery-codes/new")
    ((action, fields),) = forms_of(page)

    # requests matches cookies against a Host header it was given: send the session's by hand.
    forged_host = {"Host": "idp.example.evil", "Cookie": f"{COOKIE}={browser.http.cookies[COOKIE]}"}
    forged = browser.http.post(
        action, data=fields, headers=forged_host, allow_redirects=False, timeout=TIMEOUT
    )

    assert forged.status_code == 200 and RECOVERY_CODE.search(forged.text), "the change was made"
    (notice,) = [
        message
        for message in outbox.messages
        if message["To"] == address and "new recovery codes" in bodies(message)["text/plain"]
    ]
    for body in bodies(notice).values():
        assert "idp.example.evil" not in body
        assert f"{op.issuer}/account" in body
