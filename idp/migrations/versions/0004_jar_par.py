"""client keys and request rules: jwks / jwks_uri, token_endpoint_auth_method, request objects, PAR

Revision ID: 0004_jar_par
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_jar_par"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "token_endpoint_auth_method",
                sa.String(length=32),
                server_default="client_secret_basic",
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("jwks", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("jwks_uri", sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column("request_object_signing_alg", sa.String(length=16), nullable=True))
        batch_op.add_column(
            sa.Column(
                "require_pushed_authorization_requests",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
            )
        )
    # Clients registered before: those without a secret were public.
    op.execute("UPDATE clients SET token_endpoint_auth_method = 'none' WHERE secret_hash IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_column("require_pushed_authorization_requests")
        batch_op.drop_column("request_object_signing_alg")
        batch_op.drop_column("jwks_uri")
        batch_op.drop_column("jwks")
        batch_op.drop_column("token_endpoint_auth_method")
