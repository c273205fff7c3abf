"""The pure decision: what an authorization request requires and what the user must prove next.

No Flask, no I/O: every "is this authentication enough?" question is answered here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from idp.auth.policy import (
    BACKUP_METHODS,
    KNOWLEDGE,
    METHOD_ORDER,
    POSSESSION,
    Amr,
    AssurancePolicy,
    Capability,
    Level,
    Method,
    amr_claim,
    reaches,
)


@dataclass(frozen=True)
class Proof:
    """One method performed at one time, with the amr values it earned."""

    method: Method
    amr: frozenset[Amr]
    at: float
    approves: str | None = None  # the transaction approval this proof was made on (RFC 9396 details)


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
    administrator: bool = False
    password_must_change: bool = False

    @property
    def holds_attested_key(self) -> bool:
        return any(Amr.HWK in capability.amr for capability in self.capabilities)


@dataclass(frozen=True)
class RequestedAcr:
    """An acr value as the client spelled it (a level's name or alias), and the level it names."""

    value: str
    level: str


@dataclass(frozen=True)
class Requirement:
    """The requested acr values at or above the floor, in preference order; the floor level is
    acceptable too unless the request is essential (or none of its values is)."""

    requested: tuple[RequestedAcr, ...]
    floor: str
    essential: bool
    max_age: int | None
    force_login: bool
    interactive: bool
    requested_at: float
    # A transaction to approve (authorization details): only possession proofs made on its approval
    # page, showing and (WebAuthn) signing those details, count.
    approval: str | None = None
    password_reset: bool = False

    @property
    def acceptable(self) -> tuple[str, ...]:
        """Acceptable levels in preference order: the requested ones, then the floor."""
        levels = [wanted.level for wanted in self.requested]
        if not self.essential or not levels:
            levels.append(self.floor)
        return tuple(dict.fromkeys(levels))


@dataclass(frozen=True)
class Done:
    """Enough was proven: `acr` exactly as answered (OIDC Core 2), `amr` and `auth_time` of its proofs."""

    acr: str
    amr: tuple[Amr, ...]
    auth_time: int
    # The methods of those proofs, for people (history: "password and authenticator app").
    methods: tuple[Method, ...] = field(default=(), compare=False)


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
class SetPassword:
    """A password reset is confirmed: the user may choose a new password (and then sign in with it)."""


@dataclass(frozen=True)
class NeedNewPassword:
    """The password just proven is a one-time one an operator set: the user chooses their own first."""


@dataclass(frozen=True)
class Fail:
    error: str
    description: str


Step = Done | NeedPassword | NeedNewPassword | NeedFactor | NeedEnrolment | SetPassword | Fail


class RequestRejected(Exception):
    """The authorization request's authentication parameters are unusable (an OAuth error)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


MAX_AGE_DIGITS = 10  # over 300 years: no real max_age is longer
# Methods whose proofs outlive any factor row: the password, backup codes, a reset link's.
ALWAYS_HELD = frozenset({Method.PASSWORD, Method.RESET_LINK}) | BACKUP_METHODS

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
    detail_levels: Sequence[str] = (),
    approval: str | None = None,
) -> Requirement:
    """Combine request, scope policy, the levels its authorization details' types demand and client
    defaults; the strictest of them wins. `approval` names the transaction the user must approve."""
    requested, essential = _requested_acr(claims, acr_values)
    if not requested:
        requested = list(client_default_acr_values)
    known = [
        RequestedAcr(value, level) for value in requested if (level := policy.resolve(value)) is not None
    ]
    if essential and not known:
        raise RequestRejected(
            "unmet_authentication_requirements", "None of the essential acr values is offered here."
        )
    floor = policy.strongest(
        [policy.minimum]
        + [rule.acr for scope in scopes if (rule := policy.scope_rules.get(scope)) and rule.acr]
        + [level for level in map(policy.resolve, client_default_acr_values) if level is not None][:1]
        + list(detail_levels)
    )
    floor_rank = policy.level(floor).rank
    ages = [_max_age(max_age), client_default_max_age] + [
        rule.max_age for scope in scopes if (rule := policy.scope_rules.get(scope))
    ]
    prompts = (prompt or "").split()
    return Requirement(
        requested=tuple(
            wanted for wanted in dict.fromkeys(known) if policy.level(wanted.level).rank >= floor_rank
        ),
        floor=floor,
        essential=essential,
        max_age=min((age for age in ages if age is not None), default=None),
        force_login="login" in prompts,
        interactive="none" not in prompts,
        requested_at=now,
        approval=approval,
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
    """Done when an acceptable level is met; otherwise the one thing the user must do next."""
    if state is None or account is None or account.subject != state.subject:
        return NeedPassword() if requirement.interactive else _login_required()
    if not account.active:
        return Fail("access_denied", "The account is disabled.")
    state = _still_held(state, account)
    if requirement.password_reset:
        return _reset_step(state, account)
    if account.password_must_change and any(proof.method == Method.PASSWORD for proof in state.proofs):
        return NeedNewPassword() if requirement.interactive else _login_required()
    if account.administrator and not account.holds_attested_key:
        return _enrol_administrator_key(state, account, requirement, policy, now)
    for name in requirement.acceptable:
        level = policy.level(name)
        proofs = _valid_proofs(state, level, requirement, now)
        if _satisfied(level, proofs, requirement) is not None:
            return _answer(state, requirement, policy, now)
        ask = _what_to_ask(level, proofs, account, requirement) if requirement.interactive else None
        if ask is not None:
            return ask
    if not requirement.interactive:
        return _login_required()
    floor = policy.level(requirement.floor)
    if not requirement.essential and all(
        reaches(method, floor.satisfied_by) for method in policy.enrol_at_sign_in
    ):
        return NeedEnrolment(methods=policy.enrol_at_sign_in, level=floor.name)
    return _enrol_for_step_up(state, account, requirement, policy, now)


def _answer(state: AuthState, requirement: Requirement, policy: AssurancePolicy, now: float) -> Done:
    """acr (OIDC Core 2, 3.1.2.1, 5.5.1.1): the first requested value the session satisfies, spelled
    as requested; otherwise the strongest level it satisfies. amr and auth_time of that level's proofs."""
    reached = {
        level.name: done
        for level in policy.levels
        if (done := _satisfied(level, _valid_proofs(state, level, requirement, now), requirement)) is not None
    }
    for wanted in requirement.requested:
        if wanted.level in reached:
            return replace(reached[wanted.level], acr=wanted.value)
    return reached[policy.strongest(list(reached))]


def _reset_step(state: AuthState, account: Account) -> SetPassword | NeedFactor | Fail:
    """A password reset: the link proved a verified address; something the user holds, proven since the
    link was opened, confirms it. Never the password (it is what is replaced), never an email code
    (the link came by email). Neither proof is a password proof: tokens still need the new password."""
    opened = max((proof.at for proof in state.proofs if proof.method is Method.RESET_LINK), default=None)
    if opened is None:
        return Fail("access_denied", "The password reset link was not opened in this browser.")
    if any(proof.at >= opened and proof.amr & POSSESSION for proof in state.proofs):
        return SetPassword()
    held = {capability.method for capability in account.capabilities if capability.amr & POSSESSION}
    if not held:
        return Fail("access_denied", "The account has no second factor to confirm a password reset.")
    return NeedFactor(methods=tuple(method for method in METHOD_ORDER if method in held), level="")


def _enrol_for_step_up(
    state: AuthState, account: Account, requirement: Requirement, policy: AssurancePolicy, now: float
) -> Step:
    """An essential level the account cannot reach: enrol a method that reaches it, when policy allows,
    after a fresh sign-in at the minimum level; otherwise the requirement is unmet."""
    target = policy.level(requirement.acceptable[0])
    methods = tuple(method for method in policy.enrol_at_step_up if reaches(method, target.satisfied_by))
    if not methods:
        return Fail("unmet_authentication_requirements", f"The account cannot reach the {target.name} level.")
    gate = _enrolment_gate(requirement, policy)
    step = next_step(state, account, gate, policy, now)
    return NeedEnrolment(methods=methods, level=target.name) if isinstance(step, Done) else step


def _enrolment_gate(requirement: Requirement, policy: AssurancePolicy) -> Requirement:
    """What enrolling a new method needs first: a fresh sign-in at the minimum level."""
    return replace(
        requirement,
        requested=(),
        floor=policy.minimum,
        essential=False,
        max_age=policy.enrolment_max_age,
        approval=None,
    )


def _enrol_administrator_key(
    state: AuthState, account: Account, requirement: Requirement, policy: AssurancePolicy, now: float
) -> Step:
    """An administrator without an attested key enrols one before anything else: in the first sign-in
    instead of TOTP, otherwise after a fresh sign-in at the minimum level (as step-up enrolment)."""
    if not requirement.interactive:
        return _login_required()
    gate = _enrolment_gate(requirement, policy)
    step = next_step(state, replace(account, administrator=False), gate, policy, now)
    if isinstance(step, Done | NeedEnrolment):
        return NeedEnrolment(methods=(Method.WEBAUTHN,), level=policy.admin_level)
    return step


@dataclass(frozen=True)
class TokenDemand:
    """What a bearer token must show (RFC 9470 3): one of these acr values, authenticated within max_age."""

    acr_values: tuple[str, ...]
    max_age: int


def administrative_requirement(policy: AssurancePolicy, now: float) -> Requirement:
    """Every administrative action (a console page): the admin level, essential, proven no more than
    [admin] max_age seconds before; a weaker or older sign-in steps up for what is missing."""
    level = policy.admin_level
    return Requirement(
        requested=(RequestedAcr(level, level),),
        floor=level,
        essential=True,
        max_age=policy.admin_max_age,
        force_login=False,
        interactive=True,
        requested_at=now,
    )


def administrative_token_demand(policy: AssurancePolicy) -> TokenDemand:
    """Every administrative action by access token (the admin API): the admin level (by its name or an
    alias) with an auth_time no older than [admin] max_age."""
    level = policy.level(policy.admin_level)
    return TokenDemand(acr_values=(level.name, *level.aliases), max_age=policy.admin_max_age)


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
    held = {capability.method for capability in account.capabilities} | ALWAYS_HELD
    return replace(state, proofs=tuple(proof for proof in state.proofs if proof.method in held))


def _login_required() -> Fail:
    return Fail("login_required", "No session satisfies the request.")


def _valid_proofs(state: AuthState, level: Level, requirement: Requirement, now: float) -> tuple[Proof, ...]:
    """Proofs young enough for the level's ttl, and made during this request when login is forced; for
    a transaction, possession proofs only when made approving it (knowledge is not tied to one)."""
    not_before = max(now - level.ttl, requirement.requested_at if requirement.force_login else 0.0)
    return tuple(
        proof
        for proof in state.proofs
        if proof.at >= not_before
        and (requirement.approval is None or proof.amr <= KNOWLEDGE or proof.approves == requirement.approval)
    )


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


def _used(way: frozenset[Amr], proofs: Sequence[Proof]) -> list[Proof]:
    return [proof for proof in proofs if proof.amr & way]


def _satisfied(level: Level, proofs: tuple[Proof, ...], requirement: Requirement) -> Done | None:
    """The way of reaching `level` completed most recently, if any is complete and fresh enough.

    A way that is complete but older than max_age is made fresh again only by one of the level's own
    `refreshed_by` combinations, complete and fresh (a weaker factor never renews a stronger level).
    """
    renewals = [
        _used(renewal, proofs) for renewal in level.refreshed_by if not _missing(renewal, proofs, requirement)
    ]
    complete = []
    for way in level.satisfied_by:
        missing = _missing(way, proofs, requirement)
        if not missing:
            complete.append(_used(way, proofs))
        elif _only_stale(way, missing, proofs):
            complete.extend([*_used(way, proofs), *renewal] for renewal in renewals)
    if not complete:
        return None
    used = max(complete, key=lambda candidate: max(proof.at for proof in candidate))
    methods = frozenset(proof.method for proof in used)
    return Done(
        acr=level.name,
        amr=amr_claim(_proven(used), methods),
        auth_time=int(max(proof.at for proof in used)),
        methods=tuple(method for method in Method if method in methods),
    )


def _what_to_ask(
    level: Level,
    proofs: tuple[Proof, ...],
    account: Account,
    requirement: Requirement,
) -> NeedPassword | NeedFactor | None:
    """The cheapest completion of the level that the account can perform, or None; where only
    freshness is missing, the methods that complete one of the level's renewals are offered too."""
    completions = {way: _missing(way, proofs, requirement) for way in level.satisfied_by}
    performable = {way: missing for way, missing in completions.items() if _performable(missing, account)}
    if not performable:
        return None
    cheapest = min(_steps(missing) for missing in performable.values())
    options = {way: missing for way, missing in performable.items() if _steps(missing) == cheapest}
    if any(Amr.PWD in missing for missing in options.values()):
        return NeedPassword()
    wanted = list(options.values())
    if any(_only_stale(way, missing, proofs) for way, missing in options.items()):
        wanted += [_missing(renewal, proofs, requirement) for renewal in level.refreshed_by]
    offered = {
        capability.method
        for missing in wanted
        for capability in account.capabilities
        if missing <= capability.amr
    }
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
            {
                "method": proof.method.value,
                "amr": sorted(proof.amr),
                "at": proof.at,
                "approves": proof.approves,
            }
            for proof in state.proofs
        ],
    }


