"""Administrators (issue 17, point 2): an administrator must hold an attested key, enrolled in the first
sign-in instead of TOTP (or after a fresh MFA sign-in when they already have other factors)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from support.app import Browser, add_client, add_user, code_from, make_app, meta_csrf_token
from support.attestation import Attester, CertificateAuthority
from support.live import write_config
from support.soft_authenticator import SoftAuthenticator
from support.step_up import RelyingParty as Client
from support.step_up import passkey_options, pending_id, send_assertion
from test_cli import idp
from test_pipeline import (
    HAS_SECURITY_KEY,
    HAS_TOTP,
    PASSWORD,
    POLICY,
    SECURITY_KEY,
    TOTP,
    Case,
    requirement,
    state,
)
from werkzeug.test import TestResponse

from idp.auth.pipeline import (
    Account,
    Done,
    Fail,
    NeedEnrolment,
    NeedFactor,
    Proof,
    TokenDemand,
    administrative_requirement,
    administrative_token_demand,
    next_step,
)
from idp.auth.policy import Amr, AssurancePolicy, Capability, Method
from idp.config import settings_from_mapping
from idp.store.tables import User
from idp.web import services

ENROL_KEY = NeedEnrolment((Method.WEBAUTHN,), "phrh")


def administrator(*capabilities: Capability) -> Account:
    return Account(subject="u1", active=True, capabilities=frozenset(capabilities), administrator=True)


CASES = [
    Case(
        "a new administrator enrols a key instead of TOTP",
        state(PASSWORD),
        administrator(),
        requirement(),
        ENROL_KEY,
    ),
    Case(
        "an administrator with TOTP proves it before enrolling a key",
        state(PASSWORD),
        administrator(HAS_TOTP),
        requirement(),
        NeedFactor((Method.TOTP,), "mfa"),
    ),
    Case(
        "fails to finish: a fresh MFA sign-in without an attested key enrols one",
        state(PASSWORD, TOTP),
        administrator(HAS_TOTP),
        requirement(),
        ENROL_KEY,
    ),
    Case(
        "fails with login_required: prompt=none cannot enrol",
        state(PASSWORD, TOTP),
        administrator(HAS_TOTP),
        requirement(interactive=False),
        Fail("login_required", "No session satisfies the request."),
    ),
    Case(
        "an administrator holding an attested key signs in as anyone else",
        state(PASSWORD, SECURITY_KEY),
        administrator(HAS_SECURITY_KEY),
        requirement(),
        Done("phrh", (Amr.PWD, Amr.HWK, Amr.USER, Amr.MFA), int(SECURITY_KEY.at)),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_an_administrator_must_hold_an_attested_key(case: Case) -> None:
    assert next_step(case.state, case.account, case.requirement, POLICY, case.now) == case.expected


# -- the first administrator's first sign-in -----------------------------------------------------------

VENDOR = CertificateAuthority("Admin Key Vendor")
SECRET = "a long enough password"


@pytest.fixture
def client(tmp_path: Path) -> Client:
    roots = tmp_path / "roots"
    VENDOR.write(roots)
    app = make_app(tmp_path, webauthn={"attestation_roots": str(roots)})
    return Client(app, *add_client(app))


def promote(app: Flask, username: str) -> None:
    with app.app_context(), services().database.unit_of_work() as session:
        session.scalars(select(User).where(User.username == username)).one().is_admin = True


def enrol(browser: Browser, page: TestResponse, key: SoftAuthenticator) -> TestResponse:
    """What webauthn.js does on the sign-in's key enrolment page; returns where it leads."""
    base = f"/signin/{pending_id(page)}/enrol/passkey"
    csrf = meta_csrf_token(page)
    options = browser.post_json(f"{base}/options", {}, csrf=csrf).get_json()
    created = browser.post_json(base, {"credential": key.create(options)}, csrf=csrf)
    assert created.status_code == 200, created.get_data(as_text=True)
    return browser.follow(browser.client.get(created.get_json()["redirect"]))


