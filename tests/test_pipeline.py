"""The pure pipeline, as tables: what a request requires and what the user must prove next."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import permutations

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
    RequestedAcr,
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
    *requested: str,
    floor: str = "mfa",
    essential: bool = False,
    max_age: int | None = None,
    force_login: bool = False,
    interactive: bool = True,
) -> Requirement:
    """The acr values as requested (names or aliases, in preference order) above `floor`."""
    wanted = tuple(RequestedAcr(value, POLICY.resolve(value) or value) for value in requested)
    return Requirement(wanted, floor, essential, max_age, force_login, interactive, requested_at=NOW)


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
        "a user-verified passkey alone reaches mfa and says phr",
        state(SYNCED_PASSKEY),
        account(HAS_PASSKEY),
        requirement(),
        Done("phr", (Amr.SWK, Amr.USER, Amr.MFA), int(SYNCED_PASSKEY.at)),
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
        requirement("phr"),
        NeedFactor((Method.WEBAUTHN,), "phr"),
    ),
    Case(
        "voluntary phr without a passkey settles for mfa",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        requirement("phr"),
        Done("mfa", (Amr.PWD, Amr.OTP, Amr.MFA), int(TOTP.at)),
    ),
    Case(
        "essential phr without a passkey is unmet",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        requirement("phr", essential=True),
        Fail("unmet_authentication_requirements", "The account cannot reach the phr level."),
    ),
    Case(
        "password and passkey reach phr",
        state(PASSWORD, TOTP, SYNCED_PASSKEY),
        account(HAS_TOTP, HAS_PASSKEY),
        requirement("phr"),
        Done("phr", (Amr.PWD, Amr.SWK, Amr.USER, Amr.MFA), int(SYNCED_PASSKEY.at)),
    ),
    Case(
        "a synced passkey does not reach phrh",
        state(PASSWORD, SYNCED_PASSKEY),
        account(HAS_PASSKEY),
        requirement("phrh", essential=True),
        Fail("unmet_authentication_requirements", "The account cannot reach the phrh level."),
    ),
    Case(
        "a device-bound key reaches phrh",
        state(PASSWORD, SECURITY_KEY),
        account(HAS_SECURITY_KEY),
        requirement("phrh", essential=True),
        Done("phrh", (Amr.PWD, Amr.HWK, Amr.USER, Amr.MFA), int(SECURITY_KEY.at)),
    ),
    Case(
        "phr decays after its ttl back to mfa",
        state(PASSWORD, TOTP, SYNCED_PASSKEY),
        account(HAS_TOTP, HAS_PASSKEY),
        requirement("phr", interactive=False),
        Done("mfa", (Amr.PWD, Amr.SWK, Amr.USER, Amr.MFA), int(SYNCED_PASSKEY.at)),
        now=NOW + 20 * 60,
    ),
    Case(
        "a decayed phr is asked for again when interaction is allowed",
        state(PASSWORD, TOTP, SYNCED_PASSKEY),
        account(HAS_TOTP, HAS_PASSKEY),
        requirement("phr"),
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
class Request:
    """An authorization request's authentication parameters, and its client's registered defaults."""

    scopes: tuple[str, ...] = ("openid",)
    acr_values: str | None = None
    claims: str | None = None
    max_age: str | None = None
    prompt: str | None = None
    client_acr: tuple[str, ...] = ()
    client_max_age: int | None = None

    def requirement(self, policy: AssurancePolicy = POLICY) -> Requirement:
        return requirement_for(
            policy=policy,
            scopes=self.scopes,
            acr_values=self.acr_values,
            claims=self.claims,
            max_age=self.max_age,
            prompt=self.prompt,
            client_default_acr_values=self.client_acr,
            client_default_max_age=self.client_max_age,
            now=NOW,
        )


@dataclass(frozen=True)
class RequirementCase:
    id: str
    expected: Requirement
    request: Request = Request()


SCOPED = AssurancePolicy.from_settings(
    settings_from_mapping({"scopes": {"payments:write": {"acr": "phr", "max_age": 300}}})
)


def _claims(values: list[str], essential: bool) -> str:
    return json.dumps({"id_token": {"acr": {"essential": essential, "values": values}}})


REQUIREMENT_CASES = [
    RequirementCase("nothing requested means the minimum", requirement()),
    RequirementCase(
        "acr_values in preference order keep the floor last", requirement("phr"), Request(acr_values="phr")
    ),
    RequirementCase("the PAPE alias names mfa", requirement(MFA_URI), Request(acr_values=MFA_URI)),
    RequirementCase("unknown voluntary values are ignored", requirement(), Request(acr_values="gold")),
    RequirementCase(
        "essential claims keep only what was asked",
        requirement("phrh", "phr", essential=True),
        Request(claims=_claims(["phrh", "phr"], True)),
    ),
    RequirementCase(
        "voluntary claims keep the floor", requirement("phr"), Request(claims=_claims(["phr"], False))
    ),
    RequirementCase("max_age is read", requirement(max_age=300), Request(max_age="300")),
    RequirementCase(
        "the smallest max_age of request and client wins",
        requirement(max_age=60),
        Request(max_age="300", client_max_age=60),
    ),
    RequirementCase("prompt=login forces login", requirement(force_login=True), Request(prompt="login")),
    RequirementCase("prompt=none is not interactive", requirement(interactive=False), Request(prompt="none")),
    RequirementCase(
        "client default acr applies when the request names none",
        requirement("phr", floor="phr"),
        Request(client_acr=("phr",)),
    ),
]


@pytest.mark.parametrize("case", REQUIREMENT_CASES, ids=[case.id for case in REQUIREMENT_CASES])
def test_requirement_for(case: RequirementCase) -> None:
    assert case.request.requirement() == case.expected


def test_scope_policy_raises_the_floor_and_bounds_max_age() -> None:
    found = Request(scopes=("openid", "payments:write"), acr_values="mfa").requirement(SCOPED)
    assert found == requirement(floor="phr", max_age=300)


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
        Request(claims=claims, max_age=max_age).requirement()
    assert rejected.value.error == error


def test_apply_proof_keeps_the_latest_proof_per_method() -> None:
    later = Proof(Method.TOTP, frozenset({Amr.OTP}), NOW)
    assert apply_proof(state(PASSWORD, TOTP), "u1", later) == state(PASSWORD, later)


def test_apply_proof_for_another_subject_starts_over() -> None:
    assert apply_proof(state(PASSWORD, TOTP), "u2", PASSWORD) == AuthState("u2", (PASSWORD,))


def test_state_and_requirement_survive_json() -> None:
    original = state(PASSWORD, SYNCED_PASSKEY)
    assert state_from_json(json.loads(json.dumps(state_to_json(original)))) == original
    wanted = requirement("phr", max_age=5)
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
    wanted = requirement("phr", essential=True)
    assert next_step(state(*proofs), account(HAS_TOTP), wanted, STEP_UP_ENROLMENT, NOW) == expected


def test_a_device_bound_level_offers_passkey_enrolment() -> None:
    policy = replace(POLICY, enrol_at_step_up=(Method.WEBAUTHN,))
    wanted = requirement("phrh", essential=True)
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
        requirement("phr", essential=True),
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
    raised = requirement(floor="phr")  # a scope rule or client default: not essential, but the floor
    step = next_step(state(PASSWORD, TOTP), account(HAS_TOTP), raised, POLICY, NOW)
    assert step == Fail("unmet_authentication_requirements", "The account cannot reach the phr level.")


# -- the acr contract (OIDC Core 2, 3.1.2.1, 5.5.1.1): what is asked for and what is answered ----------

ADVERTISED = tuple(POLICY.acr_values_supported)  # mfa, its PAPE alias, phr, phrh
ORDERS = [order for size in range(1, len(ADVERTISED) + 1) for order in permutations(ADVERTISED, size)]
MFA_SPELLINGS = frozenset({"mfa", MFA_URI})
MFA_BY_TOTP = (Amr.PWD, Amr.OTP, Amr.MFA)
BY_SYNCED_PASSKEY = (Amr.PWD, Amr.SWK, Amr.USER, Amr.MFA)
BY_SECURITY_KEY = (Amr.PWD, Amr.HWK, Amr.USER, Amr.MFA)


def spelled(order: tuple[str, ...]) -> str:
    return " ".join("pape-mfa" if value == MFA_URI else value for value in order)


def first_of(order: tuple[str, ...], among: frozenset[str], otherwise: str) -> str:
    return next((value for value in order if value in among), otherwise)


def decide(
    state: AuthState,
    account: Account,
    request: Request,
    *,
    policy: AssurancePolicy = POLICY,
    now: float = NOW,
) -> Step:
    """The pipeline's answer to an authorization request: its requirement, then the next step."""
    return next_step(state, account, request.requirement(policy), policy, now)


