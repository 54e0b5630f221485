"""knowledge base: quarantine for flagged chunks; resolved tickets teach only what a person approved

Chunks the hygiene scan flags (hidden text, injected instructions, requests for secrets, bank details, foreign
links, spreadsheet formulas) carry a reason and stay out of the analysers until a lead approves them. Ticket
chunks indexed under the old rule (subject, description, customer replies, attachments) are removed, the ticket
cursor is reset and the index version moves, so the next index job rebuilds ticket evidence from approved
resolutions only and the Chroma/BM25 repairs drop the old vectors. Indexed documents go back to `pending`, so the
same job extracts and screens them again (unchanged chunks keep their vectors; only the scan is new).

Revision ID: 0006
Revises: 0005
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.core.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("kb_chunks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quarantine", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("approved_by", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("approved_at", engine.core.models.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("kb_documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quarantined_count", sa.Integer(), nullable=False, server_default=sa.text("0")))
    op.execute("DELETE FROM kb_chunks WHERE source_kind = 'ticket'")
    op.execute("UPDATE kb_documents SET status = 'pending' WHERE status = 'indexed'")
    op.execute("DELETE FROM source_cursors WHERE source IN ('kb:tickets', 'kb:index-version')")
    cursors = sa.table(
        "source_cursors",
        sa.column("source", sa.String()),
        sa.column("cursor", sa.Text()),
        sa.column("updated_at", engine.core.models.UTCDateTime(timezone=True)),
    )
    op.bulk_insert(
        cursors, [{"source": "kb:index-version", "cursor": uuid.uuid4().hex, "updated_at": engine.core.models.utcnow()}]
    )


def downgrade() -> None:
    with op.batch_alter_table("kb_documents", schema=None) as batch_op:
        batch_op.drop_column("quarantined_count")
    with op.batch_alter_table("kb_chunks", schema=None) as batch_op:
        batch_op.drop_column("approved_at")
        batch_op.drop_column("approved_by")
        batch_op.drop_column("quarantine")
