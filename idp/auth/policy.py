"""Assurance vocabulary as data: amr values (RFC 8176), sign-in methods, acr levels and scope rules."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from idp.config import LevelSettings, Settings
from idp.store.tables import FactorKind


class Amr(StrEnum):
    """Authentication Method Reference values, RFC 8176 (email as Okta uses it)."""

    PWD = "pwd"
    OTP = "otp"
    EMAIL = "email"
    HWK = "hwk"
    SWK = "swk"
    USER = "user"
    MFA = "mfa"


class Method(StrEnum):
    """What a user proves in one step on one hosted page."""

    PASSWORD = "password"
    WEBAUTHN = "webauthn"
    TOTP = "totp"
    EMAIL_CODE = "email_code"
    RECOVERY_CODE = "recovery_code"
    RESET_LINK = "reset_link"


# The method that proves each kind of stored factor.
FACTOR_METHOD: dict[FactorKind, Method] = {
    FactorKind.TOTP: Method.TOTP,
    FactorKind.WEBAUTHN: Method.WEBAUTHN,
    FactorKind.EMAIL: Method.EMAIL_CODE,
    FactorKind.RECOVERY_CODE: Method.RECOVERY_CODE,
}
# The order in which the pages offer second factors: phishing-resistant first.
METHOD_ORDER: tuple[Method, ...] = tuple(Method)
# What each method proves; the one place these facts are written. A WebAuthn assertion proves at
# most these: hwk or swk by the key (passkey_amr: attested hardware or not), user when it verified.
METHOD_AMR: dict[Method, frozenset[Amr]] = {
    Method.PASSWORD: frozenset({Amr.PWD}),
    Method.WEBAUTHN: frozenset({Amr.HWK, Amr.SWK, Amr.USER}),
    Method.TOTP: frozenset({Amr.OTP}),
    Method.EMAIL_CODE: frozenset({Amr.EMAIL}),
    Method.RECOVERY_CODE: frozenset({Amr.OTP}),
    # A password reset link proves the user reads a verified address: nothing a token may claim.
    Method.RESET_LINK: frozenset(),
}
KNOWLEDGE = frozenset({Amr.PWD})
# What confirms a password reset besides the link: something the user holds (not another email).
POSSESSION = frozenset({Amr.OTP, Amr.HWK, Amr.SWK})
# Methods that get a user back in but do not count as an enrolled factor of their own.
BACKUP_METHODS = frozenset({Method.RECOVERY_CODE})
# Password + email code: reaches the minimum level with [factors.email] sign_in = true, and renews
# the freshness of a level a one-time code reaches with step_up = true.
PASSWORD_AND_EMAIL = (frozenset({Amr.PWD, Amr.EMAIL}),)


def passkey_amr(*, attested: bool, user_verified: bool) -> frozenset[Amr]:
    """RFC 8176: hwk only for a key whose attestation chained to a trust anchor (flags prove nothing), else
    swk; user when the key verified the user."""
    key = Amr.HWK if attested else Amr.SWK
    return frozenset({key, Amr.USER}) if user_verified else frozenset({key})


def reaches(method: Method, ways: Iterable[frozenset[Amr]]) -> bool:
    """Whether `method`, after the password, completes one of `ways`."""
    return any(way - KNOWLEDGE <= METHOD_AMR[method] for way in ways)


@dataclass(frozen=True)
class Capability:
    """A method the account can perform and the amr values it yields when performed."""

    method: Method
    amr: frozenset[Amr]


@dataclass(frozen=True)
class Level:
    """An acr level: the amr combinations that reach it within `ttl`, and those that renew it.

    `refreshed_by` re-proves freshness (max_age) of a level reached otherwise within its ttl, without
    reaching it: password + email code for a level a one-time code reaches, never one needing a key.
    """

    name: str
    rank: int
    satisfied_by: tuple[frozenset[Amr], ...]
    ttl: int
    aliases: tuple[str, ...] = ()
    refreshed_by: tuple[frozenset[Amr], ...] = ()
    title: str = "a stronger sign-in"
    sentence: str = ""


@dataclass(frozen=True)
class ScopeRule:
    acr: str | None
    max_age: int | None
    description: str = ""


@dataclass(frozen=True)
class AssurancePolicy:
    """Levels weakest first; `minimum` is the floor every user sign-in reaches."""

    levels: tuple[Level, ...]
    minimum: str
    scope_rules: Mapping[str, ScopeRule] = field(default_factory=dict)
    # A user without a second factor sets one up inside the sign-in: a passkey first, where the
    # browser can make one, else an authenticator app (the page offers both, in this order).
    enrol_at_sign_in: tuple[Method, ...] = (Method.WEBAUTHN, Method.TOTP)
    enrol_at_step_up: tuple[Method, ...] = ()
    enrolment_max_age: int = 300
    admin_level: str = "phrh"
    admin_max_age: int = 300

    @classmethod
    def from_settings(cls, settings: Settings) -> AssurancePolicy:
        email = settings.factors.email
        levels = tuple(
            _level(
                name=name,
                rank=rank,
                settings=level,
                email_reaches=email.sign_in and name == settings.assurance.minimum,
                email_refreshes=email.step_up,
            )
            for rank, (name, level) in enumerate(settings.assurance.levels.items())
        )
        rules = {
            scope: ScopeRule(rule.acr, rule.max_age, rule.description)
            for scope, rule in settings.scopes.items()
        }
        return cls(
            levels=levels,
            minimum=settings.assurance.minimum,
            scope_rules=rules,
            enrol_at_step_up=tuple(Method(method) for method in settings.assurance.enrol_at_step_up),
            enrolment_max_age=settings.account.reauthentication_max_age,
            admin_level=settings.admin.acr or list(settings.assurance.levels)[-1],
            admin_max_age=settings.admin.max_age,
        )

    def level(self, name: str) -> Level:
        return next(level for level in self.levels if level.name == name)

    def resolve(self, acr_value: str) -> str | None:
        """The level a requested acr value names (directly or by alias), or None when unknown."""
        for level in self.levels:
            if acr_value == level.name or acr_value in level.aliases:
                return level.name
        return None

    def strongest(self, names: list[str]) -> str:
        return max(names, key=lambda name: self.level(name).rank)

    @property
    def needs_attestation(self) -> bool:
        """Whether some level asks for an attested key (hwk): then registration asks keys for attestation."""
        return any(Amr.HWK in way for level in self.levels for way in level.satisfied_by)

    @property
    def acr_values_supported(self) -> list[str]:
        return [value for level in self.levels for value in (level.name, *level.aliases)]


def _level(
    *, name: str, rank: int, settings: LevelSettings, email_reaches: bool, email_refreshes: bool
) -> Level:
    """A configured level; an email code renews it only where a one-time code (TOTP) could reach it."""
    ways = tuple(frozenset(Amr(value) for value in way) for way in settings.satisfied_by)
    return Level(
        name=name,
        rank=rank,
        satisfied_by=ways + (PASSWORD_AND_EMAIL if email_reaches else ()),
        ttl=settings.ttl,
        aliases=settings.aliases,
        refreshed_by=PASSWORD_AND_EMAIL if email_refreshes and reaches(Method.TOTP, ways) else (),
        title=settings.title,
        sentence=settings.sentence,
    )


def amr_claim(proven: frozenset[Amr], methods: frozenset[Method]) -> tuple[Amr, ...]:
    """The amr claim for what was proven: `mfa` when two methods or a user-verified key were used."""
    multi_factor = len(methods) >= 2 or (Amr.USER in proven and bool(proven & {Amr.HWK, Amr.SWK}))
    values = proven | {Amr.MFA} if multi_factor else proven
    return tuple(value for value in Amr if value in values)