@dataclass(frozen=True)
class Voluntary:
    """A session asked for acr values in some order: what it must get, whatever the order."""

    id: str
    state: AuthState
    account: Account
    expected: Callable[[tuple[str, ...]], Step]


VOLUNTARY = [
    Voluntary(
        "no second factor yet: TOTP is enrolled in the sign-in, never unmet",
        state(PASSWORD),
        account(),
        lambda order: NeedEnrolment((Method.TOTP,), "mfa"),
    ),
    Voluntary(
        "TOTP just enrolled: the first mfa spelling requested, else the strongest held (mfa)",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        lambda order: Done(first_of(order, MFA_SPELLINGS, "mfa"), MFA_BY_TOTP, int(TOTP.at)),
    ),
    Voluntary(
        "a TOTP user after the password is asked for TOTP",
        state(PASSWORD),
        account(HAS_TOTP),
        lambda order: NeedFactor((Method.TOTP,), "mfa"),
    ),
    Voluntary(
        "a synced passkey user after the password is asked for it, for the first level it reaches",
        state(PASSWORD),
        account(HAS_PASSKEY),
        lambda order: NeedFactor(
            (Method.WEBAUTHN,), POLICY.resolve(first_of(order, MFA_SPELLINGS | {"phr"}, "mfa")) or ""
        ),
    ),
    Voluntary(
        "a synced passkey sign-in: the first value it satisfies, else the strongest held (phr)",
        state(PASSWORD, SYNCED_PASSKEY),
        account(HAS_PASSKEY),
        lambda order: Done(
            first_of(order, MFA_SPELLINGS | {"phr"}, "phr"), BY_SYNCED_PASSKEY, int(SYNCED_PASSKEY.at)
        ),
    ),
    Voluntary(
        "a security key sign-in satisfies every value: the first is answered",
        state(PASSWORD, SECURITY_KEY),
        account(HAS_SECURITY_KEY),
        lambda order: Done(order[0], BY_SECURITY_KEY, int(SECURITY_KEY.at)),
    ),
]


