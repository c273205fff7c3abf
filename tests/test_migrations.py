"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext

from idp.store.database import MIGRATIONS, Database
from idp.store.tables import Base, RefreshToken


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def _upgrade(database: Database, revision: str) -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def test_refresh_tokens_issued_before_session_binding_are_bound_to_the_session_they_recorded(
    unmigrated_database: Database,
) -> None:
    _upgrade(unmigrated_database, "0003")
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
