"""Back-Channel Logout 1.0 and Front-Channel Logout 1.0 against a live provider (PostgreSQL, Redis).

Relying parties receive logout_tokens at a real HTTP server in this process; each user has a browser
(cookie jar) of their own. What an attacker or an unlucky operator would try: a second user's session
that must survive, a receiver that hangs or is down (the user's page must not wait), a token replayed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import pytest
import requests
from sqlalchemy import update
from support.live import LiveProvider, free_port, provider_on_real_stores
from support.logout_receiver import Receiver, running_receiver
from support.oidc_client import TIMEOUT, Account, Browser, Client, OpenIdProvider, create_account
from support.step_up import cli_client, unverified_claims

from idp.store.database import Database
from idp.store.tables import UserSession

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
SIGNED_OUT = "http://127.0.0.1/logout-channels/signed-out"
# Quick retries, and a POST timeout far above any wait below: a provider that waited for a receiver
# before answering its page would hang the test, not pass it.
LOGOUT_SETTINGS = (
    "[logout]\nbackchannel_timeout = 30\nbackchannel_attempts = 2\nbackchannel_retry_delay = 1\n"
)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as found:
        yield found


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProvider]:
    with provider_on_real_stores(
        tmp_path_factory.mktemp("logout-channels"),
        database_prefix="idp_logout_channels_",
        extra=LOGOUT_SETTINGS,
    ) as provider:
        yield provider


def back_channel_client(live: LiveProvider, receiver: Receiver, name: str, *options: str) -> Client:
    return cli_client(
        live,
        name,
        "--backchannel-logout-uri",
        receiver.uri(name),
        "--post-logout-redirect-uri",
        SIGNED_OUT,
        *options,
    )


@dataclass
class SignedIn:
    """One user's browser, and the tokens each client received in its session."""

    op: OpenIdProvider
    account: Account
    browser: Browser
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)

    def sign_in(self, client: Client) -> dict[str, Any]:
        """Sign in to `client` (the whole sign-in the first time; single sign-on after that)."""
        attempt = self.browser.authorize(client)
        page = (
            attempt.page
            if attempt.page.is_redirect
            else self.browser.pass_sign_in(attempt.page, self.account)
        )
        answer = self.op.exchange(attempt, attempt.callback(page)["code"])
        assert answer.status_code == 200, answer.text
        self.tokens[client.client_id] = answer.json()
        return self.tokens[client.client_id]

    def id_token(self, client: Client) -> dict[str, Any]:
        return unverified_claims(self.tokens[client.client_id]["id_token"])

    def sign_out(self, client: Client) -> requests.Response:
        """RP-Initiated Logout with the session's own ID token: signed out at once."""
        return self.browser.http.get(
            self.op.endpoint("end_session"),
            params={
                "id_token_hint": self.tokens[client.client_id]["id_token"],
                "post_logout_redirect_uri": SIGNED_OUT,
            },
            allow_redirects=False,
            timeout=TIMEOUT,
        )


def signed_in(live: LiveProvider, op: OpenIdProvider, role: str, *clients: Client) -> SignedIn:
    user = SignedIn(op, create_account(live, role), Browser(op))
    for client in clients:
        user.sign_in(client)
    return user


def verified_logout_token(
    op: OpenIdProvider, token: str, client: Client
) -> tuple[dict[str, Any], dict[str, Any]]:
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(
        token,
        op.signing_key(header["kid"]).key,
        algorithms=["RS256", "ES256"],
        audience=client.client_id,
        issuer=op.issuer,
        options={"require": ["iss", "aud", "iat", "exp", "jti"]},
    )
    return header, claims


# -- back-channel: who is told, with what, and what stops working -------------------------------------


