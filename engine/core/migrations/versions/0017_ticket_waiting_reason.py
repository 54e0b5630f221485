"""tickets.waiting_reason: why a queued ticket waits before its analysis, in people's words

A fresh desk analysed its first tickets before its knowledge base was indexed and calibrated and escalated them
for "no evidence". Such tickets now wait in the queue (engine/readiness.py), and the ticket and the queue say why.

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("waiting_reason", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_column("waiting_reason")
