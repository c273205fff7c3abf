"""The durable repositories, on SQLite and on PostgreSQL, each test in a fresh migrated schema; the
invariants racing units of work (threads, each with its own session) must not break."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.synchronize import Barrier
from queue import Queue
from typing import Any

import pytest
from sqlalchemy import event, inspect, text
from sqlalchemy.exc import IntegrityError
from support.races import race_in_two_processes

from idp.auth.factors import capabilities_of
from idp.auth.pipeline import keeps_minimum
from idp.auth.policy import AssurancePolicy
from idp.auth.recovery import code_factors, new_codes
from idp.auth.recovery import lookup_key as recovery_lookup_key
from idp.config import settings_from_mapping
from idp.store import database as database_module
from idp.store.database import Database, DatabaseUnavailable
from idp.store.durable import (
    AddressHolders,
    DurableStore,
    RotatedRefreshToken,
    audit_event,
    rotate_refresh_token,
)
from idp.store.tables import Client, Factor, FactorKind, RefreshToken, User, UserSession

ALICE, BOB = "00000000-0000-0000-0000-00000000a11c", "00000000-0000-0000-0000-000000000b0b"


def _user(user_id: str, username: str, **fields: Any) -> User:
    return User(id=user_id, username=username, password_hash="$argon2id$stub", created_at=1000, **fields)


def _factor(factor_id: str, user_id: str, kind: str, created_at: int) -> Factor:
    return Factor(id=factor_id, user_id=user_id, kind=kind, name=factor_id, created_at=created_at)


def _client(client_id: str, created_at: int = 1000) -> Client:
    return Client(
        client_id=client_id,
        name=f"App {client_id}",
        redirect_uris=[f"https://{client_id}.example/cb"],
        grant_types=["authorization_code", "refresh_token"],
        scope="openid email",
        default_acr_values=["phr"],
        created_at=created_at,
    )


def _refresh_token(token_hash: str, family_id: str, **fields: Any) -> RefreshToken:
    return RefreshToken(
        **{
            "token_hash": token_hash,
            "family_id": family_id,
            "client_id": "app",
            "user_id": ALICE,
            "scope": "openid",
            "authentication": {"amr": ["pwd", "hwk"], "acr": "phr", "auth_time": 1000},
            "issued_at": 1000,
            "expires_at": 2000,
            **fields,
        }
    )


@pytest.fixture
def with_alice_and_bob(database: Database) -> Database:
    with database.unit_of_work() as session:
        store = DurableStore.over(session)
        store.users.add(_user(ALICE, "alice", email="alice@example.com"))
        store.users.add(_user(BOB, "bob"))
    return database


def test_users_are_added_and_found(with_alice_and_bob: Database) -> None:
    with with_alice_and_bob.unit_of_work() as session:
        users = DurableStore.over(session).users
        alice = users.get(ALICE)
        by_name = users.by_username("bob")
        missing = users.by_username("carol")
        everyone = [user.username for user in users.all()]

    assert alice is not None and alice.username == "alice" and alice.email == "alice@example.com"
    assert alice.disabled is False
    assert by_name is not None and by_name.id == BOB
    assert missing is None
    assert everyone == ["alice", "bob"]


def test_an_account_and_its_factors_are_read_in_one_statement(with_alice_and_bob: Database) -> None:
    with with_alice_and_bob.unit_of_work() as session:
        store = DurableStore.over(session)
        store.factors.add(_factor("f-late", ALICE, FactorKind.TOTP, created_at=2000))
        store.factors.add(_factor("f-early", ALICE, FactorKind.WEBAUTHN, created_at=1500))
    statements: list[str] = []
    with with_alice_and_bob.unit_of_work() as session:
        store = DurableStore.over(session)
        listen = lambda *args: statements.append(args[2])  # noqa: E731 (before_cursor_execute's statement)
        event.listen(with_alice_and_bob.engine, "before_cursor_execute", listen)
        try:
            alice = store.users.get_with_factors(ALICE)
            named_bob = store.users.by_username_with_factors("bob")
            factors = [factor.id for factor in store.factors.of_user(ALICE)]
            bobs = store.factors.of_user(BOB)
            again = store.users.get(ALICE)
        finally:
            event.remove(with_alice_and_bob.engine, "before_cursor_execute", listen)
        nobody = store.users.get_with_factors("00000000-0000-0000-0000-00000000ca01")

    assert alice is not None and alice is again and named_bob is not None and named_bob.id == BOB
    assert factors == ["f-early", "f-late"] and list(bobs) == []
    assert nobody is None
    assert len(statements) == 2  # one for alice and her factors, one for bob and his (none)


def test_a_reading_session_runs_each_statement_without_a_transaction(with_alice_and_bob: Database) -> None:
    """Autocommit: a statement's effect stands at once; a rollback has nothing to undo (shown with a
    write, which the provider never sends through it)."""
    reading = with_alice_and_bob.open_reading_session()
    try:
        assert DurableStore.over(reading).users.may_hold_tokens(BOB)
        reading.execute(text("UPDATE users SET disabled = :yes WHERE id = :id"), {"yes": True, "id": BOB})
        reading.rollback()
    finally:
        reading.close()

    with with_alice_and_bob.unit_of_work() as session:
        assert not DurableStore.over(session).users.may_hold_tokens(BOB)


def test_a_taken_username_raises_integrity_error(with_alice_and_bob: Database) -> None:
    with pytest.raises(IntegrityError), with_alice_and_bob.unit_of_work() as session:
        DurableStore.over(session).users.add(_user("00000000-0000-0000-0000-00000000ca01", "alice"))

    with with_alice_and_bob.unit_of_work() as session:
        assert [user.id for user in DurableStore.over(session).users.all()] == [ALICE, BOB]


def test_a_factor_of_an_unknown_user_raises_integrity_error(database: Database) -> None:
    with pytest.raises(IntegrityError), database.unit_of_work() as session:
        DurableStore.over(session).factors.add(_factor("totp-1", "no-such-user", "totp", 1))


@pytest.fixture
def with_factors(with_alice_and_bob: Database) -> Database:
    with with_alice_and_bob.unit_of_work() as session:
        factors = DurableStore.over(session).factors
        factors.add(_factor("key-new", ALICE, "webauthn", created_at=30))
        factors.add(_factor("totp", ALICE, "totp", created_at=20))
        factors.add(_factor("key-old", ALICE, "webauthn", created_at=10))
        factors.add(_factor("bob-totp", BOB, "totp", created_at=5))
    return with_alice_and_bob


FACTOR_QUERIES = [
    pytest.param(ALICE, None, ["key-old", "totp", "key-new"], id="all of alice's factors, oldest first"),
    pytest.param(ALICE, "webauthn", ["key-old", "key-new"], id="only her webauthn keys, not her totp"),
    pytest.param(ALICE, "email", [], id="none because she enrolled no email factor"),
    pytest.param(BOB, "totp", ["bob-totp"], id="bob's totp only, not alice's"),
]


@pytest.mark.parametrize(("user_id", "kind", "expected"), FACTOR_QUERIES)
def test_factors_of_user_by_kind(
    with_factors: Database, user_id: str, kind: str | None, expected: list[str]
) -> None:
    with with_factors.unit_of_work() as session:
        found = DurableStore.over(session).factors.of_user(user_id, kind)

        assert [factor.id for factor in found] == expected


def test_remove_all_removes_only_that_users_factors(with_factors: Database) -> None:
    with with_factors.unit_of_work() as session:
        assert DurableStore.over(session).factors.remove_all(ALICE) == 3

    with with_factors.unit_of_work() as session:
        factors = DurableStore.over(session).factors
        assert factors.of_user(ALICE) == []
        assert [factor.id for factor in factors.of_user(BOB)] == ["bob-totp"]


def test_mark_used_records_the_time(with_factors: Database) -> None:
    with with_factors.unit_of_work() as session:
        DurableStore.over(session).factors.mark_used("totp", at=4242)

    with with_factors.unit_of_work() as session:
        used = {
            factor.id: factor.last_used_at for factor in DurableStore.over(session).factors.of_user(ALICE)
        }

    assert used == {"key-old": None, "totp": 4242, "key-new": None}


def test_factors_read_in_a_unit_of_work_follow_its_own_changes(with_factors: Database) -> None:
    """The factors of a user are read once per unit of work; what it changes is seen at once."""
    with with_factors.unit_of_work() as session:
        factors = DurableStore.over(session).factors
        assert [factor.id for factor in factors.of_user(ALICE)] == ["key-old", "totp", "key-new"]

        factors.mark_used("totp", at=4242, data={"counter": 7})
        factors.add(_factor("email", ALICE, "email", created_at=5000))
        factors.remove(ALICE, "key-old")

        seen = {factor.id: (factor.last_used_at, factor.data) for factor in factors.of_user(ALICE)}
        assert list(seen) == ["totp", "key-new", "email"]
        assert seen["totp"] == (4242, {"counter": 7})
        assert [factor.id for factor in factors.of_user(ALICE, "email")] == ["email"]


def test_clients_are_added_and_found(database: Database) -> None:
    with database.unit_of_work() as session:
        clients = DurableStore.over(session).clients
        clients.add(_client("later", created_at=2000))
        clients.add(_client("app", created_at=1000))

    with database.unit_of_work() as session:
        clients = DurableStore.over(session).clients
        app = clients.get("app")
        missing = clients.get("nobody")
        in_order = [client.client_id for client in clients.all()]

    assert app is not None
    assert app.redirect_uris == ["https://app.example/cb"]
    assert app.grant_types == ["authorization_code", "refresh_token"]
    assert app.post_logout_redirect_uris == []
    assert app.default_acr_values == ["phr"]
    assert app.id_token_signed_response_alg == "RS256"
    assert app.secret_hash is None
    assert missing is None
    assert in_order == ["app", "later"]


@pytest.fixture
def with_tokens(with_alice_and_bob: Database) -> Database:
    with with_alice_and_bob.unit_of_work() as session:
        store = DurableStore.over(session)
        store.clients.add(_client("app"))
        store.refresh_tokens.add(_refresh_token("first", family_id="family-1"))
        store.refresh_tokens.add(_refresh_token("second", family_id="family-1"))
        store.refresh_tokens.add(_refresh_token("other", family_id="family-2"))
    return with_alice_and_bob


def _claim(database: Database, token_hash: str) -> bool:
    with database.unit_of_work() as session:
        return DurableStore.over(session).refresh_tokens.claim_for_rotation(token_hash)


def test_claim_for_rotation_succeeds_once(with_tokens: Database) -> None:
    assert _claim(with_tokens, "first") is True
    assert _claim(with_tokens, "first") is False
    assert _claim(with_tokens, "second") is True
    assert _claim(with_tokens, "unknown") is False

    with with_tokens.unit_of_work() as session:
        found = DurableStore.over(session).refresh_tokens.with_holder("first")
        assert found is not None
        assert found.row.rotated and not found.row.revoked and found.holder.username == "alice"
        assert found.row.authentication == {"amr": ["pwd", "hwk"], "acr": "phr", "auth_time": 1000}


def test_claim_for_rotation_has_one_winner_among_racing_sessions(with_tokens: Database) -> None:
    racers = 6
    start = threading.Barrier(racers)

    def race(_: int) -> bool:
        with with_tokens.unit_of_work() as session:
            start.wait(timeout=10)
            return DurableStore.over(session).refresh_tokens.claim_for_rotation("first")

    with ThreadPoolExecutor(racers) as pool:
        results = list(pool.map(race, range(racers)))

    assert results.count(True) == 1, results


ROTATED_AT, LIFETIME = 1500, 600


@pytest.fixture
def with_offline_tokens(with_alice_and_bob: Database) -> list[str]:
    """Thirty usable offline refresh tokens of Alice's, each of its own grant; their hashes."""
    hashes = [f"offline-{number}" for number in range(30)]
    with with_alice_and_bob.unit_of_work() as session:
        store = DurableStore.over(session)
        store.clients.add(_client("app"))
        for token_hash in hashes:
            store.refresh_tokens.add(_refresh_token(token_hash, f"family-{token_hash}", offline=True))
    return hashes


