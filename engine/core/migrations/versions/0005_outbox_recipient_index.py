"""outbox: index the mail-loop guard's per-recipient count on lower(to_address), created_at

The guard counts a recipient's automated messages of the last hour before every automated send. The old index
on the raw address could not serve `lower(to_address) = ...`, so each count scanned the whole outbox: 170 ms at
44,000 rows in the 50,000-ticket load run (bench/load.py), growing with every message sent.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_outbox_recipient_created", "outbox", [sa.text("lower(to_address)"), "created_at"])
    op.drop_index("ix_outbox_to_created", table_name="outbox")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ANALYZE outbox")  # statistics for the new expression, so the planner uses it at once


def downgrade() -> None:
    op.create_index("ix_outbox_to_created", "outbox", ["to_address", "created_at"])
    op.drop_index("ix_outbox_recipient_created", table_name="outbox")
