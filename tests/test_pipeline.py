"""The pure pipeline, as tables: what a request requires and what the user must prove next."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import pytest

from idp.auth.pipeline import (
    Account,
    AuthState,
    Done,
    Fail,
    NeedEnrolment,
    NeedFactor,
    NeedPassword,
    Proof,
    RequestRejected,
    Requirement,
    Step,
    apply_proof,
    next_step,
    requirement_for,
    requirement_from_json,
    requirement_to_json,
    state_from_json,
    state_to_json,
)
from idp.auth.policy import Amr, AssurancePolicy, Capability, Method
from idp.config import load_settings, settings_from_mapping

POLICY = AssurancePolicy.from_settings(load_settings())
NOW = 1_000_000.0
MFA_URI = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"

PASSWORD = Proof(Method.PASSWORD, frozenset({Amr.PWD}), NOW - 60)
TOTP = Proof(Method.TOTP, frozenset({Amr.OTP}), NOW - 50)
SYNCED_PASSKEY = Proof(Method.WEBAUTHN, frozenset({Amr.SWK, Amr.USER}), NOW - 40)
SECURITY_KEY = Proof(Method.WEBAUTHN, frozenset({Amr.HWK, Amr.USER}), NOW - 40)

HAS_TOTP = Capability(Method.TOTP, frozenset({Amr.OTP}))
HAS_RECOVERY = Capability(Method.RECOVERY_CODE, frozenset({Amr.OTP}))
HAS_PASSKEY = Capability(Method.WEBAUTHN, frozenset({Amr.SWK, Amr.USER}))
HAS_SECURITY_KEY = Capability(Method.WEBAUTHN, frozenset({Amr.HWK, Amr.USER}))


def requirement(
    acceptable: tuple[str, ...] = ("mfa",),
    *,
    essential: bool = False,
    max_age: int | None = None,
    force_login: bool = False,
    interactive: bool = True,
) -> Requirement:
    return Requirement(acceptable, essential, max_age, force_login, interactive, requested_at=NOW)


def account(*capabilities: Capability, active: bool = True) -> Account:
    return Account(subject="u1", active=active, capabilities=frozenset(capabilities))


def state(*proofs: Proof) -> AuthState:
    return AuthState(subject="u1", proofs=proofs)


@dataclass(frozen=True)
class Case:
    id: str
    state: AuthState | None
    account: Account | None
    requirement: Requirement
    expected: Step
    now: float = field(default=NOW)


CASES = [
    Case("no session asks for the password", None, account(HAS_TOTP), requirement(), NeedPassword()),
    Case(
        "no session with prompt=none fails login_required",
        None,
        account(HAS_TOTP),
        requirement(interactive=False),
        Fail("login_required", "No session satisfies the request."),
    ),
    Case(
        "session of another subject is no session",
        AuthState("other", (PASSWORD, TOTP)),
        account(HAS_TOTP),
        requirement(),
        NeedPassword(),
    ),
    Case(
        "disabled user is refused",
        state(PASSWORD, TOTP),
        account(HAS_TOTP, active=False),
        requirement(),
        Fail("access_denied", "The account is disabled."),
    ),
    Case(
        "password alone asks for TOTP",
        state(PASSWORD),
        account(HAS_TOTP),
        requirement(),
        NeedFactor((Method.TOTP,), "mfa"),
    ),
    Case(
        "password alone offers every second factor, passkey first",
        state(PASSWORD),
        account(HAS_TOTP, HAS_RECOVERY, HAS_PASSKEY),
        requirement(),
        NeedFactor((Method.WEBAUTHN, Method.TOTP, Method.RECOVERY_CODE), "mfa"),
    ),
    Case(
        "password without any second factor enrols TOTP",
        state(PASSWORD),
        account(),
        requirement(),
        NeedEnrolment((Method.TOTP,), "mfa"),
    ),
    Case(
        "a proof by a factor the account no longer has stops counting",
        state(PASSWORD, TOTP),
        account(),
        requirement(),
        NeedEnrolment((Method.TOTP,), "mfa"),
    ),
    Case(
        "password and TOTP reach mfa",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        requirement(),
        Done("mfa", (Amr.PWD, Amr.OTP, Amr.MFA), int(TOTP.at)),
    ),
    Case(
        "a user-verified passkey alone reaches mfa",
        state(SYNCED_PASSKEY),
        account(HAS_PASSKEY),
        requirement(),
        Done("mfa", (Amr.SWK, Amr.USER, Amr.MFA), int(SYNCED_PASSKEY.at)),
    ),
    Case(
        "prompt=none with password only fails login_required",
        state(PASSWORD),
        account(HAS_TOTP),
        requirement(interactive=False),
        Fail("login_required", "No session satisfies the request."),
    ),
    Case(
        "prompt=login discards earlier proofs",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        requirement(force_login=True),
        NeedPassword(),
    ),
    Case(
        "max_age exceeded re-proves the second factor only",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        requirement(max_age=10),
        NeedFactor((Method.TOTP,), "mfa"),
    ),
    Case(
        "max_age within the limit is done",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        requirement(max_age=300),
        Done("mfa", (Amr.PWD, Amr.OTP, Amr.MFA), int(TOTP.at)),
    ),
    Case(
        "max_age after a passkey alone re-proves the passkey, not the password",
        state(SYNCED_PASSKEY),
        account(HAS_PASSKEY),
        requirement(max_age=10),
        NeedFactor((Method.WEBAUTHN,), "mfa"),
    ),
    Case(
        "a fresh password does not refresh a stale passkey",
        state(SYNCED_PASSKEY, replace(PASSWORD, at=NOW + 1)),
        account(HAS_PASSKEY),
        requirement(max_age=10),
        NeedFactor((Method.WEBAUTHN,), "mfa"),
        now=NOW + 2,
    ),
    Case(
        "max_age=0 always re-proves",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        requirement(max_age=0),
        NeedFactor((Method.TOTP,), "mfa"),
    ),
    Case(
        "a fresh TOTP after the request satisfies max_age=0",
        state(PASSWORD, Proof(Method.TOTP, frozenset({Amr.OTP}), NOW + 5)),
        account(HAS_TOTP),
        requirement(max_age=0),
        Done("mfa", (Amr.PWD, Amr.OTP, Amr.MFA), int(NOW + 5)),
        now=NOW + 6,
    ),
    Case(
        "phr after password and TOTP asks only for the passkey",
        state(PASSWORD, TOTP),
        account(HAS_TOTP, HAS_PASSKEY),
        requirement(("phr", "mfa")),
        NeedFactor((Method.WEBAUTHN,), "phr"),
    ),
    Case(
        "voluntary phr without a passkey settles for mfa",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        requirement(("phr", "mfa")),
        Done("mfa", (Amr.PWD, Amr.OTP, Amr.MFA), int(TOTP.at)),
    ),
    Case(
        "essential phr without a passkey is unmet",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        requirement(("phr",), essential=True),
        Fail("unmet_authentication_requirements", "The account cannot reach the phr level."),
    ),
    Case(
        "password and passkey reach phr",
        state(PASSWORD, TOTP, SYNCED_PASSKEY),
        account(HAS_TOTP, HAS_PASSKEY),
        requirement(("phr", "mfa")),
        Done("phr", (Amr.PWD, Amr.SWK, Amr.USER, Amr.MFA), int(SYNCED_PASSKEY.at)),
    ),
    Case(
        "a synced passkey does not reach phrh",
        state(PASSWORD, SYNCED_PASSKEY),
        account(HAS_PASSKEY),
        requirement(("phrh",), essential=True),
        Fail("unmet_authentication_requirements", "The account cannot reach the phrh level."),
    ),
    Case(
        "a device-bound key reaches phrh",
        state(PASSWORD, SECURITY_KEY),
        account(HAS_SECURITY_KEY),
        requirement(("phrh",), essential=True),
        Done("phrh", (Amr.PWD, Amr.HWK, Amr.USER, Amr.MFA), int(SECURITY_KEY.at)),
    ),
    Case(
        "phr decays after its ttl back to mfa",
        state(PASSWORD, TOTP, SYNCED_PASSKEY),
        account(HAS_TOTP, HAS_PASSKEY),
        requirement(("phr", "mfa"), interactive=False),
        Done("mfa", (Amr.PWD, Amr.SWK, Amr.USER, Amr.MFA), int(SYNCED_PASSKEY.at)),
        now=NOW + 20 * 60,
    ),
    Case(
        "a decayed phr is asked for again when interaction is allowed",
        state(PASSWORD, TOTP, SYNCED_PASSKEY),
        account(HAS_TOTP, HAS_PASSKEY),
        requirement(("phr", "mfa")),
        NeedFactor((Method.WEBAUTHN,), "phr"),
        now=NOW + 20 * 60,
    ),
    Case(
        "mfa decays after its ttl and asks for the password",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        requirement(),
        NeedPassword(),
        now=NOW + 13 * 3600,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_next_step(case: Case) -> None:
    assert next_step(case.state, case.account, case.requirement, POLICY, case.now) == case.expected


@dataclass(frozen=True)
class RequirementCase:
    id: str
    expected: Requirement
    scopes: tuple[str, ...] = ("openid",)
    acr_values: str | None = None
    claims: str | None = None
    max_age: str | None = None
    prompt: str | None = None
    client_acr: tuple[str, ...] = ()
    client_max_age: int | None = None


SCOPED = AssurancePolicy.from_settings(
    settings_from_mapping({"scopes": {"payments:write": {"acr": "phr", "max_age": 300}}})
)


def _claims(values: list[str], essential: bool) -> str:
    return json.dumps({"id_token": {"acr": {"essential": essential, "values": values}}})


REQUIREMENT_CASES = [
    RequirementCase("nothing requested means the minimum", requirement()),
    RequirementCase(
        "acr_values in preference order keep the floor last", requirement(("phr", "mfa")), acr_values="phr"
    ),
    RequirementCase("the PAPE alias names mfa", requirement(("mfa",)), acr_values=MFA_URI),
    RequirementCase("unknown voluntary values are ignored", requirement(("mfa",)), acr_values="gold"),
    RequirementCase(
        "essential claims keep only what was asked",
        requirement(("phrh", "phr"), essential=True),
        claims=_claims(["phrh", "phr"], True),
    ),
    RequirementCase(
        "voluntary claims keep the floor", requirement(("phr", "mfa")), claims=_claims(["phr"], False)
    ),
    RequirementCase("max_age is read", requirement(max_age=300), max_age="300"),
    RequirementCase(
        "the smallest max_age of request and client wins",
        requirement(max_age=60),
        max_age="300",
        client_max_age=60,
    ),
    RequirementCase("prompt=login forces login", requirement(force_login=True), prompt="login"),
    RequirementCase("prompt=none is not interactive", requirement(interactive=False), prompt="none"),
    RequirementCase(
        "client default acr applies when the request names none", requirement(("phr",)), client_acr=("phr",)
    ),
]


@pytest.mark.parametrize("case", REQUIREMENT_CASES, ids=[case.id for case in REQUIREMENT_CASES])
def test_requirement_for(case: RequirementCase) -> None:
    found = requirement_for(
        policy=POLICY,
        scopes=case.scopes,
        acr_values=case.acr_values,
        claims=case.claims,
        max_age=case.max_age,
        prompt=case.prompt,
        client_default_acr_values=case.client_acr,
        client_default_max_age=case.client_max_age,
        now=NOW,
    )
    assert found == case.expected


def test_scope_policy_raises_the_floor_and_bounds_max_age() -> None:
    found = requirement_for(
        policy=SCOPED,
        scopes=["openid", "payments:write"],
        acr_values="mfa",
        claims=None,
        max_age=None,
        prompt=None,
        client_default_acr_values=[],
        client_default_max_age=None,
        now=NOW,
    )
    assert found == requirement(("phr",), max_age=300)


@pytest.mark.parametrize(
    ("claims", "max_age", "error"),
    [
        (_claims(["gold"], True), None, "unmet_authentication_requirements"),
        ("{not json", None, "invalid_request"),
        ("[1, 2]", None, "invalid_request"),
        (json.dumps({"id_token": {"acr": {"values": [1]}}}), None, "invalid_request"),
        (None, "-5", "invalid_request"),
        (None, "soon", "invalid_request"),
    ],
    ids=[
        "essential unknown acr is unmet",
        "claims that are not JSON",
        "claims that are not an object",
        "acr values that are not strings",
        "negative max_age",
        "max_age that is not a number",
    ],
)
def test_requirement_for_rejects(claims: str | None, max_age: str | None, error: str) -> None:
    with pytest.raises(RequestRejected) as rejected:
        requirement_for(
            policy=POLICY,
            scopes=["openid"],
            acr_values=None,
            claims=claims,
            max_age=max_age,
            prompt=None,
            client_default_acr_values=[],
            client_default_max_age=None,
            now=NOW,
        )
    assert rejected.value.error == error


def test_apply_proof_keeps_the_latest_proof_per_method() -> None:
    later = Proof(Method.TOTP, frozenset({Amr.OTP}), NOW)
    assert apply_proof(state(PASSWORD, TOTP), "u1", later) == state(PASSWORD, later)


def test_apply_proof_for_another_subject_starts_over() -> None:
    assert apply_proof(state(PASSWORD, TOTP), "u2", PASSWORD) == AuthState("u2", (PASSWORD,))


def test_state_and_requirement_survive_json() -> None:
    original = state(PASSWORD, SYNCED_PASSKEY)
    assert state_from_json(json.loads(json.dumps(state_to_json(original)))) == original
    wanted = requirement(("phr", "mfa"), max_age=5)
    assert requirement_from_json(json.loads(json.dumps(requirement_to_json(wanted)))) == wanted


STEP_UP_ENROLMENT = replace(POLICY, enrol_at_step_up=(Method.WEBAUTHN,))


@pytest.mark.parametrize(
    ("proofs", "expected"),
    [
        ((PASSWORD, TOTP), NeedEnrolment((Method.WEBAUTHN,), "phr")),
        ((replace(PASSWORD, at=NOW - 900), replace(TOTP, at=NOW - 900)), NeedFactor((Method.TOTP,), "mfa")),
        ((PASSWORD,), NeedFactor((Method.TOTP,), "mfa")),
    ],
    ids=[
        "a fresh mfa session enrols a passkey for essential phr",
        "a stale mfa session proves a second factor before enrolling",
        "a half-finished sign-in completes mfa before enrolling",
    ],
)
def test_essential_level_out_of_reach_offers_enrolment_when_policy_allows(
    proofs: tuple[Proof, ...], expected: Step
) -> None:
    wanted = requirement(("phr",), essential=True)
    assert next_step(state(*proofs), account(HAS_TOTP), wanted, STEP_UP_ENROLMENT, NOW) == expected


def test_a_device_bound_level_offers_passkey_enrolment() -> None:
    policy = replace(POLICY, enrol_at_step_up=(Method.WEBAUTHN,))
    wanted = requirement(("phrh",), essential=True)
    step = next_step(state(PASSWORD, TOTP), account(HAS_TOTP), wanted, policy, NOW)
    assert step == NeedEnrolment((Method.WEBAUTHN,), "phrh")


HAS_EMAIL = Capability(Method.EMAIL_CODE, frozenset({Amr.EMAIL}))
EMAIL = Proof(Method.EMAIL_CODE, frozenset({Amr.EMAIL}), NOW + 5)
EMAIL_AT_SIGN_IN = AssurancePolicy.from_settings(
    settings_from_mapping({"factors": {"email": {"sign_in": True}}})
)
NO_EMAIL_STEP_UP = AssurancePolicy.from_settings(
    settings_from_mapping({"factors": {"email": {"step_up": False}}})
)

EMAIL_CASES = [
    Case(
        "an email code is not a second factor at sign-in by default",
        state(PASSWORD),
        account(HAS_EMAIL),
        requirement(),
        NeedEnrolment((Method.TOTP,), "mfa"),
    ),
    Case(
        "a stale mfa session may re-prove with TOTP or an email code",
        state(PASSWORD, TOTP),
        account(HAS_TOTP, HAS_EMAIL),
        requirement(max_age=10),
        NeedFactor((Method.TOTP, Method.EMAIL_CODE), "mfa"),
    ),
    Case(
        "a fresh email code refreshes a stale mfa session",
        state(PASSWORD, TOTP, EMAIL),
        account(HAS_TOTP, HAS_EMAIL),
        requirement(max_age=0),
        Done("mfa", (Amr.PWD, Amr.OTP, Amr.EMAIL, Amr.MFA), int(EMAIL.at)),
        now=NOW + 6,
    ),
    Case(
        "an email code does not reach phr",
        state(PASSWORD, TOTP, EMAIL),
        account(HAS_TOTP, HAS_EMAIL),
        requirement(("phr",), essential=True),
        Fail("unmet_authentication_requirements", "The account cannot reach the phr level."),
        now=NOW + 6,
    ),
]


@pytest.mark.parametrize("case", EMAIL_CASES, ids=[case.id for case in EMAIL_CASES])
def test_email_codes_step_up_by_default(case: Case) -> None:
    assert next_step(case.state, case.account, case.requirement, POLICY, case.now) == case.expected


def test_email_codes_reach_mfa_at_sign_in_when_policy_allows() -> None:
    step = next_step(state(PASSWORD, EMAIL), account(HAS_EMAIL), requirement(), EMAIL_AT_SIGN_IN, NOW + 6)
    assert step == Done("mfa", (Amr.PWD, Amr.EMAIL, Amr.MFA), int(EMAIL.at))


def test_email_codes_do_not_refresh_when_step_up_is_off() -> None:
    step = next_step(
        state(PASSWORD, TOTP), account(HAS_TOTP, HAS_EMAIL), requirement(max_age=10), NO_EMAIL_STEP_UP, NOW
    )
    assert step == NeedFactor((Method.TOTP,), "mfa")


def test_a_raised_floor_that_totp_cannot_reach_is_unmet_rather_than_a_totp_enrolment_loop() -> None:
    raised = requirement(("phr",))  # a scope rule or client default: not essential, but the floor
    step = next_step(state(PASSWORD, TOTP), account(HAS_TOTP), raised, POLICY, NOW)
    assert step == Fail("unmet_authentication_requirements", "The account cannot reach the phr level.")