def _rotate(database: Database, token_hash: str, racer: int) -> RotatedRefreshToken | None:
    return rotate_refresh_token(
        database,
        token_hash,
        client_id="app",
        successor_hash=f"{token_hash}-by-{racer}",
        now=ROTATED_AT,
        lifetime=LIFETIME,
    )


def test_rotations_at_once_rotate_each_token_once_and_add_its_successor(
    with_alice_and_bob: Database, with_offline_tokens: list[str]
) -> None:
    """Each token used twice at once, by concurrent requests of one process (on SQLite, written in
    shared transactions): one use rotates it, the other finds it rotated."""
    uses = [(token_hash, racer) for token_hash in with_offline_tokens for racer in (1, 2)]
    with ThreadPoolExecutor(16) as pool:
        rotated = list(pool.map(lambda use: _rotate(with_alice_and_bob, *use), uses))

    won = {use: outcome for use, outcome in zip(uses, rotated, strict=True) if outcome is not None}
    assert sorted(token_hash for token_hash, _ in won) == sorted(with_offline_tokens)
    assert sorted(won.values(), key=lambda outcome: outcome.family_id) == [
        RotatedRefreshToken(
            family_id=f"family-{token_hash}",
            client_id="app",
            user_id=ALICE,
            scope="openid",
            requested_scope="openid",
            authentication={"amr": ["pwd", "hwk"], "acr": "phr", "auth_time": 1000},
            sid=None,
            offline=True,
        )
        for token_hash in sorted(with_offline_tokens)
    ]
    with with_alice_and_bob.unit_of_work() as session:
        for token_hash, racer in won:
            claimed, successor = (
                session.get(RefreshToken, name) for name in (token_hash, f"{token_hash}-by-{racer}")
            )
            assert claimed is not None and claimed.rotated
            assert successor is not None and not successor.rotated and successor.offline
            assert (successor.issued_at, successor.expires_at) == (ROTATED_AT, ROTATED_AT + LIFETIME)


