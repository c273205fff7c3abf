"""The pure decision: what an authorization request requires and what the user must prove next.

No Flask, no I/O: every "is this authentication enough?" question is answered here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from idp.auth.policy import (
    BACKUP_METHODS,
    KNOWLEDGE,
    METHOD_AMR,
    METHOD_ORDER,
    Amr,
    AssurancePolicy,
    Capability,
    Level,
    Method,
    amr_claim,
)


@dataclass(frozen=True)
class Proof:
    """One method performed at one time, with the amr values it earned."""

    method: Method
    amr: frozenset[Amr]
    at: float


@dataclass(frozen=True)
class AuthState:
    """Who is signing in and what they proved; the latest proof per method is kept."""

    subject: str
    proofs: tuple[Proof, ...] = ()

    def with_proof(self, proof: Proof) -> AuthState:
        kept = tuple(existing for existing in self.proofs if existing.method != proof.method)
        return replace(self, proofs=(*kept, proof))


@dataclass(frozen=True)
class Account:
    """What the pipeline knows of the user: whether they may sign in and which methods they have."""

    subject: str
    active: bool
    capabilities: frozenset[Capability]


@dataclass(frozen=True)
class Requirement:
    """Acceptable levels in preference order; the last is the floor unless the request is essential."""

    acceptable: tuple[str, ...]
    essential: bool
    max_age: int | None
    force_login: bool
    interactive: bool
    requested_at: float


@dataclass(frozen=True)
class Done:
    acr: str
    amr: tuple[Amr, ...]
    auth_time: int


@dataclass(frozen=True)
class NeedPassword:
    """Start (or restart) with the first factor: password, or a passkey standing alone."""


@dataclass(frozen=True)
class NeedFactor:
    methods: tuple[Method, ...]
    level: str


@dataclass(frozen=True)
class NeedEnrolment:
    methods: tuple[Method, ...]
    level: str


@dataclass(frozen=True)
class Fail:
    error: str
    description: str


Step = Done | NeedPassword | NeedFactor | NeedEnrolment | Fail


class RequestRejected(Exception):
    """The authorization request's authentication parameters are unusable (an OAuth error)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


MAX_AGE_DIGITS = 10  # over 300 years: no real max_age is longer

# -- requirement -----------------------------------------------------------------------------


def requirement_for(
    *,
    policy: AssurancePolicy,
    scopes: Sequence[str],
    acr_values: str | None,
    claims: str | None,
    max_age: str | None,
    prompt: str | None,
    client_default_acr_values: Sequence[str],
    client_default_max_age: int | None,
    now: float,
) -> Requirement:
    """Combine request, scope policy and client defaults; the strictest of them wins."""
    requested, essential = _requested_acr(claims, acr_values)
    if not requested:
        requested = list(client_default_acr_values)
    known = [level for level in map(policy.resolve, requested) if level is not None]
    if essential and not known:
        raise RequestRejected(
            "unmet_authentication_requirements", "None of the essential acr values is offered here."
        )
    floor = policy.strongest(
        [policy.minimum]
        + [rule.acr for scope in scopes if (rule := policy.scope_rules.get(scope)) and rule.acr]
        + [level for level in map(policy.resolve, client_default_acr_values) if level is not None][:1]
    )
    floor_rank = policy.level(floor).rank
    acceptable = [level for level in dict.fromkeys(known) if policy.level(level).rank >= floor_rank]
    if not essential or not acceptable:
        acceptable.append(floor)
    ages = [_max_age(max_age), client_default_max_age] + [
        rule.max_age for scope in scopes if (rule := policy.scope_rules.get(scope))
    ]
    prompts = (prompt or "").split()
    return Requirement(
        acceptable=tuple(dict.fromkeys(acceptable)),
        essential=essential,
        max_age=min((age for age in ages if age is not None), default=None),
        force_login="login" in prompts,
        interactive="none" not in prompts,
        requested_at=now,
    )


def _requested_acr(claims: str | None, acr_values: str | None) -> tuple[list[str], bool]:
    """acr from the claims parameter (OIDC Core 5.5.1.1) wins over acr_values (3.1.2.1)."""
    if claims:
        try:
            document = json.loads(claims)
        except (ValueError, RecursionError):
            raise RequestRejected("invalid_request", "The claims parameter is not valid JSON.") from None
        if not isinstance(document, dict):
            raise RequestRejected("invalid_request", "The claims parameter must be a JSON object.")
        for member in ("id_token", "userinfo"):
            section = document.get(member)
            acr = section.get("acr") if isinstance(section, dict) else None
            if isinstance(acr, dict):
                values = acr.get("values", [acr["value"]] if "value" in acr else [])
                if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
                    raise RequestRejected(
                        "invalid_request", "The acr values in the claims parameter must be strings."
                    )
                return values, acr.get("essential") is True
    return (acr_values or "").split(), False


