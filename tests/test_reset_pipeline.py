"""A password reset as the pure pipeline decides it: the link plus something the user holds, proven
since the link was opened; and a reset's proofs never stand for a password in what a token claims."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_pipeline import (
    HAS_PASSKEY,
    HAS_RECOVERY,
    HAS_TOTP,
    NOW,
    PASSWORD,
    POLICY,
    SYNCED_PASSKEY,
    account,
    requirement,
    state,
)

from idp.auth.pipeline import (
    AuthState,
    Done,
    Fail,
    NeedFactor,
    NeedPassword,
    Proof,
    SetPassword,
    Step,
    next_step,
)
from idp.auth.policy import METHOD_AMR, Amr, Capability, Method

LINK = Proof(Method.RESET_LINK, METHOD_AMR[Method.RESET_LINK], NOW - 30)
TOTP_BEFORE_LINK = Proof(Method.TOTP, frozenset({Amr.OTP}), NOW - 40)
TOTP_AFTER_LINK = Proof(Method.TOTP, frozenset({Amr.OTP}), NOW - 20)
RECOVERY_AFTER_LINK = Proof(Method.RECOVERY_CODE, frozenset({Amr.OTP}), NOW - 20)
PASSKEY_AFTER_LINK = replace(SYNCED_PASSKEY, at=NOW - 20)
EMAIL_AFTER_LINK = Proof(Method.EMAIL_CODE, frozenset({Amr.EMAIL}), NOW - 20)
PASSWORD_AFTER_LINK = replace(PASSWORD, at=NOW - 20)
HAS_EMAIL = Capability(Method.EMAIL_CODE, frozenset({Amr.EMAIL}))
RESET = replace(requirement(), password_reset=True)
SECOND_FACTORS = NeedFactor((Method.WEBAUTHN, Method.TOTP, Method.RECOVERY_CODE), "")
NO_FACTOR = Fail("access_denied", "The account has no second factor to confirm a password reset.")

RESET_CASES = [
    pytest.param(
        state(PASSWORD, TOTP_AFTER_LINK),
        account(HAS_TOTP),
        Fail("access_denied", "The password reset link was not opened in this browser."),
        id="fails because no link was opened in this session",
    ),
    pytest.param(
        state(LINK),
        account(HAS_TOTP, HAS_RECOVERY, HAS_PASSKEY, HAS_EMAIL),
        SECOND_FACTORS,
        id="the link asks for what the user holds, passkey first, never an email code",
    ),
    pytest.param(
        state(TOTP_BEFORE_LINK, LINK),
        account(HAS_TOTP),
        NeedFactor((Method.TOTP,), ""),
        id="a code proven before the link was opened does not confirm it",
    ),
    pytest.param(state(LINK, TOTP_AFTER_LINK), account(HAS_TOTP), SetPassword(), id="link and a code"),
    pytest.param(
        state(LINK, RECOVERY_AFTER_LINK), account(HAS_TOTP), SetPassword(), id="link and a recovery code"
    ),
    pytest.param(
        state(LINK, PASSKEY_AFTER_LINK), account(HAS_PASSKEY), SetPassword(), id="link and a passkey"
    ),
    pytest.param(
        state(LINK, EMAIL_AFTER_LINK),
        account(HAS_TOTP, HAS_EMAIL),
        NeedFactor((Method.TOTP,), ""),
        id="an email code does not confirm a link that came by email",
    ),
    pytest.param(
        state(LINK, PASSWORD_AFTER_LINK),
        account(HAS_TOTP),
        NeedFactor((Method.TOTP,), ""),
        id="the old password does not confirm a reset",
    ),
    pytest.param(
        state(LINK, TOTP_AFTER_LINK),
        account(HAS_PASSKEY),
        NeedFactor((Method.WEBAUTHN,), ""),
        id="a code of an authenticator removed since does not count",
    ),
    pytest.param(
        state(LINK), account(HAS_EMAIL), NO_FACTOR, id="fails because only an email address is held"
    ),
    pytest.param(state(LINK), account(), NO_FACTOR, id="fails because no second factor is held"),
    pytest.param(
        state(LINK, TOTP_AFTER_LINK),
        account(HAS_TOTP, active=False),
        Fail("access_denied", "The account is disabled."),
        id="fails because the account is disabled",
    ),
]


@pytest.mark.parametrize(("auth_state", "holder", "expected"), RESET_CASES)
def test_a_reset_needs_the_link_and_a_held_factor_proven_since(
    auth_state: AuthState, holder: object, expected: Step
) -> None:
    assert next_step(auth_state, holder, RESET, POLICY, NOW) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("acr", [level.name for level in POLICY.levels])
def test_a_reset_session_is_no_password_for_any_level(acr: str) -> None:
    """After a reset the sign-in asks for the new password: the link and the code are not `pwd`."""
    after_reset = state(LINK, TOTP_AFTER_LINK)

    step = next_step(after_reset, account(HAS_TOTP), requirement(acr, essential=True), POLICY, NOW)

    assert not isinstance(step, Done | SetPassword), step
    assert isinstance(step, NeedPassword | NeedFactor | Fail)


def test_a_token_after_a_reset_claims_only_what_was_proven() -> None:
    """A passkey after the link reaches phr by itself: its amr, and nothing for the link."""
    step = next_step(state(LINK, PASSKEY_AFTER_LINK), account(HAS_PASSKEY), requirement(), POLICY, NOW)

    assert step == Done("phr", (Amr.SWK, Amr.USER, Amr.MFA), int(PASSKEY_AFTER_LINK.at))


def test_the_new_password_and_the_code_claim_both() -> None:
    typed_after_reset = Proof(Method.PASSWORD, frozenset({Amr.PWD}), NOW - 5)

    step = next_step(
        state(LINK, TOTP_AFTER_LINK, typed_after_reset), account(HAS_TOTP), requirement(), POLICY, NOW
    )

    assert step == Done("mfa", (Amr.PWD, Amr.OTP, Amr.MFA), int(typed_after_reset.at))