def _rotate_all(url: str, hashes: list[str], racer: int, start: Barrier, results: Queue[list[str]]) -> None:
    database = Database(url)
    start.wait(timeout=30)
    with ThreadPoolExecutor(8) as pool:
        rotated = list(pool.map(lambda token_hash: _rotate(database, token_hash, racer), hashes))
    results.put([token_hash for token_hash, outcome in zip(hashes, rotated, strict=True) if outcome])


def test_rotations_in_two_processes_at_once_rotate_each_token_once(
    database_url: str, with_alice_and_bob: Database, with_offline_tokens: list[str]
) -> None:
    """Two workers of one node: each process batches its own rotations; the database serializes them."""
    won = race_in_two_processes(_rotate_all, database_url, with_offline_tokens)

    assert sorted(won[0] + won[1]) == sorted(with_offline_tokens), "every token is rotated exactly once"


def test_revoke_family_revokes_every_token_of_that_family_only(with_tokens: Database) -> None:
    with with_tokens.unit_of_work() as session:
        DurableStore.over(session).refresh_tokens.revoke_family("family-1")

    assert _claim(with_tokens, "second") is False, "a revoked token cannot be rotated"
    assert _claim(with_tokens, "other") is True
    with with_tokens.unit_of_work() as session:
        tokens = DurableStore.over(session).refresh_tokens
        revoked = {
            name: found.row.revoked
            for name in ("first", "second", "other")
            if (found := tokens.with_holder(name))
        }
    assert revoked == {"first": True, "second": True, "other": False}


