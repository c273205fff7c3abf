"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and
carry the data stored before them over."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from idp.store.database import Database
from idp.store.durable import DurableStore
from idp.store.tables import Base, RefreshToken


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


# username: (email as stored before 0004, addresses bound on the account pages, oldest first)
LEGACY_USERS = {
    "alice": ("Alice@Example.COM.", ["alice@example.com"]),
    "bob": ("Bob@Example.com", []),
    "carol": (None, ["carol@bücher.example"]),
    "dave": ("dave@old.example", ["dave@new.example", "dave@newer.example"]),
    "erin": ("not an address", []),
}
# username: (email, email_verified, bound addresses)
MIGRATED = {
    "alice": ("alice@example.com", True, ["alice@example.com"]),
    "bob": ("bob@example.com", False, []),
    "carol": ("carol@xn--bcher-kva.example", True, ["carol@xn--bcher-kva.example"]),
    "dave": ("dave@new.example", True, ["dave@new.example", "dave@newer.example"]),
    "erin": ("not an address", False, []),
}


def test_addresses_stored_before_become_canonical_and_proven_ones_verified(database_url: str) -> None:
    database = Database(database_url)
    try:
        database.migrate("0003")
        with database.engine.begin() as connection:
            for number, (username, (email, bound)) in enumerate(LEGACY_USERS.items()):
                connection.execute(
                    text(
                        "INSERT INTO users (id, username, email, password_hash, disabled, created_at) "
                        "VALUES (:id, :username, :email, 'hash', false, 1)"
                    ),
                    {"id": username, "username": username, "email": email},
                )
                for order, address in enumerate(bound):
                    connection.execute(
                        text(
                            "INSERT INTO factors (id, user_id, kind, name, data, created_at) "
                            "VALUES (:id, :user_id, 'email', :name, '{}', :at)"
                        ),
                        {
                            "id": f"{username}-{order}",
                            "user_id": username,
                            "name": address,
                            "at": number + order,
                        },
                    )
        database.migrate()

        with database.unit_of_work() as session:
            store = DurableStore.over(session)
            migrated = {
                user.username: (
                    user.email,
                    user.email_verified,
                    [f.name for f in store.factors.of_user(user.id)],
                )
                for user in store.users.all()
            }
    finally:
        database.engine.dispose()

    assert migrated == MIGRATED


def test_refresh_tokens_issued_before_session_binding_are_bound_to_the_session_they_recorded(
    unmigrated_database: Database,
) -> None:
    unmigrated_database.migrate("0003")
    users = sa.table(
        "users", *(sa.column(name) for name in ("id", "username", "password_hash", "disabled", "created_at"))
    )
    clients = sa.table(
        "clients",
        *(sa.column(name) for name in ("client_id", "name", "scope", "id_token_signed_response_alg")),
        *(sa.column(name, sa.JSON()) for name in ("redirect_uris", "post_logout_redirect_uris")),
        *(sa.column(name, sa.JSON()) for name in ("grant_types", "default_acr_values")),
        sa.column("created_at"),
    )
    tokens = sa.table(
        "refresh_tokens",
        *(sa.column(name) for name in ("token_hash", "family_id", "client_id", "user_id", "scope")),
        sa.column("authentication", sa.JSON()),
        *(sa.column(name) for name in ("issued_at", "expires_at", "rotated", "revoked")),
    )
    authentication = {"acr": "mfa", "amr": ["pwd", "otp", "mfa"], "auth_time": 1000, "sid": "sid-1"}
    with unmigrated_database.engine.begin() as connection:
        connection.execute(
            users.insert().values(id="u-1", username="alice", password_hash="x", disabled=False, created_at=1)
        )
        connection.execute(
            clients.insert().values(
                client_id="app",
                name="App",
                scope="openid",
                id_token_signed_response_alg="RS256",
                redirect_uris=[],
                post_logout_redirect_uris=[],
                grant_types=["authorization_code", "refresh_token"],
                default_acr_values=[],
                created_at=1,
            )
        )
        connection.execute(
            tokens.insert().values(
                token_hash="h-1",
                family_id="f-1",
                client_id="app",
                user_id="u-1",
                scope="openid",
                authentication=authentication,
                issued_at=1000,
                expires_at=2000,
                rotated=False,
                revoked=False,
            )
        )

    unmigrated_database.migrate()

    with unmigrated_database.unit_of_work() as session:
        token = session.get(RefreshToken, "h-1")
        assert token is not None
        assert (token.sid, token.offline) == ("sid-1", False)
