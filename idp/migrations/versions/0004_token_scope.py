"""token boundaries: the audiences a resource server may introspect tokens of

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


def downgrade() -> None:
    op.drop_column("clients", "introspect_audiences")
