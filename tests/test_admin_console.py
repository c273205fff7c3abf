"""The admin console at /admin (issue 17, point 4), in process on the test Redis: an administrator with
an attested key searches, resets MFA, disables and ends sessions through the hosted pages; what an
attacker would try (another user's session, a stale key proof, a form without its CSRF token, a second
browser) changes nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from flask import Flask
from support.account import rows
from support.app import Browser, add_client, add_user, csrf_token, make_app
from support.attestation import Attester, CertificateAuthority
from support.soft_authenticator import SoftAuthenticator
from support.step_up import age_proofs, passkey_options, send_assertion
from test_administrators import enrol, promote
from werkzeug.test import TestResponse

from idp.store.tables import AuditEvent, Client, Factor, User, UserSession

VENDOR = CertificateAuthority("Console Key Vendor")
SECRET = "a long enough password"


@dataclass
class Console:
    app: Flask
    client_id: str
    key: SoftAuthenticator

    def browser(self) -> Browser:
        return Browser(self.app.test_client(), self.client_id)

    def sign_in_administrator(self, browser: Browser) -> TestResponse:
        """Open the console: password, the attested key enrolled and used; returns the users page."""
        password_page = browser.follow(browser.client.get("/admin/users"))
        assert re.fullmatch(r"/signin/[^/]+", password_page.request.path), password_page.request.path
        enrolment = browser.submit(password_page, username="root", password=SECRET)
        factor_page = browser.save_recovery_codes(enrol(browser, enrolment, self.key))
        return self.use_key(browser, factor_page)

    def use_key(self, browser: Browser, factor_page: TestResponse) -> TestResponse:
        answer = send_assertion(browser, factor_page, self.key.get(passkey_options(browser, factor_page)))
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return browser.follow(browser.client.get(answer.get_json()["redirect"]))

    def user(self, username: str) -> User:
        (found,) = [user for user in rows(self.app, User) if user.username == username]
        return found


@pytest.fixture
def console(tmp_path: Path, redis_url: str) -> Console:
    roots = tmp_path / "roots"
    VENDOR.write(roots)
    app = make_app(tmp_path, webauthn={"attestation_roots": str(roots)}, redis={"url": redis_url})
    add_user(app, "root", SECRET)
    promote(app, "root")
    client_id, _secret = add_client(app)
    return Console(app, client_id, SoftAuthenticator(backup_eligible=False, attester=Attester(VENDOR)))


def signed_in_member(console: Console, username: str) -> Browser:
    """A user signed in to the test client with password and a new authenticator app."""
    add_user(console.app, username, SECRET)
    browser = console.browser()
    done, _secret = browser.sign_in_with_enrolment(username, SECRET)
    assert done.status_code == 302 and "code=" in done.location
    return browser


def post(browser: Browser, page: TestResponse, action: str) -> TestResponse:
    return browser.follow(browser.client.post(action, data={"csrf_token": csrf_token(page)}))


def text(page: TestResponse) -> str:
    return page.get_data(as_text=True)


def test_an_administrator_finds_a_user_resets_their_mfa_disables_them_and_ends_their_sessions(
    console: Console,
) -> None:
    alice = signed_in_member(console, "alice")
    add_user(console.app, "albert", SECRET)
    admin = console.browser()
    users = console.sign_in_administrator(admin)
    assert users.request.path == "/admin/users" and users.status_code == 200

    found = admin.client.get("/admin/users", query_string={"q": "ALI"})
    assert re.findall(r'data-user-id="[^"]+">\s*<td><a [^>]+>([^<]+)<', text(found)) == ["alice"]
    alice_id = console.user("alice").id
    detail = admin.client.get(f"/admin/users/{alice_id}")
    assert "Authenticator app" in text(detail) and "data-sid=" in text(detail)

    held = len([f for f in rows(console.app, Factor) if f.user_id == alice_id])
    reset = post(admin, detail, f"/admin/users/{alice_id}/reset-mfa")
    assert f"Every second factor of alice removed ({held} with the recovery codes)" in text(reset)
    assert [f for f in rows(console.app, Factor) if f.user_id == alice_id] == []
    disabled = post(admin, reset, f"/admin/users/{alice_id}/disable")
    assert "alice is disabled." in text(disabled) and console.user("alice").disabled
    assert [s for s in rows(console.app, UserSession) if s.user_id == alice_id] == []
    assert alice.client.get("/account").status_code == 302, "alice's browser is signed out"

    root_id = console.user("root").id
    events = {e.event: e for e in rows(console.app, AuditEvent) if e.user_id == alice_id}
    for event in ("mfa_reset", "user_disabled"):
        assert events[event].detail["by"] == root_id and events[event].detail["via"] == "console"
    audit_page = admin.client.get("/admin/audit", query_string={"user": "alice", "event": "user_disabled"})
    assert text(audit_page).count('class="event"') == 1
    assert admin.client.get("/admin/audit", query_string={"user": "nobody"}).status_code == 400
    beyond = admin.client.get("/admin/audit", query_string={"before_id": str(2**31)})
    assert beyond.status_code == 400 and "before_id must be between 0 and 2147483647" in text(beyond)


def test_clients_are_listed_and_shown(console: Console) -> None:
    admin = console.browser()
    console.sign_in_administrator(admin)
    listed = admin.client.get("/admin/clients")
    assert f'data-client-id="{console.client_id}"' in text(listed)
    shown = admin.client.get(f"/admin/clients/{console.client_id}")
    (stored,) = rows(console.app, Client)
    assert "http://localhost:9999/callback" in text(shown) and stored.secret_hash not in text(shown)
    assert admin.client.get("/admin/clients/nosuch").status_code == 404


def test_another_users_session_is_refused(console: Console) -> None:
    mallory = signed_in_member(console, "mallory")
    mallory_id = console.user("mallory").id
    assert mallory.client.get("/admin/users").status_code == 403
    account = mallory.client.get("/account")
    refused = mallory.client.post(
        f"/admin/users/{mallory_id}/reset-mfa", data={"csrf_token": csrf_token(account)}
    )
    assert refused.status_code == 403
    assert [f for f in rows(console.app, Factor) if f.user_id == mallory_id], "nothing was removed"


def test_a_key_proof_older_than_the_admin_max_age_steps_up_before_anything_happens(
    console: Console,
) -> None:
    signed_in_member(console, "alice")
    alice_id = console.user("alice").id
    admin = console.browser()
    console.sign_in_administrator(admin)
    detail = admin.client.get(f"/admin/users/{alice_id}")
    age_proofs(admin, seconds=301)

    step_up = admin.client.post(f"/admin/users/{alice_id}/disable", data={"csrf_token": csrf_token(detail)})
    assert step_up.status_code == 302 and step_up.location.startswith("/authorize/resume/")
    assert not console.user("alice").disabled, "a stale proof changes nothing"
    factor_page = admin.follow(admin.client.get(f"/admin/users/{alice_id}"))
    assert factor_page.request.path.endswith("/factor"), "the key is asked for again, not the password"
    page = console.use_key(admin, factor_page)
    assert page.request.path == f"/admin/users/{alice_id}"


def test_a_form_without_its_csrf_token_and_a_second_browser_change_nothing(console: Console) -> None:
    signed_in_member(console, "alice")
    alice_id = console.user("alice").id
    admin = console.browser()
    console.sign_in_administrator(admin)

    forged = admin.client.post(f"/admin/users/{alice_id}/disable")
    assert forged.status_code == 400
    other = console.browser()
    stranger = other.client.post(f"/admin/users/{alice_id}/disable", data={"csrf_token": "x"})
    assert stranger.status_code in (302, 400)
    assert other.client.get("/admin/users").status_code == 302, "no session: a sign-in first"
    assert not console.user("alice").disabled


def test_the_user_search_pages_through_every_match(console: Console) -> None:
    for number in range(23):
        add_user(console.app, f"member-{number:02}", SECRET)
    admin = console.browser()
    console.sign_in_administrator(admin)
    first = text(admin.client.get("/admin/users", query_string={"q": "member-"}))
    second = text(admin.client.get("/admin/users", query_string={"q": "member-", "page": "2"}))
    assert "23 user(s) matching “member-”, page 1 of 2" in first and 'rel="next"' in first
    assert second.count('class="user"') == 3 and 'rel="prev"' in second and 'rel="next"' not in second
    assert admin.client.get("/admin/users", query_string={"page": "-4"}).status_code == 200


def test_the_last_administrator_cannot_disable_themselves(console: Console) -> None:
    admin = console.browser()
    console.sign_in_administrator(admin)
    root_id = console.user("root").id
    detail = admin.client.get(f"/admin/users/{root_id}")
    refused = post(admin, detail, f"/admin/users/{root_id}/disable")
    assert "root is the last enabled administrator: promote another user first" in text(refused)
    assert not console.user("root").disabled