def test_a_refresh_token_is_read_with_the_end_of_the_session_it_was_issued_from(
    with_alice_and_bob: Database,
) -> None:
    with with_alice_and_bob.unit_of_work() as session:
        store = DurableStore.over(session)
        store.clients.add(_client("app"))
        store.sessions.add(
            UserSession(sid="s-1", user_id=ALICE, storage_key="k", created_at=1000, expires_at=5000)
        )
        store.refresh_tokens.add(_refresh_token("bound", "family-1", sid="s-1"))
        store.refresh_tokens.add(_refresh_token("orphan", "family-2", sid="s-never-indexed"))

    def session_end(token_hash: str) -> int | None:
        with with_alice_and_bob.unit_of_work() as session:
            found = DurableStore.over(session).refresh_tokens.with_holder(token_hash)
            assert found is not None and found.holder.username == "alice"
            return found.session_expires_at

    assert (session_end("bound"), session_end("orphan")) == (5000, None)
    with with_alice_and_bob.unit_of_work() as session:
        DurableStore.over(session).sessions.remove("s-1")
    assert session_end("bound") is None, "an ended session is gone from the index"


def test_indexing_a_session_purges_that_users_expired_sessions_and_names_them(
    with_alice_and_bob: Database,
) -> None:
    def session(sid: str, user_id: str, expires_at: int, **fields: Any) -> UserSession:
        return UserSession(
            sid=sid, user_id=user_id, storage_key=f"k-{sid}", created_at=1000, expires_at=expires_at, **fields
        )

    with with_alice_and_bob.unit_of_work() as unit:
        sessions = DurableStore.over(unit).sessions
        for earlier in (session("a-ended", ALICE, 2000), session("a-lives", ALICE, 2001)):
            assert sessions.add(earlier) == []
        assert sessions.add(session("b-ended", BOB, 1500)) == []
    with with_alice_and_bob.unit_of_work() as unit:
        sessions = DurableStore.over(unit).sessions
        added = session("a-new", ALICE, 9000, ip="192.0.2.1", user_agent="Browser")
        added.created_at = 2000
        assert sessions.add(added) == ["a-ended"]
    with with_alice_and_bob.unit_of_work() as unit:
        sessions = DurableStore.over(unit).sessions
        assert [row.sid for row in sessions.of_user(ALICE, now=0)] == ["a-new", "a-lives"]
        assert [row.sid for row in sessions.of_user(BOB, now=0)] == ["b-ended"], "only the user's own"
        kept = sessions.get("a-new")
        assert kept is not None
        assert (kept.storage_key, kept.expires_at, kept.ip, kept.user_agent, kept.acr) == (
            "k-a-new",
            9000,
            "192.0.2.1",
            "Browser",
            None,
        )


