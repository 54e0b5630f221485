"""outbox.cc_addresses and outbox.attachments: a person's reply may carry copies and files

The files' bytes live in `blobs`, as the attachments customers send do; the outbox row names them by sha256, so
the message, its copies and its files are written in one transaction and delivered exactly once together.

Revision ID: 0019
Revises: 0018
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.core.models

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        for name in ("cc_addresses", "attachments"):
            batch_op.add_column(
                sa.Column(name, engine.core.models.JSONType, nullable=False, server_default=sa.text("'[]'"))
            )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_column("attachments")
        batch_op.drop_column("cc_addresses")
