"""client keys and request rules: jwks / jwks_uri, token_endpoint_auth_method, request objects, PAR

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


COLUMNS: tuple[sa.Column[object], ...] = (
    sa.Column(
        "token_endpoint_auth_method",
        sa.String(length=32),
        server_default="client_secret_basic",
        nullable=False,
    ),
    sa.Column("jwks", sa.JSON(), nullable=True),
    sa.Column("jwks_uri", sa.String(length=2000), nullable=True),
    sa.Column("request_object_signing_alg", sa.String(length=16), nullable=True),
    sa.Column(
        "require_pushed_authorization_requests", sa.Boolean(), server_default=sa.false(), nullable=False
    ),
)


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch: SQLite's batch copies and drops the clients table, and dropping
    # it cascades to every refresh token (see 0004).
    for column in COLUMNS:
        op.add_column("clients", column)
    # Clients registered before: those without a secret were public.
    op.execute("UPDATE clients SET token_endpoint_auth_method = 'none' WHERE secret_hash IS NULL")


def downgrade() -> None:
    for column in reversed(COLUMNS):
        op.drop_column("clients", column.name)
