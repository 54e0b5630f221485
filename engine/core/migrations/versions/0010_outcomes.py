"""outcomes: what became of each resolution e-mail (customer answer, CSAT, confirmed/assumed/reopened/durable)

Revision ID: 0010
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.core.models

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "resolution_outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=True),
        sa.Column("automated", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=50), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("resolved_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state_changed_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("answer", sa.String(length=10), nullable=True),
        sa.Column("answered_via", sa.String(length=10), nullable=True),
        sa.Column("answered_at", engine.core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("csat", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["action_id"], ["actions.id"], name=op.f("fk_resolution_outcomes_action_id_actions"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_resolution_outcomes_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resolution_outcomes")),
    )
    op.create_index(op.f("ix_resolution_outcomes_ticket_id"), "resolution_outcomes", ["ticket_id"], unique=False)
    op.create_index(
        "ix_resolution_outcomes_state_resolved", "resolution_outcomes", ["state", "resolved_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_resolution_outcomes_state_resolved", table_name="resolution_outcomes")
    op.drop_index(op.f("ix_resolution_outcomes_ticket_id"), table_name="resolution_outcomes")
    op.drop_table("resolution_outcomes")
