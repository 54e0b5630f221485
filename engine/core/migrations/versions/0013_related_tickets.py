"""tickets: related_ticket_id, the ticket a stranger's message claimed to continue; ticket knowledge re-derived

A message that names a ticket (`TCKT-n`, In-Reply-To/References, conversation id) threads onto it only when its
sender is the requester or a participant; anything else becomes its own ticket, linked here. Resolved tickets
teach only through a resolution a person wrote or approved now, so the ticket cursor of the index job starts
over: its next run drops what automatic resolutions the customer confirmed had taught.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("related_ticket_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_tickets_related_ticket_id"), ["related_ticket_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_tickets_related_ticket_id_tickets"),
            "tickets",
            ["related_ticket_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.execute("DELETE FROM source_cursors WHERE source = 'kb:tickets'")


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tickets_related_ticket_id_tickets"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_tickets_related_ticket_id"))
        batch_op.drop_column("related_ticket_id")
