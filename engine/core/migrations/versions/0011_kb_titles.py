"""knowledge base: documents are titled by their own heading, not their file name

Indexed documents go back to `pending`, so the next index job extracts them again and stores the title from the
document's heading (kb/titles.py). Their chunks are unchanged, so they keep their vectors: nothing is re-embedded.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("UPDATE kb_documents SET status = 'pending' WHERE status = 'indexed'")


def downgrade() -> None:
    """The heading titles stay: they are better names under the old code too."""
