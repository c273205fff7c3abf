"""email addresses in one canonical form, email_verified, TOTP steps used, look-ups of an address's holders

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from idp.email_address import AddressRejected, canonical_address

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

users = sa.table(
    "users",
    sa.column("id", sa.String),
    sa.column("email", sa.String),
    sa.column("email_verified", sa.Boolean),
)
factors = sa.table(
    "factors",
    sa.column("id", sa.String),
    sa.column("user_id", sa.String),
    sa.column("kind", sa.String),
    sa.column("name", sa.String),
    sa.column("created_at", sa.Integer),
)


def upgrade() -> None:
    # Not in a batch: SQLite would copy the users table, and dropping the old one deletes (cascades to)
    # every factor, session and refresh token.
    op.add_column(
        "users", sa.Column("email_verified", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.create_index("ix_users_email", "users", ["email"], unique=False)
    with op.batch_alter_table("factors", schema=None) as batch_op:
        batch_op.alter_column("name", existing_type=sa.String(length=100), type_=sa.String(length=320))
        batch_op.add_column(sa.Column("last_step", sa.Integer(), nullable=True))
        batch_op.create_index("ix_factors_kind_name", ["kind", "name"], unique=False)
    _canonicalize_addresses(op.get_bind())


def _canonicalize_addresses(connection: sa.Connection) -> None:
    """Stored addresses take the canonical form, so that equal addresses compare equal. A user who
    proved addresses on the account pages has a verified email: their email when it is one of them,
    else the first they proved (the account pages keep this rule from now on)."""
    proven: dict[str, list[str]] = {}
    bound = sa.select(factors.c.id, factors.c.user_id, factors.c.name).where(factors.c.kind == "email")
    for factor_id, user_id, name in connection.execute(bound.order_by(factors.c.created_at)).all():
        proven.setdefault(user_id, []).append(_canonical_or_kept(name))
        if proven[user_id][-1] != name:
            connection.execute(
                sa.update(factors).where(factors.c.id == factor_id).values(name=proven[user_id][-1])
            )
    for user_id, email in connection.execute(sa.select(users.c.id, users.c.email)).all():
        theirs = proven.get(user_id, [])
        canonical = None if email is None else _canonical_or_kept(email)
        chosen = theirs[0] if theirs and canonical not in theirs else canonical
        if chosen != email or theirs:
            connection.execute(
                sa.update(users)
                .where(users.c.id == user_id)
                .values(email=chosen, email_verified=bool(theirs))
            )


def _canonical_or_kept(address: str) -> str:
    try:
        return canonical_address(address)
    except AddressRejected:
        return address


def downgrade() -> None:
    with op.batch_alter_table("factors", schema=None) as batch_op:
        batch_op.drop_index("ix_factors_kind_name")
        batch_op.drop_column("last_step")
        batch_op.alter_column("name", existing_type=sa.String(length=320), type_=sa.String(length=100))
    op.drop_index("ix_users_email", table_name="users")
    op.drop_column("users", "email_verified")
