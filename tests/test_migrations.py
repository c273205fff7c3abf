"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL, and
carry the data stored before them over."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from idp.store.database import Database
from idp.store.durable import DurableStore
from idp.store.tables import Base


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