def test_offline_of_user_lists_the_current_token_of_each_of_the_users_offline_grants(
    with_alice_and_bob: Database,
) -> None:
    with with_alice_and_bob.unit_of_work() as session:
        store = DurableStore.over(session)
        store.clients.add(_client("app"))
        for token in [
            _refresh_token("rotated", "family-1", offline=True, rotated=True),
            _refresh_token("current", "family-1", offline=True, issued_at=1500),
            _refresh_token("session-bound", "family-2"),
            _refresh_token("revoked", "family-3", offline=True, revoked=True),
            _refresh_token("expired", "family-4", offline=True, expires_at=1200),
            _refresh_token("bobs", "family-5", offline=True, user_id=BOB),
        ]:
            store.refresh_tokens.add(token)

    with with_alice_and_bob.unit_of_work() as session:
        listed = DurableStore.over(session).refresh_tokens.offline_of_user(ALICE, now=1300)
        assert [(token.token_hash, client.name) for token, client in listed] == [("current", "App app")]


def test_families_of_lists_a_clients_grants_still_held_for_a_user(with_tokens: Database) -> None:
    with with_tokens.unit_of_work() as session:
        DurableStore.over(session).refresh_tokens.revoke_family("family-2")
    with with_tokens.unit_of_work() as session:
        tokens = DurableStore.over(session).refresh_tokens
        held = (
            tokens.families_of(ALICE, "app"),
            tokens.families_of(BOB, "app"),
            tokens.families_of(ALICE, "x"),
        )

    assert held == (["family-1"], [], [])


def _grant(database: Database, user_id: str, scopes: list[str], at: int) -> None:
    with database.unit_of_work() as session:
        DurableStore.over(session).consents.grant(user_id=user_id, client_id="app", scopes=scopes, at=at)


def test_a_consent_replaces_what_was_recorded_and_is_listed_with_its_client(with_tokens: Database) -> None:
    _grant(with_tokens, ALICE, ["openid", "profile"], at=1000)
    _grant(with_tokens, ALICE, ["openid", "email", "profile"], at=2000)
    _grant(with_tokens, BOB, ["openid"], at=3000)

    with with_tokens.unit_of_work() as session:
        consents = DurableStore.over(session).consents
        alices = consents.get(ALICE, "app")
        listed = [
            (consent.user_id, client.name) for consent, client in consents.of_user(ALICE, granted_since=0)
        ]
        forgotten = consents.of_user(ALICE, granted_since=2001)
    assert alices is not None and (alices.scope, alices.granted_at) == ("email openid profile", 2000)
    assert listed == [(ALICE, "App app")]
    assert forgotten == [], "older than the consent lifetime: not listed"