def test_signing_out_tells_every_client_of_the_session_and_their_session_bound_tokens_stop_working(
    live: LiveProvider, op: OpenIdProvider, receiver: Receiver
) -> None:
    console = back_channel_client(live, receiver, "console")
    reports = back_channel_client(live, receiver, "reports", "--backchannel-logout-session-required")
    quiet = cli_client(live, "quiet-app")  # registered no back-channel URI
    alice = signed_in(live, op, "alice", console, reports, quiet)
    bob = signed_in(live, op, "bob", reports)  # another user, another browser: must not be touched

    left = alice.sign_out(console)

    assert left.status_code == 302 and left.headers["Location"] == SIGNED_OUT
    session = alice.id_token(console)
    for name, client in (("console", console), ("reports", reports)):
        header, claims = verified_logout_token(op, receiver.next_token(name), client)
        assert header["typ"] == "logout+jwt"
        assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
        assert (claims["sub"], claims["sid"]) == (session["sub"], session["sid"])
        assert "nonce" not in claims
        assert claims["iat"] <= time.time() < claims["exp"]
    assert receiver.nothing_for("reports"), "one token per client and session, none for bob's session"
    for client in (console, reports, quiet):
        refreshed = op.refresh(client, alice.tokens[client.client_id]["refresh_token"])
        assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"
        assert op.userinfo(alice.tokens[client.client_id]["access_token"]).status_code == 401
    assert op.refresh(reports, bob.tokens[reports.client_id]["refresh_token"]).status_code == 200


def test_a_receiver_that_hangs_does_not_hold_the_sign_out_page(
    live: LiveProvider, op: OpenIdProvider, receiver: Receiver
) -> None:
    """The receiver keeps the POST open until the test lets go, and the provider would wait 30 s: the
    page must answer while the receiver is still holding the logout_token's request."""
    hanging = back_channel_client(live, receiver, "hanging")
    arrived, release, answered = receiver.hold("hanging")
    carol = signed_in(live, op, "carol", hanging)
    page: list[requests.Response] = []
    signing_out = threading.Thread(target=lambda: page.append(carol.sign_out(hanging)))
    try:
        signing_out.start()
        assert arrived.wait(20), "the logout_token was sent"
        signing_out.join(TIMEOUT)
        assert page and page[0].status_code == 302, "the page answered"
        assert not answered.is_set(), "... while the receiver was still holding the request"
    finally:
        release.set()
        signing_out.join(TIMEOUT)


def test_a_receiver_that_is_down_does_not_hold_the_page_and_the_failure_is_audited(
    live: LiveProvider, op: OpenIdProvider
) -> None:
    down = f"http://127.0.0.1:{free_port()}/backchannel"  # nothing listens there
    unreachable = cli_client(
        live, "unreachable", "--backchannel-logout-uri", down, "--post-logout-redirect-uri", SIGNED_OUT
    )
    dave = signed_in(live, op, "dave", unreachable)

    assert dave.sign_out(unreachable).status_code == 302

    deadline = time.monotonic() + 30
    while not (
        failures := [
            e for e in live.audit_events("backchannel_logout") if e.client_id == unreachable.client_id
        ]
    ):
        assert time.monotonic() < deadline, "the failed delivery is audited once the attempts are spent"
        time.sleep(0.5)
    ((failure,),) = [failures]
    assert failure.outcome == "failure" and failure.detail["attempts"] == 2
    assert failure.detail["uri"] == down and "logout_token" not in str(failure.detail)


def test_ending_another_session_on_the_account_page_tells_its_clients(
    live: LiveProvider, op: OpenIdProvider, receiver: Receiver
) -> None:
    console = back_channel_client(live, receiver, "console-two-browsers")
    erin = signed_in(live, op, "erin", console)
    laptop = SignedIn(op, erin.account, Browser(op))  # the same user in a second browser
    laptop.sign_in(console)
    phone_session = erin.id_token(console)["sid"]

    sessions = laptop.browser.visit(f"{live.issuer}/account/sessions")
    ended = laptop.browser.submit_to(sessions, f"/sessions/{phone_session}/end")

    assert ended.status_code == 200, ended.text
    _, claims = verified_logout_token(op, receiver.next_token("console-two-browsers"), console)
    assert claims["sid"] == phone_session
    assert op.refresh(console, erin.tokens[console.client_id]["refresh_token"]).status_code == 400
    assert op.refresh(console, laptop.tokens[console.client_id]["refresh_token"]).status_code == 200


