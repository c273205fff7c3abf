"""administrators: a flag on users (issue 17)

Revision ID: 0004_admin
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_admin"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("is_admin")
