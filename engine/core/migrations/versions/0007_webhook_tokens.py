"""webhooks: Mailgun signature tokens in the database, stored with their event, instead of in process memory

An in-memory guard marked a token used before its event was stored, so an event refused with 500 (database
locked) was refused as replayed when Mailgun retried it, and a restart or a second worker forgot every token.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.core.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_tokens",
        sa.Column("token", sa.String(length=200), nullable=False),
        sa.Column("signed_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_webhook_tokens")),
    )
    op.create_index(op.f("ix_webhook_tokens_signed_at"), "webhook_tokens", ["signed_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_webhook_tokens_signed_at"), table_name="webhook_tokens")
    op.drop_table("webhook_tokens")
