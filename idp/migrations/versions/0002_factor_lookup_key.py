"""factor lookup key: find a WebAuthn credential by its id (usernameless sign-in)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("factors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lookup_key", sa.String(length=80), nullable=True))
        batch_op.create_index("ix_factors_lookup_key", ["lookup_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("factors", schema=None) as batch_op:
        batch_op.drop_index("ix_factors_lookup_key")
        batch_op.drop_column("lookup_key")