@pytest.mark.parametrize(
    ("case", "order"),
    [pytest.param(case, order, id=f"{case.id} [{spelled(order)}]") for case in VOLUNTARY for order in ORDERS],
)
def test_voluntary_acr_values_never_block_and_their_order_is_only_a_preference(
    case: Voluntary, order: tuple[str, ...]
) -> None:
    assert decide(case.state, case.account, Request(acr_values=" ".join(order))) == case.expected(order)


@dataclass(frozen=True)
class Answer:
    """An authorization request the session satisfies, and the Done it is answered with."""

    id: str
    state: AuthState
    account: Account
    expected: Step
    request: Request = Request()
    now: float = NOW
    policy: AssurancePolicy = POLICY


ANSWERS = [
    Answer(
        "no acr_values: a synced passkey alone says phr, not mfa",
        state(SYNCED_PASSKEY),
        account(HAS_PASSKEY),
        Done("phr", (Amr.SWK, Amr.USER, Amr.MFA), int(SYNCED_PASSKEY.at)),
    ),
    Answer(
        "no acr_values: a device-bound key alone says phrh",
        state(SECURITY_KEY),
        account(HAS_SECURITY_KEY),
        Done("phrh", (Amr.HWK, Amr.USER, Amr.MFA), int(SECURITY_KEY.at)),
    ),
    Answer(
        "no acr_values: password and TOTP say mfa",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        Done("mfa", MFA_BY_TOTP, int(TOTP.at)),
    ),
    Answer(
        "no acr_values: password, TOTP and a passkey say phr, with the passkey's amr",
        state(PASSWORD, TOTP, SYNCED_PASSKEY),
        account(HAS_TOTP, HAS_PASSKEY),
        Done("phr", BY_SYNCED_PASSKEY, int(SYNCED_PASSKEY.at)),
    ),
    Answer(
        "acr_values mfa phr: a passkey session answers mfa, the client's first choice",
        state(PASSWORD, SYNCED_PASSKEY),
        account(HAS_PASSKEY),
        Done("mfa", BY_SYNCED_PASSKEY, int(SYNCED_PASSKEY.at)),
        Request(acr_values="mfa phr"),
    ),
    Answer(
        "acr_values phrh phr: a synced passkey answers phr, the first it satisfies",
        state(PASSWORD, SYNCED_PASSKEY),
        account(HAS_PASSKEY),
        Done("phr", BY_SYNCED_PASSKEY, int(SYNCED_PASSKEY.at)),
        Request(acr_values="phrh phr"),
    ),
    Answer(
        "the PAPE alias in acr_values is answered as spelled",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        Done(MFA_URI, MFA_BY_TOTP, int(TOTP.at)),
        Request(acr_values=MFA_URI),
    ),
    Answer(
        "the PAPE alias as an essential claim is answered as spelled",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        Done(MFA_URI, MFA_BY_TOTP, int(TOTP.at)),
        Request(claims=_claims([MFA_URI], True)),
    ),
    Answer(
        "the client's default PAPE alias is answered as registered",
        state(PASSWORD, TOTP),
        account(HAS_TOTP),
        Done(MFA_URI, MFA_BY_TOTP, int(TOTP.at)),
        Request(client_acr=(MFA_URI,)),
    ),
    Answer(
        "phr decayed after its ttl: the strongest level still held, mfa",
        state(PASSWORD, SYNCED_PASSKEY),
        account(HAS_PASSKEY),
        Done("mfa", BY_SYNCED_PASSKEY, int(SYNCED_PASSKEY.at)),
        now=NOW + 20 * 60,
    ),
    Answer(
        "a value below the scope's floor is not answered: the strongest level held is",
        state(PASSWORD, SYNCED_PASSKEY),
        account(HAS_PASSKEY),
        Done("phr", BY_SYNCED_PASSKEY, int(SYNCED_PASSKEY.at)),
        Request(acr_values="mfa", scopes=("openid", "payments:write")),
        policy=SCOPED,
    ),
    Answer(
        "max_age met by a fresh TOTP while the passkey is stale: mfa, not phr",
        state(PASSWORD, SYNCED_PASSKEY, replace(TOTP, at=NOW + 5)),
        account(HAS_TOTP, HAS_PASSKEY),
        Done("mfa", MFA_BY_TOTP, int(NOW + 5)),
        Request(max_age="0"),
        now=NOW + 6,
    ),
]


