"""token boundaries: resource servers' audiences; refresh tokens keep the scope asked for, live with a session

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch: SQLite's batch mode copies and drops the table, and dropping
    # `clients` would cascade to every refresh token.
    op.add_column(
        "clients",
        sa.Column("introspect_audiences", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )
    op.add_column("refresh_tokens", sa.Column("requested_scope", sa.Text(), nullable=True))
    op.add_column("refresh_tokens", sa.Column("sid", sa.String(length=64), nullable=True))
    op.add_column(
        "refresh_tokens", sa.Column("offline", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    _bind_refresh_tokens_to_their_sessions()


def _bind_refresh_tokens_to_their_sessions() -> None:
    """Tokens issued before sessions bound them: bound to the session recorded in their authentication."""
    tokens = sa.table(
        "refresh_tokens",
        sa.column("token_hash", sa.String()),
        sa.column("authentication", sa.JSON()),
        sa.column("sid", sa.String()),
    )
    connection = op.get_bind()
    found = connection.execute(sa.select(tokens.c.token_hash, tokens.c.authentication)).all()
    for token_hash, authentication in found:
        connection.execute(
            tokens.update().where(tokens.c.token_hash == token_hash).values(sid=authentication.get("sid"))
        )


def downgrade() -> None:
    op.drop_column("refresh_tokens", "offline")
    op.drop_column("refresh_tokens", "sid")
    op.drop_column("refresh_tokens", "requested_scope")
    op.drop_column("clients", "introspect_audiences")
