"""operator_sessions and sign_in_throttles: sessions the server can end, sign-in back-off that names no account

A signed cookie (user + expiry) could not be revoked: a copy kept working after sign-out and after a password
change. Each sign-in is now a row; the cookie carries a random token whose hash is the row's key, and ending the
row ends every copy. The per-account lock-out (`operators.failed_logins`, `locked_until`) told an existing account
from an unknown one and let anyone lock an admin out; failures are now counted per name typed, per client and
per trusted browser (`sign_in_throttles`) and only delay the next attempt. Cookies signed by earlier releases
are no longer read: everyone signs in once more.

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.core.models

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("operators") as batch_op:
        batch_op.drop_column("failed_logins")
        batch_op.drop_column("locked_until")
        batch_op.add_column(
            sa.Column("sessions_ended_at", engine.core.models.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "operator_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=True),
        sa.Column("handoff_hash", sa.String(length=64), nullable=True),
        sa.Column("handoff_expires_at", engine.core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("client_hint", sa.String(length=200), nullable=False),
        sa.Column("created_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", engine.core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_operator_sessions_operator_id_operators"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operator_sessions")),
        sa.UniqueConstraint("handoff_hash", name=op.f("uq_operator_sessions_handoff_hash")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_operator_sessions_token_hash")),
    )
    op.create_index(op.f("ix_operator_sessions_operator_id"), "operator_sessions", ["operator_id"], unique=False)
    op.create_index(op.f("ix_operator_sessions_expires_at"), "operator_sessions", ["expires_at"], unique=False)
    op.create_table(
        "sign_in_throttles",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sign_in_throttles")),
    )
    op.create_index(
        op.f("ix_sign_in_throttles_last_failure_at"), "sign_in_throttles", ["last_failure_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_sign_in_throttles_last_failure_at"), table_name="sign_in_throttles")
    op.drop_table("sign_in_throttles")
    op.drop_index(op.f("ix_operator_sessions_expires_at"), table_name="operator_sessions")
    op.drop_index(op.f("ix_operator_sessions_operator_id"), table_name="operator_sessions")
    op.drop_table("operator_sessions")
    with op.batch_alter_table("operators") as batch_op:
        batch_op.drop_column("sessions_ended_at")
        batch_op.add_column(sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("locked_until", engine.core.models.UTCDateTime(timezone=True), nullable=True))
