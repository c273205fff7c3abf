"""logout channels: clients' back- and front-channel logout URIs, and the clients of each session

Revision ID: 0011
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch: SQLite's batch drops the clients table, cascading to every
    # refresh token (see 0004).
    op.add_column("clients", sa.Column("backchannel_logout_uri", sa.String(length=2000), nullable=True))
    op.add_column(
        "clients",
        sa.Column(
            "backchannel_logout_session_required", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )
    op.add_column("clients", sa.Column("frontchannel_logout_uri", sa.String(length=2000), nullable=True))
    op.add_column(
        "clients",
        sa.Column(
            "frontchannel_logout_session_required", sa.Boolean(), nullable=False, server_default=sa.false()
        ),
    )
    op.create_table(
        "session_clients",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("first_at", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["clients.client_id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("sid", "client_id"),
    )
    op.create_index("ix_session_clients_user_id", "session_clients", ["user_id"])


def downgrade() -> None:
    op.drop_index("ix_session_clients_user_id", table_name="session_clients")
    op.drop_table("session_clients")
    op.drop_column("clients", "frontchannel_logout_session_required")
    op.drop_column("clients", "frontchannel_logout_uri")
    op.drop_column("clients", "backchannel_logout_session_required")
    op.drop_column("clients", "backchannel_logout_uri")