@pytest.mark.parametrize("case", ANSWERS, ids=[case.id for case in ANSWERS])
def test_acr_is_the_first_requested_value_satisfied_else_the_strongest_level_reached(case: Answer) -> None:
    assert decide(case.state, case.account, case.request, policy=case.policy, now=case.now) == case.expected


FRESH_EMAIL = Proof(Method.EMAIL_CODE, frozenset({Amr.EMAIL}), NOW + 5)
PHR_AS_MINIMUM = AssurancePolicy.from_settings(settings_from_mapping({"assurance": {"minimum": "phr"}}))

REFRESH = [
    Answer(
        "an email code renews a stale mfa reached with password and TOTP",
        state(PASSWORD, TOTP, FRESH_EMAIL),
        account(HAS_TOTP, HAS_EMAIL),
        Done("mfa", (Amr.PWD, Amr.OTP, Amr.EMAIL, Amr.MFA), int(FRESH_EMAIL.at)),
        Request(max_age="0"),
        now=NOW + 6,
    ),
    Answer(
        "an email code never renews a stale phr: the passkey is asked for again",
        state(PASSWORD, SYNCED_PASSKEY, FRESH_EMAIL),
        account(HAS_PASSKEY, HAS_EMAIL),
        NeedFactor((Method.WEBAUTHN,), "phr"),
        Request(acr_values="phr", max_age="0"),
        now=NOW + 6,
    ),
    Answer(
        "an email code never renews an essential phrh: the security key is asked for again",
        state(PASSWORD, SECURITY_KEY, FRESH_EMAIL),
        account(HAS_SECURITY_KEY, HAS_EMAIL),
        NeedFactor((Method.WEBAUTHN,), "phrh"),
        Request(claims=_claims(["phrh"], True), max_age="0"),
        now=NOW + 6,
    ),
    Answer(
        "a stale phr offers the passkey only, not an email code",
        state(PASSWORD, SYNCED_PASSKEY),
        account(HAS_PASSKEY, HAS_EMAIL),
        NeedFactor((Method.WEBAUTHN,), "phr"),
        Request(acr_values="phr", max_age="10"),
    ),
    Answer(
        "a stale mfa offers the passkey and an email code",
        state(PASSWORD, SYNCED_PASSKEY),
        account(HAS_PASSKEY, HAS_EMAIL),
        NeedFactor((Method.WEBAUTHN, Method.EMAIL_CODE), "mfa"),
        Request(max_age="10"),
    ),
    Answer(
        "a key session renewed by an email code says mfa, not the phr its stale key reached",
        state(PASSWORD, SYNCED_PASSKEY, FRESH_EMAIL),
        account(HAS_PASSKEY, HAS_EMAIL),
        Done("mfa", (Amr.PWD, Amr.EMAIL, Amr.SWK, Amr.USER, Amr.MFA), int(FRESH_EMAIL.at)),
        Request(max_age="0"),
        now=NOW + 6,
    ),
    Answer(
        "an email code renews only with the password: a passkey-only session uses its key again",
        state(SYNCED_PASSKEY, FRESH_EMAIL),
        account(HAS_PASSKEY, HAS_EMAIL),
        NeedFactor((Method.WEBAUTHN,), "mfa"),
        Request(max_age="0"),
        now=NOW + 6,
    ),
    Answer(
        "phr as the minimum level is still never renewed by an email code",
        state(PASSWORD, SYNCED_PASSKEY, FRESH_EMAIL),
        account(HAS_PASSKEY, HAS_EMAIL),
        NeedFactor((Method.WEBAUTHN,), "phr"),
        Request(max_age="0"),
        now=NOW + 6,
        policy=PHR_AS_MINIMUM,
    ),
]


