"""temporary password: a one-time password set by an operator, to be replaced at the next sign-in

Revision ID: 0015
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch: SQLite's batch recreates the users table, cascading deletes.
    op.add_column(
        "users",
        sa.Column("password_must_change", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("users", "password_must_change")