@pytest.mark.parametrize(
    ("attested", "finished"),
    [(True, True), (False, False)],
    ids=["an attested key finishes the sign-in", "fails to finish: an unattested key is asked for again"],
)
def test_the_first_administrator_enrols_an_attested_key_in_the_first_sign_in(
    client: Client, attested: bool, finished: bool
) -> None:
    add_user(client.app, "root", SECRET)
    promote(client.app, "root")
    browser = client.browser()
    page = browser.submit(browser.authorize(), username="root", password=SECRET)
    assert page.request.path.endswith("/enrol/passkey"), page.request.path
    key = SoftAuthenticator(backup_eligible=False, attester=Attester(VENDOR) if attested else None)
    after = browser.save_recovery_codes(enrol(browser, page, key))  # the account's first factor
    assert after.request.path.endswith("/factor"), "the new key is used before the sign-in goes on"
    answer = send_assertion(browser, after, key.get(passkey_options(browser, after)))
    done = browser.follow(browser.client.get(answer.get_json()["redirect"]))
    if not finished:
        assert done.request.path.endswith("/enrol/passkey"), "an unattested key is not enough"
        return
    claims = browser.id_token_claims(browser.redeem(code_from(done), client.secret)["id_token"])
    assert claims["acr"] == "phrh" and claims["amr"] == ["pwd", "hwk", "user", "mfa"]


# -- the CLI ---------------------------------------------------------------------------------------------


def test_administrators_are_created_promoted_and_demoted_with_the_cli(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=8000)
    assert idp(config, "init").returncode == 0
    created = idp(config, "users", "create", "root", "--admin", "--password-stdin", stdin=SECRET + "\n")
    assert created.returncode == 0 and created.stdout.startswith("created administrator root")
    assert idp(config, "users", "create", "alice", "--password-stdin", stdin=SECRET + "\n").returncode == 0
    assert idp(config, "users", "promote", "alice").stdout == "alice is an administrator\n"
    assert idp(config, "users", "demote", "root").stdout == "root is no longer an administrator\n"
    missing = idp(config, "users", "promote", "nobody")
    assert missing.returncode == 2 and "no user named 'nobody'" in missing.stderr


# -- every administrative action: the admin level, no older than [admin] max_age ----------------------

ADMIN_NOW = SECURITY_KEY.at + 10


def stale(proof: Proof, seconds: float) -> Proof:
    return replace(proof, at=ADMIN_NOW - seconds)


ADMINISTRATIVE_CASES = [
    Case(
        "an attested key proven a moment ago is enough",
        state(PASSWORD, SECURITY_KEY),
        administrator(HAS_SECURITY_KEY),
        administrative_requirement(POLICY, ADMIN_NOW),
        Done("phrh", (Amr.PWD, Amr.HWK, Amr.USER, Amr.MFA), int(SECURITY_KEY.at)),
        now=ADMIN_NOW,
    ),
    Case(
        "fails because the key was proven longer than max_age ago: the key again, not the password",
        state(stale(PASSWORD, 400), stale(SECURITY_KEY, 301)),
        administrator(HAS_SECURITY_KEY),
        administrative_requirement(POLICY, ADMIN_NOW),
        NeedFactor((Method.WEBAUTHN,), "phrh"),
        now=ADMIN_NOW,
    ),
    Case(
        "fails because an MFA sign-in with TOTP is not the admin level",
        state(PASSWORD, TOTP),
        administrator(HAS_TOTP, HAS_SECURITY_KEY),
        administrative_requirement(POLICY, ADMIN_NOW),
        NeedFactor((Method.WEBAUTHN,), "phrh"),
        now=ADMIN_NOW,
    ),
]


@pytest.mark.parametrize("case", ADMINISTRATIVE_CASES, ids=[case.id for case in ADMINISTRATIVE_CASES])
def test_an_administrative_action_needs_the_admin_level_within_max_age(case: Case) -> None:
    assert next_step(case.state, case.account, case.requirement, POLICY, case.now) == case.expected


def test_the_admin_max_age_and_level_come_from_the_settings() -> None:
    policy = AssurancePolicy.from_settings(settings_from_mapping({"admin": {"acr": "phr", "max_age": 60}}))
    assert administrative_token_demand(policy) == TokenDemand(acr_values=("phr",), max_age=60)
    assert administrative_requirement(policy, 5.0).max_age == 60
    assert administrative_token_demand(POLICY) == TokenDemand(acr_values=("phrh",), max_age=300)
