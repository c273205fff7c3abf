"""The account pages in process: factors, recovery codes, password, sessions, history, and what guards them.

Every change needs a fresh MFA sign-in, carries the CSRF token, is audited, and is told to the user's
verified email addresses.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from support.account import (
    Account,
    Authenticator,
    Outbox,
    audit_events,
    body_of,
    error,
    factor_kinds,
    history_rows,
    notice,
    rows,
    secret_on,
    session_rows,
    sign_in,
    text,
)
from support.app import Browser, add_client, code_from, csrf_token, make_app
from werkzeug.test import TestResponse

from idp.store.tables import Factor, UserSession

RECOVERY_FORM = re.compile(r'<form method="post" action="(/signin/[^"]+/recovery)"')
FACTOR_PAGE = re.compile(r"^/signin/[^/]+/factor$")
PASSWORD_PAGE = re.compile(r"^/signin/[^/]+$")
NEW_PASSWORD = "seven quiet harbours at dusk"


@pytest.fixture
def outbox(app: Flask) -> Outbox:
    return Outbox.of(app)


def recovery_left(page_text: str) -> int:
    found = re.search(r'id="recovery-left">(\d+)', page_text)
    assert found, "the page does not say how many recovery codes are left"
    return int(found.group(1))


def use_recovery_code(
    app: Flask, client_id: str, account: Account, code: str
) -> tuple[Browser, TestResponse]:
    """A fresh browser: the password page, then the factor page's recovery form."""
    browser = Browser(app.test_client(), client_id)
    factor_page = browser.submit(browser.authorize(), username=account.username, password=account.password)
    assert FACTOR_PAGE.match(factor_page.request.path)
    action = RECOVERY_FORM.search(text(factor_page))
    assert action, "the factor page offers no recovery code"
    used = browser.client.post(
        action.group(1), data={"csrf_token": csrf_token(factor_page), "recovery_code": code}
    )
    return browser, used


def state_of(account: Account) -> tuple[object, ...]:
    """What a change could touch: factors, the password hash, the signed-in sessions."""
    return (
        sorted((f.id, f.kind, f.name, f.last_used_at) for f in rows(account.app, Factor)),
        account.user().password_hash,
        sorted(row.sid for row in rows(account.app, UserSession)),
    )


def continue_link(page_text: str) -> str:
    found = re.search(r'<a href="([^"]+)" id="continue">Continue to the application</a>', page_text)
    assert found, "the interstitial has no way on to the application"
    return found.group(1)


# -- authenticator apps ---------------------------------------------------------------------------


def test_a_second_authenticator_app_is_added_by_name_and_signs_in(
    app: Flask, client_id: str, account: Account
) -> None:
    added, tablet = account.add_totp("tablet")
    assert added.request.path == "/account"
    assert notice(added) == "Authenticator app 'tablet' added."
    assert set(account.factors()) == {"phone", "tablet"}
    other = Browser(app.test_client(), client_id)
    factor_page = other.submit(other.authorize(), username="alice", password=account.password)
    code_from(other.submit(factor_page, code=tablet.code()))


def test_an_authenticator_app_is_added_only_with_a_code_from_it(app: Flask, account: Account) -> None:
    account.get("/account/totp/new")
    refused = account.post("/account/totp/new", name="tablet", code="000000")
    assert refused.status_code == 400
    assert error(refused).startswith("That code is wrong or has expired.")
    assert factor_kinds(app) == ["recovery_code"] * 10 + ["totp"], "the first sign-in's, nothing more"


def test_an_authenticator_app_is_removed_while_another_remains(app: Flask, account: Account) -> None:
    account.add_totp("tablet")
    removed = account.post(f"/account/factors/{account.factors()['phone']}/remove")
    assert notice(removed) == "'phone' removed."
    assert list(account.factors()) == ["tablet"]


def test_removing_the_last_second_factor_is_refused_and_audited(app: Flask, account: Account) -> None:
    account.generate_recovery_codes()  # backup codes alone do not make MFA: still the last factor
    refused = account.post(f"/account/factors/{account.factors()['phone']}/remove")
    assert refused.request.path == "/account"
    assert error(refused) == "This is your last second factor: add another one before removing it."
    assert list(account.factors()) == ["phone"]
    (event,) = [e for e in audit_events(app, "account_change") if e.outcome == "refused"]
    assert event.user_id == account.user().id
    assert event.detail == {"change": "remove last second factor"}


def test_another_users_factor_cannot_be_removed(app: Flask, client_id: str, account: Account) -> None:
    bob = sign_in(app, client_id, "bob")
    bobs_phone = bob.factors()["phone"]
    refused = account.post(f"/account/factors/{bobs_phone}/remove")
    assert error(refused) == "That sign-in method no longer exists."
    assert bob.factors() == {"phone": bobs_phone}


# -- recovery codes -------------------------------------------------------------------------------


def test_recovery_codes_are_shown_once_and_downloaded_once(account: Account) -> None:
    codes = account.generate_recovery_codes()
    assert len(codes) == len(set(codes)) == 10
    assert all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", code) for code in codes)

    download = account.browser.client.get("/account/recovery-codes.txt")
    assert download.status_code == 200 and download.mimetype == "text/plain"
    assert download.headers["Content-Disposition"] == "attachment; filename=recovery-codes.txt"
    assert download.headers["Cache-Control"] == "no-store"
    assert all(code in text(download) for code in codes)

    again = account.browser.client.get("/account/recovery-codes.txt")
    assert again.status_code == 302 and again.location == "/account/recovery-codes"
    later = text(account.get("/account/recovery-codes"))
    assert recovery_left(later) == 10
    assert not any(code in later for code in codes), "codes are shown only once"
    assert recovery_left(text(account.get("/account"))) == 10


def test_regenerating_recovery_codes_invalidates_the_earlier_set(
    app: Flask, client_id: str, account: Account
) -> None:
    earlier = account.generate_recovery_codes()
    current = account.generate_recovery_codes()
    assert not set(earlier) & set(current)
    assert factor_kinds(app).count("recovery_code") == 10

    _browser, refused = use_recovery_code(app, client_id, account, earlier[0])
    assert refused.status_code == 401
    _browser, used = use_recovery_code(app, client_id, account, current[0])
    assert used.status_code == 200


def test_a_recovery_code_signs_in_after_an_interstitial_and_only_once(
    app: Flask, client_id: str, account: Account
) -> None:
    codes = account.generate_recovery_codes()

    browser, used = use_recovery_code(app, client_id, account, codes[3].upper().replace("-", " "))
    assert used.status_code == 200
    page = text(used)
    assert "You used a recovery code" in page and recovery_left(page) == 9
    code_from(browser.client.get(continue_link(page)))
    assert recovery_left(text(account.get("/account"))) == 9
    (event,) = audit_events(app, "recovery_code_used")
    assert event.client_id == client_id

    _browser, replayed = use_recovery_code(app, client_id, account, codes[3])
    assert replayed.status_code == 401
    assert error(replayed) == "That recovery code is not valid or was used already."
    assert recovery_left(text(account.get("/account"))) == 9


def test_the_last_recovery_code_still_completes_the_sign_in(
    app: Flask, client_id: str, account: Account
) -> None:
    codes = account.generate_recovery_codes()
    for code in codes[1:]:
        use_recovery_code(app, client_id, account, code)
    browser, used = use_recovery_code(app, client_id, account, codes[0])
    assert recovery_left(text(used)) == 0
    code_from(browser.client.get(continue_link(text(used))))


# -- password -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "repeat", "message"),
    [
        ("password123", "password123", "Use at least 12 characters; a short sentence works well."),
        ("short words", "short words", "Use at least 12 characters; a short sentence works well."),
        ("password1234", "password1234", "This password is among the most common ones; choose another."),
        ("Password123!!", "Password123!!", "This password is among the most common ones; choose another."),
        ("qwertyuiop123", "qwertyuiop123", "This password is among the most common ones; choose another."),
        ("my name is Alice, hi", "my name is Alice, hi", "The password must not contain your username."),
        (
            "abcdefghijklmnop",
            "abcdefghijklmnop",
            "Repeated or sequential characters are easy to guess; choose another.",
        ),
        (NEW_PASSWORD, NEW_PASSWORD + " ", "The two passwords differ."),
    ],
    ids=[
        "fails because password123 is shorter than the minimum",
        "fails because it is shorter than the minimum",
        "fails because it is on the blocklist",
        "fails because it is a blocklisted word with digits and marks appended",
        "fails because it is a keyboard walk on the blocklist",
        "fails because it contains the username",
        "fails because it is a sequence",
        "fails because the repeat differs",
    ],
)
def test_a_weak_new_password_is_refused_with_the_reason(
    app: Flask, account: Account, password: str, repeat: str, message: str
) -> None:
    before = account.user().password_hash
    refused = account.change_password(password, repeat)
    assert refused.status_code == 400
    assert error(refused) == message
    assert account.user().password_hash == before
    assert audit_events(app, "account_change") == []


def test_a_good_new_password_replaces_the_old_one(app: Flask, client_id: str, account: Account) -> None:
    changed = account.change_password(NEW_PASSWORD)
    assert changed.request.path == "/account"
    assert notice(changed) == "Your password was changed."

    old = Browser(app.test_client(), client_id)
    refused = old.submit(old.authorize(), username="alice", password=account.password)
    assert refused.status_code == 401
    new = Browser(app.test_client(), client_id)
    accepted = new.submit(new.authorize(), username="alice", password=NEW_PASSWORD)
    assert FACTOR_PAGE.match(accepted.request.path)


# -- sessions and history -------------------------------------------------------------------------


def test_ending_another_session_signs_that_browser_out(app: Flask, client_id: str, account: Account) -> None:
    laptop = Browser(app.test_client(), client_id)
    code_from(account.sign_in_again(laptop))
    listed = session_rows(account.get("/account/sessions"))
    assert len(listed) == 2
    (other,) = [sid for sid, row in listed.items() if "(this session)" not in row]

    ended = account.post(f"/account/sessions/{other}/end")
    assert ended.request.path == "/account/sessions"
    assert notice(ended) == "1 session(s) ended."
    assert list(session_rows(ended)) != [other] and len(session_rows(ended)) == 1

    back = laptop.follow(laptop.client.get("/account"))
    assert PASSWORD_PAGE.match(back.request.path), "the ended browser must sign in again"
    assert account.get("/account").request.path == "/account"


def test_end_all_other_sessions(app: Flask, client_id: str, account: Account) -> None:
    others = [Browser(app.test_client(), client_id) for _ in range(2)]
    for browser in others:
        code_from(account.sign_in_again(browser))
    assert len(session_rows(account.get("/account/sessions"))) == 3

    ended = account.post("/account/sessions/end-others")
    assert notice(ended) == "2 session(s) ended."
    (row,) = session_rows(ended).values()
    assert "(this session)" in row
    for browser in others:
        assert PASSWORD_PAGE.match(browser.follow(browser.client.get("/account")).request.path)


def test_neither_the_current_session_nor_another_users_is_ended_by_id(
    app: Flask, client_id: str, account: Account
) -> None:
    bob = sign_in(app, client_id, "bob")
    for row in rows(app, UserSession):
        ended = account.post(f"/account/sessions/{row.sid}/end")
        assert notice(ended) == "0 session(s) ended."
    assert account.get("/account").request.path == "/account"
    assert bob.get("/account").request.path == "/account"


def test_history_lists_sign_in_attempts_with_time_app_and_outcome(
    app: Flask, client_id: str, account: Account
) -> None:
    laptop = Browser(app.test_client(), client_id)
    laptop.submit(laptop.authorize(), username="alice", password="not the password")
    history = history_rows(account.get("/account/history"))
    when = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"
    assert re.fullmatch(
        rf"{when} Sign-in to Test app failed: wrong password Unknown browser 127\.0\.0\.1", history[0]
    )
    assert any(
        re.fullmatch(
            rf"{when} Signed in to Test app with password and authenticator app Unknown browser 127\.0\.0\.1",
            row,
        )
        for row in history
    )
    assert any(re.fullmatch(rf"{when} Set up authenticator app .*", row) for row in history)


def test_a_sign_in_at_the_account_pages_is_in_the_history(
    app: Flask, client_id: str, account: Account
) -> None:
    laptop = Browser(app.test_client(), client_id)
    factor_page = laptop.submit(
        laptop.follow(laptop.client.get("/account")), username="alice", password=account.password
    )
    assert laptop.submit(factor_page, code=account.authenticator.code()).request.path == "/account"
    successes = [e for e in audit_events(app, "sign_in") if e.outcome == "success"]
    assert len(successes) == 2


# -- what every change goes through ---------------------------------------------------------------


def _add_tablet(account: Account, _outbox: Outbox) -> None:
    account.add_totp("tablet")


def _remove_phone(account: Account, _outbox: Outbox) -> None:
    account.post(f"/account/factors/{account.factors()['phone']}/remove")


def _generate_recovery_codes(account: Account, _outbox: Outbox) -> None:
    account.generate_recovery_codes()


def _change_password(account: Account, _outbox: Outbox) -> None:
    account.change_password(NEW_PASSWORD)


def _end_other_sessions(account: Account, _outbox: Outbox) -> None:
    account.post("/account/sessions/end-others")


def _nothing(_account: Account, _outbox: Outbox) -> None:
    return None


def _sign_in_elsewhere(account: Account, _outbox: Outbox) -> None:
    code_from(account.sign_in_again(Browser(account.app.test_client(), account.browser.client_id)))


@pytest.mark.parametrize(
    ("prepare", "change", "described", "recipients"),
    [
        (_nothing, _add_tablet, "authenticator app 'tablet' added", 1),
        (_add_tablet, _remove_phone, "sign-in method 'phone' removed", 1),
        (_nothing, _generate_recovery_codes, "new recovery codes generated", 1),
        (_nothing, _change_password, "password changed", 1),
        (_sign_in_elsewhere, _end_other_sessions, "1 other session(s) ended", 1),
    ],
    ids=["add authenticator", "remove factor", "recovery codes", "password", "end sessions"],
)
def test_every_change_is_audited_and_told_to_verified_addresses(
    app: Flask,
    account: Account,
    outbox: Outbox,
    prepare: Callable[[Account, Outbox], None],
    change: Callable[[Account, Outbox], None],
    described: str,
    recipients: int,
) -> None:
    account.bind_email("alice@example.net", outbox)
    prepare(account, outbox)
    before = len(audit_events(app, "account_change"))
    outbox.new_messages()

    change(account, outbox)

    changes = audit_events(app, "account_change")[before:]
    assert [(e.outcome, e.user_id) for e in changes] == [("success", account.user().id)]
    assert changes[0].detail["change"].startswith(described)
    messages = [m for m in outbox.new_messages() if m["Subject"] == "A change to your account"]
    assert len(messages) == recipients
    assert messages[0]["To"] == "alice@example.net"
    assert f"A change was made to your account at Sign-in service: {described}" in body_of(messages[0])
    assert "Hello alice," in body_of(messages[0])


def test_a_bound_address_is_audited_and_told_about_itself(
    app: Flask, account: Account, outbox: Outbox
) -> None:
    bound = account.bind_email("alice@example.net", outbox)
    assert notice(bound) == "alice@example.net is verified."
    (change,) = audit_events(app, "account_change")
    assert change.detail == {"change": "email address alice@example.net added"}
    (message,) = outbox.new_messages()
    assert message["To"] == "alice@example.net"
    assert (
        "A change was made to your account at Sign-in service: email address alice@example.net added."
        in body_of(message)
    )


def test_a_second_address_can_be_bound_right_after_the_first(account: Account, outbox: Outbox) -> None:
    account.bind_email("alice@example.net", outbox)
    outbox.new_messages()
    sent = account.post("/account/email/new", address="other@example.org")
    assert sent.request.path == "/account/email/verify", error(sent)


def test_an_unverified_address_gets_no_notice(app: Flask, account: Account, outbox: Outbox) -> None:
    account.post("/account/email/new", address="alice@example.net")
    (code_message,) = outbox.new_messages()
    account.generate_recovery_codes()
    assert outbox.new_messages() == []
    assert "email" not in factor_kinds(app)
    assert code_message["To"] == "alice@example.net"


# -- fresh MFA ------------------------------------------------------------------------------------


@pytest.fixture
def stale_account(tmp_path: Path) -> Account:
    """A session whose MFA sign-in is older than the account pages allow (1 s here)."""
    app = make_app(tmp_path, account={"reauthentication_max_age": 1})
    account = sign_in(app, add_client(app)[0])
    time.sleep(1.2)
    return account


def test_a_stale_session_steps_up_with_its_second_factor_and_returns_to_the_page(
    stale_account: Account,
) -> None:
    asked = stale_account.browser.client.get("/account/totp/new")
    assert asked.status_code == 302 and asked.location.startswith("/authorize/resume/")
    factor_page = stale_account.browser.follow(asked)
    assert FACTOR_PAGE.match(factor_page.request.path), "a second factor, not the password again"
    assert "<strong>Your account</strong> asks for a second factor" in text(factor_page)

    back = stale_account.browser.submit(factor_page, code=stale_account.authenticator.code())
    assert back.request.path == "/account/totp/new"
    assert "Add an authenticator app" in text(back)


def test_a_stale_change_is_not_made_but_steps_up_and_lands_on_the_account_page(
    stale_account: Account,
) -> None:
    before = {row.lookup_key for row in rows(stale_account.app, Factor)}
    factor_page = stale_account.post("/account/recovery-codes")
    assert FACTOR_PAGE.match(factor_page.request.path)
    assert {row.lookup_key for row in rows(stale_account.app, Factor)} == before, "no new codes yet"

    back = stale_account.browser.submit(factor_page, code=stale_account.authenticator.code())
    assert back.request.path == "/account"
    assert len(stale_account.generate_recovery_codes()) == 10, "fresh now: the change goes through"


def test_a_stale_script_request_is_told_where_to_step_up(stale_account: Account) -> None:
    token = csrf_token(stale_account.get("/account"))
    answer = stale_account.browser.client.post(
        "/account/passkeys/options", json={}, headers={"X-CSRFToken": token}
    )
    assert answer.status_code == 401
    assert answer.get_json()["redirect"].startswith("/authorize/resume/")


def test_a_zero_reauthentication_age_lets_a_change_through_after_one_step_up(tmp_path: Path) -> None:
    app = make_app(tmp_path, account={"reauthentication_max_age": 0})
    account = sign_in(app, add_client(app)[0])
    factor_page = account.get("/account/totp/new")
    assert FACTOR_PAGE.match(factor_page.request.path)
    form = account.browser.submit(factor_page, code=account.authenticator.code())
    assert form.request.path == "/account/totp/new"
    added = account.browser.submit(form, name="tablet", code=Authenticator(secret_on(form)).code())
    assert notice(added) == "Authenticator app 'tablet' added."


@pytest.mark.parametrize(
    "path",
    ["/account", "/account/sessions", "/account/history", "/account/recovery-codes", "/account/password"],
)
def test_a_stranger_is_asked_to_sign_in(app: Flask, client_id: str, path: str) -> None:
    stranger = Browser(app.test_client(), client_id)
    page = stranger.follow(stranger.client.get(path))
    assert PASSWORD_PAGE.match(page.request.path)
    assert "to continue to <strong>Your account</strong>" in text(page)


# -- CSRF -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "fields"),
    [
        ("/account/factors/{phone}/remove", {}),
        ("/account/totp/new", {"name": "attacker", "code": "000000"}),
        ("/account/recovery-codes", {}),
        ("/account/password", {"password": NEW_PASSWORD, "repeat": NEW_PASSWORD}),
        ("/account/sessions/end-others", {}),
        ("/account/email/new", {"address": "attacker@example.org"}),
    ],
    ids=["remove factor", "add authenticator", "recovery codes", "password", "end sessions", "add email"],
)
def test_a_forged_post_without_the_csrf_token_is_refused_and_changes_nothing(
    app: Flask, client_id: str, account: Account, outbox: Outbox, action: str, fields: dict[str, str]
) -> None:
    account.add_totp("tablet")
    code_from(account.sign_in_again(Browser(app.test_client(), client_id)))
    before = state_of(account)
    outbox.new_messages()
    audited = len(audit_events(app, "account_change"))

    forged = account.browser.client.post(action.format(phone=account.factors()["phone"]), data=fields)

    assert forged.status_code == 400
    assert state_of(account) == before
    assert len(audit_events(app, "account_change")) == audited
    assert outbox.new_messages() == []
