"""desk policy

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 21:43:05.645653
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.core.models
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desk_policy",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "policy", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("changed_by", sa.String(length=120), nullable=False),
        sa.Column("changed_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_desk_policy")),
    )


def downgrade() -> None:
    op.drop_table("desk_policy")
