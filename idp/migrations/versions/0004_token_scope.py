"""token boundaries: resource servers' audiences; the scope a refresh token's authorization asked for

Revision ID: 0004_token_scope
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_token_scope"
down_revision = "0003"
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


def downgrade() -> None:
    op.drop_column("refresh_tokens", "requested_scope")
    op.drop_column("clients", "introspect_audiences")