def test_a_revoked_consent_is_gone_for_that_user_only(with_tokens: Database) -> None:
    _grant(with_tokens, ALICE, ["openid"], at=1000)
    _grant(with_tokens, BOB, ["openid"], at=1000)

    with with_tokens.unit_of_work() as session:
        consents = DurableStore.over(session).consents
        revoked = (consents.revoke(ALICE, "app"), consents.revoke(ALICE, "app"))
    with with_tokens.unit_of_work() as session:
        consents = DurableStore.over(session).consents
        left = (consents.get(ALICE, "app"), consents.get(BOB, "app") is not None)

    assert revoked == (True, False)
    assert left == (None, True)


def test_consents_granted_at_once_all_succeed_into_one_row(with_tokens: Database) -> None:
    """Two tabs (or a double click) allowing the same client at once: no unique-key failure."""
    racers = 4
    start = threading.Barrier(racers)

    def race(n: int) -> None:
        with with_tokens.unit_of_work() as session:
            start.wait(timeout=10)
            DurableStore.over(session).consents.grant(user_id=ALICE, client_id="app", scopes=["openid"], at=n)

    with ThreadPoolExecutor(racers) as pool:
        list(pool.map(race, range(racers)))

    with with_tokens.unit_of_work() as session:
        assert [c.scope for c, _ in DurableStore.over(session).consents.of_user(ALICE, granted_since=0)] == [
            "openid"
        ]


def test_audit_of_user_is_newest_first(with_alice_and_bob: Database) -> None:
    with with_alice_and_bob.unit_of_work() as session:
        audit = DurableStore.over(session).audit
        for at, event in [(100, "login"), (300, "logout"), (200, "factor_added"), (300, "token")]:
            audit.record(audit_event(event, "success", at=at, user_id=ALICE, ip="192.0.2.1"))
        audit.record(audit_event("login", "failure", at=400, user_id=BOB, detail={"reason": "password"}))

    with with_alice_and_bob.unit_of_work() as session:
        audit = DurableStore.over(session).audit
        alices = [(event.at, event.event) for event in audit.of_user(ALICE)]
        latest_two = [event.event for event in audit.of_user(ALICE, limit=2)]
        (bobs,) = audit.of_user(BOB)

    assert alices == [(300, "token"), (300, "logout"), (200, "factor_added"), (100, "login")]
    assert latest_two == ["token", "logout"]
    assert (bobs.outcome, bobs.detail, bobs.ip) == ("failure", {"reason": "password"}, None)


def test_a_unit_of_works_audit_events_go_in_one_insert_and_none_after_a_rollback(
    with_alice_and_bob: Database,
) -> None:
    """Written at the commit (or before the unit of work reads events, which then include them)."""
    inserts: list[str] = []
    event.listen(
        with_alice_and_bob.engine,
        "before_cursor_execute",
        lambda *args: inserts.append(args[2]) if args[2].startswith("INSERT INTO audit_events") else None,
    )
    with with_alice_and_bob.unit_of_work() as session:
        audit = DurableStore.over(session).audit
        audit.record(audit_event("login", "success", at=1, user_id=ALICE))
        audit.record(audit_event("logout", "success", at=2, user_id=ALICE))
        assert [event.event for event in audit.of_user(ALICE)] == ["logout", "login"]
        audit.record(audit_event("token", "success", at=3, user_id=ALICE, detail={"grant": "g"}))
        audit.record(audit_event("login", "failure", at=4, user_id=BOB))
    assert len(inserts) == 2, inserts

    with pytest.raises(RuntimeError), with_alice_and_bob.unit_of_work() as session:
        DurableStore.over(session).audit.record(audit_event("lost", "success", at=5, user_id=ALICE))
        raise RuntimeError("the unit of work fails")

    with with_alice_and_bob.unit_of_work() as session:
        events = [(event.event, event.detail) for event in DurableStore.over(session).audit.of_user(ALICE)]
    assert events == [("token", {"grant": "g"}), ("logout", {}), ("login", {})]


def test_audit_event_truncates_the_user_agent() -> None:
    assert audit_event("login", "success", at=1, user_agent="x" * 1000).user_agent == "x" * 400
    assert audit_event("login", "success", at=1, user_agent="").user_agent is None