def state_from_json(data: dict[str, Any]) -> AuthState:
    return AuthState(
        subject=data["subject"],
        proofs=tuple(
            Proof(
                method=Method(item["method"]),
                amr=frozenset(Amr(v) for v in item["amr"]),
                at=item["at"],
                approves=item.get("approves"),
            )
            for item in data["proofs"]
        ),
    )


def account_to_json(account: Account) -> dict[str, object]:
    return {
        "subject": account.subject,
        "active": account.active,
        "capabilities": sorted(
            [capability.method.value, sorted(capability.amr)] for capability in account.capabilities
        ),
        "administrator": account.administrator,
        "password_must_change": account.password_must_change,
    }


def account_from_json(data: dict[str, Any]) -> Account:
    return Account(
        subject=data["subject"],
        active=data["active"],
        capabilities=frozenset(
            Capability(Method(method), frozenset(Amr(value) for value in amr))
            for method, amr in data["capabilities"]
        ),
        administrator=data["administrator"],
        password_must_change=data["password_must_change"],
    )


def requirement_to_json(requirement: Requirement) -> dict[str, object]:
    return asdict(requirement)


def requirement_from_json(data: dict[str, Any]) -> Requirement:
    requested = tuple(RequestedAcr(**wanted) for wanted in data["requested"])
    return Requirement(**{**data, "requested": requested})


def keeps_minimum(capabilities: frozenset[Capability], policy: AssurancePolicy) -> bool:
    """Whether an account left with these methods (and its password) can still reach the minimum
    level without falling back on backup methods (recovery codes): guards removing a factor."""
    primary = frozenset(c for c in capabilities if c.method not in BACKUP_METHODS)
    account = Account(subject="", active=True, capabilities=primary)
    return any(_performable(way, account) for way in policy.level(policy.minimum).satisfied_by)
