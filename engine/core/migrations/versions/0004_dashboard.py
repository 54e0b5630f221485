"""dashboard: when a person first touched a ticket (automation rate), indexes for the queue, metrics and audit

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.core.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("human_touched_at", engine.core.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_tickets_updated_at", ["updated_at"], unique=False)
        batch_op.create_index("ix_tickets_created_source", ["created_at", "source"], unique=False)
    op.execute(
        "UPDATE tickets SET human_touched_at = (SELECT min(timelines.timestamp) FROM timelines "
        "WHERE timelines.ticket_id = tickets.id AND timelines.actor LIKE 'operator:%')"
    )
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.create_index("ix_actions_decided_at", ["decided_at"], unique=False)
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_action_at", ["action", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_action_at")
    with op.batch_alter_table("actions", schema=None) as batch_op:
        batch_op.drop_index("ix_actions_decided_at")
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_created_source")
        batch_op.drop_index("ix_tickets_updated_at")
        batch_op.drop_column("human_touched_at")