def test_migrate_is_idempotent(with_alice_and_bob: Database) -> None:
    with_alice_and_bob.migrate()
    with_alice_and_bob.migrate()

    tables = set(inspect(with_alice_and_bob.engine).get_table_names())
    assert {
        "users",
        "factors",
        "clients",
        "refresh_tokens",
        "audit_events",
        "alembic_version",
    } <= tables
    with with_alice_and_bob.unit_of_work() as session:
        assert DurableStore.over(session).users.get(ALICE) is not None


def test_ping_answers(database: Database) -> None:
    database.ping()


def test_ping_of_an_unreachable_database_raises_database_unavailable() -> None:
    with pytest.raises(DatabaseUnavailable):
        Database("postgresql+psycopg://postgres@127.0.0.1:1/test").ping()


def test_a_pooled_connection_the_server_dropped_while_idle_is_replaced(
    postgres_url: str, _postgres_server: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only idle connections are pinged before use (saving a round trip per busy request), and one that
    died in the pool (a restart, an idle timeout) never reaches a request."""
    monkeypatch.setattr(database_module, "PING_AFTER_IDLE_SECONDS", 0.05)
    database = Database(postgres_url, pool_size=1)
    try:
        with database.engine.connect() as connection:
            backend = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        _url, admin = _postgres_server
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        time.sleep(0.1)
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != backend
    finally:
        database.engine.dispose()


# -- invariants that racing units of work cannot break ----------------------------------------------

POLICY = AssurancePolicy.from_settings(settings_from_mapping({}))
ADDRESS = "shared@example.com"
SLOW_REQUEST = 0.1  # between reading and writing, long enough for every racer to read, unless locked out


def _race(racers: int, work: Callable[[Database, int], Any], database: Database) -> list[Any]:
    """Run `work(database, racer)` in `racers` threads, each its own unit of work, started together."""
    start = threading.Barrier(racers)

    def run(racer: int) -> Any:
        start.wait(timeout=10)
        return work(database, racer)

    with ThreadPoolExecutor(racers) as pool:
        return list(pool.map(run, range(racers)))


@pytest.fixture
def with_three_apps(with_alice_and_bob: Database) -> Database:
    with with_alice_and_bob.unit_of_work() as session:
        for number in range(3):
            DurableStore.over(session).factors.add(
                _factor(f"app-{number}", ALICE, FactorKind.TOTP, created_at=number)
            )
    return with_alice_and_bob


def _remove_unless_last(database: Database, racer: int) -> bool:
    """What the account page does: remove an app only while another second factor would remain."""
    with database.unit_of_work() as session:
        factors = DurableStore.over(session).factors
        held = factors.lock_of_user(ALICE)
        time.sleep(SLOW_REQUEST)
        remaining = capabilities_of(factor for factor in held if factor.id != f"app-{racer}")
        return keeps_minimum(remaining, POLICY) and factors.remove(ALICE, f"app-{racer}")


def test_racing_removals_leave_the_account_a_second_factor(with_three_apps: Database) -> None:
    removed = _race(3, _remove_unless_last, with_three_apps)

    assert sorted(removed) == [False, True, True]
    with with_three_apps.unit_of_work() as session:
        assert len(DurableStore.over(session).factors.of_user(ALICE, FactorKind.TOTP)) == 1


def _bind_or_create(database: Database, racer: int) -> bool:
    """Even racers bind the address on the account page; odd ones are new users given it by the CLI."""
    user_id = f"00000000-0000-0000-0000-{racer:012d}"
    with database.unit_of_work() as session:
        store = DurableStore.over(session)
        if racer % 2 == 0:
            store.users.add(_user(user_id, f"binder-{racer}"))
        store.addresses.lock(ADDRESS)
        if store.addresses.holders(ADDRESS).full_for(user_id, limit=3):
            return False
        time.sleep(SLOW_REQUEST)
        if racer % 2 == 0:
            store.factors.add(
                Factor(
                    id=f"email-{racer}", user_id=user_id, kind=FactorKind.EMAIL, name=ADDRESS, created_at=1
                )
            )
        else:
            store.users.add(_user(user_id, f"created-{racer}", email=ADDRESS))
        return True


def test_racing_bindings_and_creations_stop_at_the_accounts_an_address_allows(database: Database) -> None:
    admitted = _race(8, _bind_or_create, database)

    assert admitted.count(True) == 3, admitted
    with database.unit_of_work() as session:
        holders = DurableStore.over(session).addresses.holders(ADDRESS)
    assert len(holders.accounts) == 3


def test_an_address_is_held_once_per_account_whether_bound_or_given(with_alice_and_bob: Database) -> None:
    with with_alice_and_bob.unit_of_work() as session:
        store = DurableStore.over(session)
        store.factors.add(
            Factor(id="bound", user_id=ALICE, kind=FactorKind.EMAIL, name="alice@example.com", created_at=1)
        )
        store.factors.add(
            Factor(id="app", user_id=BOB, kind=FactorKind.TOTP, name="alice@example.com", created_at=1)
        )
        holders = store.addresses.holders("alice@example.com")

    assert holders == AddressHolders(bound=frozenset({ALICE}), accounts=frozenset({ALICE}))
    assert not holders.full_for(ALICE, limit=1), "alice holding it again adds no account"
    assert holders.full_for(BOB, limit=1)


@pytest.fixture
def with_recovery_codes(with_alice_and_bob: Database) -> tuple[Database, list[str]]:
    codes = new_codes()
    with with_alice_and_bob.unit_of_work() as session:
        for factor in code_factors(ALICE, codes):
            DurableStore.over(session).factors.add(factor)
    return with_alice_and_bob, codes


def test_a_recovery_code_signs_in_once_among_racing_uses(
    with_recovery_codes: tuple[Database, list[str]],
) -> None:
    database, codes = with_recovery_codes

    def use(database: Database, _racer: int) -> bool:
        with database.unit_of_work() as session:
            used = DurableStore.over(session).factors.consume(ALICE, recovery_lookup_key(codes[0]))
            time.sleep(SLOW_REQUEST)
            return used

    assert sorted(_race(4, use, database)) == [False, False, False, True]


def _regenerate(database: Database, _racer: int) -> list[str]:
    """What the account page does: a new set of codes replaces the set the account holds."""
    with database.unit_of_work() as session:
        factors = DurableStore.over(session).factors
        factors.lock_of_user(ALICE)
        factors.remove_all(ALICE, FactorKind.RECOVERY_CODE)
        time.sleep(SLOW_REQUEST)
        codes = new_codes()
        for factor in code_factors(ALICE, codes):
            factors.add(factor)
        return codes


def test_racing_regenerations_leave_one_set_of_recovery_codes(
    with_recovery_codes: tuple[Database, list[str]],
) -> None:
    database, _codes = with_recovery_codes

    shown = _race(2, _regenerate, database)

    with database.unit_of_work() as session:
        held = {
            factor.lookup_key
            for factor in DurableStore.over(session).factors.of_user(ALICE, FactorKind.RECOVERY_CODE)
        }
    sets = [{recovery_lookup_key(code) for code in codes} for codes in shown]
    assert len(held) == 10 and held in sets, "one set, all of it"


def test_a_totp_step_signs_in_once_among_racing_sign_ins(with_factors: Database) -> None:
    def claim(database: Database, _racer: int) -> bool:
        with database.unit_of_work() as session:
            claimed = DurableStore.over(session).factors.claim_step("totp", step=1000, at=30000)
            time.sleep(SLOW_REQUEST)
            return claimed

    assert sorted(_race(4, claim, with_factors)) == [False, False, False, True]


STEPS = [
    pytest.param([1000], [True], id="a first step is accepted"),
    pytest.param([1000, 1000], [True, False], id="fails because the step was spent"),
    pytest.param([1001, 1000], [True, False], id="fails because a later step was spent (RFC 6238 5.2)"),
    pytest.param([1000, 1001, 1003], [True, True, True], id="later steps are accepted"),
]


@pytest.mark.parametrize(("steps", "accepted"), STEPS)
def test_totp_steps_are_spent_in_order(
    with_factors: Database, steps: list[int], accepted: list[bool]
) -> None:
    results = []
    for step in steps:
        with with_factors.unit_of_work() as session:
            results.append(DurableStore.over(session).factors.claim_step("totp", step=step, at=step * 30))

    assert results == accepted
    with with_factors.unit_of_work() as session:
        (totp,) = DurableStore.over(session).factors.of_user(ALICE, FactorKind.TOTP)
    assert (totp.last_step, totp.last_used_at) == (max(steps), max(steps) * 30)