@pytest.mark.parametrize("case", REFRESH, ids=[case.id for case in REFRESH])
def test_a_refresher_renews_only_a_level_it_could_reach_with_the_password(case: Answer) -> None:
    assert decide(case.state, case.account, case.request, policy=case.policy, now=case.now) == case.expected


def test_an_email_code_renews_only_the_levels_a_one_time_code_reaches() -> None:
    renewable = {level.name: bool(level.refreshed_by) for level in POLICY.levels}
    assert renewable == {"mfa": True, "phr": False, "phrh": False}
    assert not any(level.refreshed_by for level in NO_EMAIL_STEP_UP.levels)


# -- transaction approval (RFC 9396 authorization details) ---------------------------------------------

APPROVAL = "approval-1"
APPROVING_PASSKEY = replace(SYNCED_PASSKEY, approves=APPROVAL)
APPROVING_TOTP = replace(TOTP, approves=APPROVAL)
PAYMENT = replace(requirement(floor="phr"), approval=APPROVAL)


def test_a_detail_types_level_raises_the_floor_like_a_scope_policy() -> None:
    found = requirement_for(
        policy=POLICY,
        scopes=("openid",),
        acr_values="mfa",
        claims=None,
        max_age=None,
        prompt=None,
        client_default_acr_values=(),
        client_default_max_age=None,
        now=NOW,
        detail_levels=("phr",),
        approval=APPROVAL,
    )
    assert found == PAYMENT


APPROVAL_CASES = [
    Case(
        "a session at phr from another sign-in must still approve: only the passkey is asked",
        state(PASSWORD, TOTP, SYNCED_PASSKEY),
        account(HAS_TOTP, HAS_PASSKEY),
        PAYMENT,
        NeedFactor(methods=(Method.WEBAUTHN,), level="phr"),
    ),
    Case(
        "the passkey that approved this transaction completes it",
        state(PASSWORD, TOTP, APPROVING_PASSKEY),
        account(HAS_TOTP, HAS_PASSKEY),
        PAYMENT,
        Done("phr", (Amr.PWD, Amr.SWK, Amr.USER, Amr.MFA), int(APPROVING_PASSKEY.at)),
    ),
    Case(
        "a passkey that approved another transaction does not",
        state(PASSWORD, replace(SYNCED_PASSKEY, approves="approval-2")),
        account(HAS_TOTP, HAS_PASSKEY),
        PAYMENT,
        NeedFactor(methods=(Method.WEBAUTHN,), level="phr"),
    ),
    Case(
        "a TOTP code approving a phr transaction is not offered nor enough",
        state(PASSWORD, APPROVING_TOTP),
        account(HAS_TOTP, HAS_PASSKEY),
        PAYMENT,
        NeedFactor(methods=(Method.WEBAUTHN,), level="phr"),
    ),
    Case(
        "at mfa a TOTP code made approving it is enough; the earlier password still counts",
        state(PASSWORD, APPROVING_TOTP),
        account(HAS_TOTP),
        replace(requirement(), approval=APPROVAL),
        Done("mfa", (Amr.PWD, Amr.OTP, Amr.MFA), int(APPROVING_TOTP.at)),
    ),
]


@pytest.mark.parametrize("case", APPROVAL_CASES, ids=[case.id for case in APPROVAL_CASES])
def test_only_proofs_made_approving_the_transaction_count_for_it(case: Case) -> None:
    assert next_step(case.state, case.account, case.requirement, POLICY, case.now) == case.expected


def test_an_approving_proof_and_an_approval_survive_json() -> None:
    original = state(PASSWORD, APPROVING_PASSKEY)
    assert state_from_json(json.loads(json.dumps(state_to_json(original)))) == original
    assert requirement_from_json(json.loads(json.dumps(requirement_to_json(PAYMENT)))) == PAYMENT
