"""dpop: clients that require DPoP-bound tokens, and the key a public client's refresh token is bound to

Revision ID: 0010
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch: SQLite's batch drops the clients table, cascading to every
    # refresh token (see 0004).
    op.add_column(
        "clients",
        sa.Column("dpop_bound_access_tokens", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("refresh_tokens", sa.Column("dpop_jkt", sa.String(length=43), nullable=True))


def downgrade() -> None:
    op.drop_column("refresh_tokens", "dpop_jkt")
    op.drop_column("clients", "dpop_bound_access_tokens")