def test_an_operator_disabling_a_user_tells_every_client_of_their_sessions(
    live: LiveProvider, op: OpenIdProvider, receiver: Receiver
) -> None:
    """`idp users disable` (the management layer the API and console share) ends both browsers' sessions
    and the CLI posts each client its logout_token before it exits."""
    console = back_channel_client(live, receiver, "console-disabled-user")
    gina = signed_in(live, op, "gina", console)
    laptop = SignedIn(op, gina.account, Browser(op))
    laptop.sign_in(console)

    done = live.idp("users", "disable", gina.account.username)

    assert done.returncode == 0, done.stderr
    told = {
        verified_logout_token(op, receiver.next_token("console-disabled-user", within=1), console)[1]["sid"]
        for _ in range(2)
    }
    assert told == {gina.id_token(console)["sid"], laptop.id_token(console)["sid"]}, "delivered before exit"
    for user in (gina, laptop):
        refused = op.refresh(console, user.tokens[console.client_id]["refresh_token"])
        assert refused.status_code == 400


def test_a_session_that_expired_is_told_to_its_clients_when_it_is_purged(
    live: LiveProvider, op: OpenIdProvider, receiver: Receiver
) -> None:
    """The session index purges a user's expired sessions at their next sign-in: their clients hear of it."""
    console = back_channel_client(live, receiver, "console-expired")
    hank = signed_in(live, op, "hank", console)
    expired_sid = hank.id_token(console)["sid"]
    database = Database(live.database_url)
    try:
        with database.unit_of_work() as session:  # the session's lifetime passes
            session.execute(update(UserSession).where(UserSession.sid == expired_sid).values(expires_at=1))
    finally:
        database.engine.dispose()
    assert receiver.nothing_for("console-expired")

    signed_in(live, op, "hank-again", console)  # another user's sign-in purges nothing of hank's
    assert receiver.nothing_for("console-expired")
    SignedIn(op, hank.account, Browser(op)).sign_in(console)

    _, claims = verified_logout_token(op, receiver.next_token("console-expired"), console)
    assert claims["sid"] == expired_sid
    assert op.refresh(console, hank.tokens[console.client_id]["refresh_token"]).status_code == 400


# -- front-channel: the signed-out page frames each client's logout page ------------------------------


def test_the_signed_out_page_frames_each_front_channel_uri_and_may_frame_nothing_else(
    live: LiveProvider, op: OpenIdProvider
) -> None:
    framed = cli_client(
        live,
        "framed",
        "--frontchannel-logout-uri",
        "https://framed.example/logout?from=idp",
        "--frontchannel-logout-session-required",
        "--post-logout-redirect-uri",
        SIGNED_OUT,
    )
    plain = cli_client(live, "framed-plain", "--frontchannel-logout-uri", "http://127.0.0.1:9/fc")
    frank = signed_in(live, op, "frank", framed, plain)
    sid = frank.id_token(framed)["sid"]

    page = frank.sign_out(framed)

    assert page.status_code == 200, "the page first loads the frames, then continues"
    issuer = requests.utils.quote(op.issuer, safe="")
    assert f'src="https://framed.example/logout?from=idp&amp;iss={issuer}&amp;sid={sid}"' in page.text
    assert 'src="http://127.0.0.1:9/fc"' in page.text
    assert f'id="continue" href="{SIGNED_OUT}"' in page.text
    policy = page.headers["Content-Security-Policy"]
    (frame_src,) = [part.strip() for part in policy.split(";") if part.strip().startswith("frame-src")]
    assert frame_src == "frame-src http://127.0.0.1:9 https://framed.example", "exactly those, in order"
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy
