"""One-time passwords (issue 17): an operator sets one (`idp users set-password --temporary`, the admin
API's `temporary: true`); right after its proof the user must choose their own, before anything else,
and the one-time password serves for that once (a second browser that proved it too gets nothing)."""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from support.account import rows
from support.app import Browser, add_client, csrf_token, make_app
from support.live import write_config
from test_admin_api import Admin
from test_cli import idp
from test_pipeline import (
    HAS_PASSKEY,
    HAS_TOTP,
    NOW,
    PASSWORD,
    POLICY,
    SYNCED_PASSKEY,
    TOTP,
    Case,
    account,
    requirement,
    state,
)
from werkzeug.test import TestResponse

from idp.auth.pipeline import NeedNewPassword, NeedPassword, next_step
from idp.store.database import Database
from idp.store.durable import DurableStore
from idp.store.tables import AuditEvent, User

ONE_TIME = "handed over the phone"
CHOSEN = "my very own passphrase"


def must_change(*capabilities: object) -> object:
    return replace(account(*capabilities), password_must_change=True)  # type: ignore[arg-type]


CASES = [
    Case(
        "the one-time password proven: the user's own password before the second factor",
        state(PASSWORD),
        must_change(HAS_TOTP),
        requirement(),
        NeedNewPassword(),
    ),
    Case(
        "before anything else: even with every factor proven",
        state(PASSWORD, TOTP),
        must_change(HAS_TOTP),
        requirement(),
        NeedNewPassword(),
    ),
    Case(
        "fails with login_required: prompt=none cannot ask for a password",
        state(PASSWORD, TOTP),
        must_change(HAS_TOTP),
        requirement(interactive=False),
        next_step(None, None, requirement(interactive=False), POLICY, NOW),
    ),
    Case(
        "a passkey alone used no password: nothing to replace yet",
        state(SYNCED_PASSKEY),
        must_change(HAS_PASSKEY),
        requirement(),
        next_step(state(SYNCED_PASSKEY), account(HAS_PASSKEY), requirement(), POLICY, NOW),
    ),
    Case("no proof yet: the password first", None, must_change(HAS_TOTP), requirement(), NeedPassword()),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_the_pipeline_asks_for_a_new_password_right_after_a_one_time_one(case: Case) -> None:
    assert next_step(case.state, case.account, case.requirement, POLICY, NOW) == case.expected


# -- over HTTP, in process on the test Redis ---------------------------------------------------------


@pytest.fixture
def admin(tmp_path: Path, redis_url: str) -> Admin:
    return Admin(make_app(tmp_path, redis={"url": redis_url}))


def user_browser(admin: Admin, client_id: str) -> Browser:
    return Browser(admin.app.test_client(), client_id)


def prove_one_time_password(browser: Browser) -> TestResponse:
    page = browser.submit(browser.authorize(), username="alice", password=ONE_TIME)
    assert re.fullmatch(r"/signin/[^/]+/password/new", page.request.path), page.request.path
    return page


def stored(admin: Admin) -> User:
    (alice,) = [user for user in rows(admin.app, User) if user.username == "alice"]
    return alice


def test_an_administrator_sets_a_one_time_password_and_the_user_chooses_their_own(admin: Admin) -> None:
    alice = admin.user("alice")
    client_id, _secret = add_client(admin.app)
    set_it = admin.call("PUT", f"/users/{alice.id}/password", json={"password": ONE_TIME, "temporary": True})
    assert set_it.status_code == 204 and stored(admin).password_must_change
    browser = user_browser(admin, client_id)
    page = prove_one_time_password(browser)

    assert browser.client.get("/account").status_code == 302, "nothing else before the new password"
    weak = browser.submit(page, password="password1234", repeat="password1234")
    assert weak.status_code == 400 and "most common" in weak.get_data(as_text=True)
    differ = browser.submit(page, password=CHOSEN, repeat=CHOSEN + "!")
    assert differ.status_code == 400 and "The two passwords differ." in differ.get_data(as_text=True)
    same = browser.submit(page, password=ONE_TIME, repeat=ONE_TIME)
    assert same.status_code == 400 and "other than the one-time one" in same.get_data(as_text=True)
    enrolment = browser.submit(page, password=CHOSEN, repeat=CHOSEN)
    assert enrolment.request.path.endswith("/enrol/totp"), "then the second factor, as for anyone"
    assert not stored(admin).password_must_change

    again = user_browser(admin, client_id)
    refused = again.submit(again.authorize(), username="alice", password=ONE_TIME)
    assert refused.status_code == 401, "the one-time password served once"
    chosen = again.submit(again.authorize(), username="alice", password=CHOSEN)
    assert chosen.request.path.endswith("/enrol/totp")
    (changed,) = [e for e in rows(admin.app, AuditEvent) if e.event == "password_changed"]
    assert changed.user_id == alice.id and changed.detail["via"] == "sign-in"


def test_a_second_browser_that_proved_the_one_time_password_too_cannot_use_it(admin: Admin) -> None:
    admin.user("alice")
    client_id, _secret = add_client(admin.app)
    alice_id = stored(admin).id
    admin.call("PUT", f"/users/{alice_id}/password", json={"password": ONE_TIME, "temporary": True})
    first, second = user_browser(admin, client_id), user_browser(admin, client_id)
    first_page, second_page = prove_one_time_password(first), prove_one_time_password(second)

    first.submit(first_page, password=CHOSEN, repeat=CHOSEN)
    late = second.submit(second_page, password="the attacker's choice", repeat="the attacker's choice")

    assert late.status_code == 400, "its session ended with the replacement: its form is refused"
    assert second.client.get("/account").status_code == 302, "the second browser is signed out"
    expired = second.client.get(second_page.request.path)
    assert expired.status_code == 400 and "Sign-in expired" in expired.get_data(as_text=True)
    retry = user_browser(admin, client_id)
    assert retry.submit(retry.authorize(), username="alice", password=CHOSEN).status_code == 200


def test_two_browsers_replacing_the_one_time_password_at_once_replace_it_once(admin: Admin) -> None:
    admin.user("alice")
    client_id, _secret = add_client(admin.app)
    admin.call("PUT", f"/users/{stored(admin).id}/password", json={"password": ONE_TIME, "temporary": True})
    browsers = [user_browser(admin, client_id) for _ in range(2)]
    pages = [prove_one_time_password(browser) for browser in browsers]
    choices = ["the first browser's choice", "the second browser's choice"]
    together = threading.Barrier(2, timeout=10)
    answers: list[TestResponse | None] = [None, None]

    def replace_it(index: int) -> None:
        form = {"csrf_token": csrf_token(pages[index]), "password": choices[index], "repeat": choices[index]}
        together.wait()
        answers[index] = browsers[index].client.post(pages[index].request.path, data=form)

    threads = [threading.Thread(target=replace_it, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    statuses = sorted(answer.status_code for answer in answers if answer is not None)
    assert statuses[0] == 302 and statuses[1] in (400, 403), statuses
    (winner,) = [index for index, answer in enumerate(answers) if answer and answer.status_code == 302]
    changed = [e for e in rows(admin.app, AuditEvent) if e.event == "password_changed"]
    assert len(changed) == 1
    retry = user_browser(admin, client_id)
    assert retry.submit(retry.authorize(), username="alice", password=choices[1 - winner]).status_code == 401
    retry = user_browser(admin, client_id)
    assert retry.submit(retry.authorize(), username="alice", password=choices[winner]).status_code == 200


def test_the_cli_sets_a_one_time_password(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=8000)
    assert idp(config, "init").returncode == 0
    assert idp(config, "users", "create", "alice", "--password-stdin", stdin=CHOSEN + "\n").returncode == 0
    done = idp(config, "users", "set-password", "alice", "--temporary", "--password-stdin", stdin=ONE_TIME)
    assert (done.returncode, done.stdout) == (0, "set a one-time password of alice; their sessions ended\n")


def test_a_one_time_password_is_replaced_once(database: Database) -> None:
    """The store's conditional replacement: of two (concurrent) replacements the second finds none."""
    with database.unit_of_work() as session:
        session.add(
            User(id="u1", username="alice", password_hash="one-time", created_at=0, password_must_change=True)
        )
    replaced = []
    for new_hash in ("first", "second"):
        with database.unit_of_work() as session:
            replaced.append(
                DurableStore.over(session).users.replace_temporary_password("u1", password_hash=new_hash)
            )
    with database.unit_of_work() as session:
        alice = DurableStore.over(session).users.get("u1")
        assert alice is not None and (alice.password_hash, alice.password_must_change) == ("first", False)
    assert replaced == [True, False]