def _max_age(raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_AGE_DIGITS:
        raise RequestRejected("invalid_request", "The max_age parameter must be a whole number of seconds.")
    return int(raw)


# -- decision --------------------------------------------------------------------------------


def next_step(
    state: AuthState | None,
    account: Account | None,
    requirement: Requirement,
    policy: AssurancePolicy,
    now: float,
) -> Step:
    """Done when a requested level is met; otherwise the one thing the user must do next."""
    if state is None or account is None or account.subject != state.subject:
        return NeedPassword() if requirement.interactive else _login_required()
    if not account.active:
        return Fail("access_denied", "The account is disabled.")
    state = _still_held(state, account)
    floor = requirement.acceptable[-1]
    for name in requirement.acceptable:
        level = policy.level(name)
        proofs = _valid_proofs(state, level, requirement, now)
        done = _satisfied(level, proofs, requirement, policy.refreshers)
        if done is not None:
            return done
        ask = (
            _what_to_ask(level, proofs, account, requirement, policy.refreshers)
            if requirement.interactive
            else None
        )
        if ask is not None:
            return ask
    if not requirement.interactive:
        return _login_required()
    if not requirement.essential and all(
        _could_reach(method, policy.level(floor)) for method in policy.enrol_at_sign_in
    ):
        return NeedEnrolment(methods=policy.enrol_at_sign_in, level=floor)
    return _enrol_for_step_up(state, account, requirement, policy, now)


def _enrol_for_step_up(
    state: AuthState, account: Account, requirement: Requirement, policy: AssurancePolicy, now: float
) -> Step:
    """An essential level the account cannot reach: enrol a method that reaches it, when policy allows,
    after a fresh sign-in at the minimum level; otherwise the requirement is unmet."""
    target = policy.level(requirement.acceptable[0])
    methods = tuple(method for method in policy.enrol_at_step_up if _could_reach(method, target))
    if not methods:
        return Fail("unmet_authentication_requirements", f"The account cannot reach the {target.name} level.")
    gate = replace(
        requirement, acceptable=(policy.minimum,), essential=False, max_age=policy.enrolment_max_age
    )
    step = next_step(state, account, gate, policy, now)
    return NeedEnrolment(methods=methods, level=target.name) if isinstance(step, Done) else step


def _could_reach(method: Method, level: Level) -> bool:
    return any(way - KNOWLEDGE <= METHOD_AMR[method] for way in level.satisfied_by)


def apply_proof(state: AuthState | None, subject: str, proof: Proof) -> AuthState:
    """Record a verified proof; a proof for another subject starts a new state."""
    if state is None or state.subject != subject:
        return AuthState(subject=subject, proofs=(proof,))
    return state.with_proof(proof)


def latest_proof_since(state: AuthState | None, since: float) -> float | None:
    """When the newest proof made at or after `since` was made; None when nothing was proven since."""
    times = [proof.at for proof in state.proofs if proof.at >= since] if state else []
    return max(times, default=None)


def _still_held(state: AuthState, account: Account) -> AuthState:
    """Proofs by a method the account no longer has (a removed or reset factor) stop counting."""
    # A backup method (the last recovery code) is used up by its own proof: it still counts.
    held = {capability.method for capability in account.capabilities} | {Method.PASSWORD} | BACKUP_METHODS
    return replace(state, proofs=tuple(proof for proof in state.proofs if proof.method in held))


def _login_required() -> Fail:
    return Fail("login_required", "No session satisfies the request.")


def _valid_proofs(state: AuthState, level: Level, requirement: Requirement, now: float) -> tuple[Proof, ...]:
    """Proofs young enough for the level's ttl, and made during this request when login is forced."""
    not_before = max(now - level.ttl, requirement.requested_at if requirement.force_login else 0.0)
    return tuple(proof for proof in state.proofs if proof.at >= not_before)


def _is_fresh(proof: Proof, requirement: Requirement) -> bool:
    """max_age (OIDC Core 3.1.2.1): proven no longer than max_age before the request."""
    return requirement.max_age is None or proof.at >= requirement.requested_at - requirement.max_age


def _proven(proofs: Iterable[Proof]) -> frozenset[Amr]:
    return frozenset().union(*(proof.amr for proof in proofs))


def _missing(way: frozenset[Amr], proofs: Sequence[Proof], requirement: Requirement) -> frozenset[Amr]:
    """What is left to prove for `way`: the password once within the level's ttl, and the
    possession part fresh enough for max_age; a fresh password never refreshes a stale factor."""
    fresh = _proven(proof for proof in proofs if _is_fresh(proof, requirement))
    possession = way - KNOWLEDGE
    if not possession:
        return way - fresh
    return ((way & KNOWLEDGE) - _proven(proofs)) | (possession - fresh)


def _only_stale(way: frozenset[Amr], missing: frozenset[Amr], proofs: Sequence[Proof]) -> bool:
    """Everything of `way` was proven; only freshness is missing."""
    return bool(missing) and way <= _proven(proofs)


def _satisfied(
    level: Level, proofs: tuple[Proof, ...], requirement: Requirement, refreshers: frozenset[Method]
) -> Done | None:
    """The way of reaching `level` completed most recently, if any is complete and fresh enough.

    A way that is complete but older than max_age is made fresh again by a recent proof of a
    refresher method (an email code, where policy allows it for step-up).
    """
    refreshing = [proof for proof in proofs if proof.method in refreshers and _is_fresh(proof, requirement)]
    complete = []
    for way in level.satisfied_by:
        missing = _missing(way, proofs, requirement)
        used = [proof for proof in proofs if proof.amr & way]
        if not missing:
            complete.append(used)
        elif refreshing and _only_stale(way, missing, proofs):
            complete.append([*used, max(refreshing, key=lambda proof: proof.at)])
    if not complete:
        return None
    used = max(complete, key=lambda candidate: max(proof.at for proof in candidate))
    return Done(
        acr=level.name,
        amr=amr_claim(_proven(used), frozenset(proof.method for proof in used)),
        auth_time=int(max(proof.at for proof in used)),
    )


def _what_to_ask(
    level: Level,
    proofs: tuple[Proof, ...],
    account: Account,
    requirement: Requirement,
    refreshers: frozenset[Method],
) -> NeedPassword | NeedFactor | None:
    """The cheapest completion of the level that the account can perform, or None."""
    completions = {way: _missing(way, proofs, requirement) for way in level.satisfied_by}
    performable = {way: missing for way, missing in completions.items() if _performable(missing, account)}
    if not performable:
        return None
    cheapest = min(_steps(missing) for missing in performable.values())
    options = {way: missing for way, missing in performable.items() if _steps(missing) == cheapest}
    if any(Amr.PWD in missing for missing in options.values()):
        return NeedPassword()
    offered = {
        capability.method
        for missing in options.values()
        for capability in account.capabilities
        if missing <= capability.amr
    }
    if any(_only_stale(way, missing, proofs) for way, missing in options.items()):
        offered |= {c.method for c in account.capabilities if c.method in refreshers}
    return NeedFactor(methods=tuple(m for m in METHOD_ORDER if m in offered), level=level.name)


def _performable(missing: frozenset[Amr], account: Account) -> bool:
    """Knowledge can always be asked for; the rest must come from one method the account has."""
    rest = missing - KNOWLEDGE
    return not rest or any(rest <= capability.amr for capability in account.capabilities)


def _steps(missing: frozenset[Amr]) -> int:
    return int(Amr.PWD in missing) + int(bool(missing - KNOWLEDGE))


# -- serialization (sessions and pending requests hold these as JSON) -----------------------------


def state_to_json(state: AuthState) -> dict[str, object]:
    return {
        "subject": state.subject,
        "proofs": [
            {"method": proof.method.value, "amr": sorted(proof.amr), "at": proof.at} for proof in state.proofs
        ],
    }


def state_from_json(data: dict[str, Any]) -> AuthState:
    return AuthState(
        subject=data["subject"],
        proofs=tuple(
            Proof(method=Method(item["method"]), amr=frozenset(Amr(v) for v in item["amr"]), at=item["at"])
            for item in data["proofs"]
        ),
    )


def requirement_to_json(requirement: Requirement) -> dict[str, object]:
    return asdict(requirement)


def requirement_from_json(data: dict[str, Any]) -> Requirement:
    return Requirement(**{**data, "acceptable": tuple(data["acceptable"])})


def keeps_minimum(capabilities: frozenset[Capability], policy: AssurancePolicy) -> bool:
    """Whether an account left with these methods (and its password) can still reach the minimum
    level without falling back on backup methods (recovery codes): guards removing a factor."""
    primary = frozenset(c for c in capabilities if c.method not in BACKUP_METHODS)
    account = Account(subject="", active=True, capabilities=primary)
    return any(_performable(way, account) for way in policy.level(policy.minimum).satisfied_by)
