"""learned_answers, learned_questions, answer_records, answer_reviews: answers the desk learned from its people

An answer a person approved, edited or wrote (or an automatic one its requester confirmed) is kept with the questions
it answered, and every answer (learned or a knowledge-base section) keeps a track record of what people and
customers did with it (engine/outcomes/learned.py).

Revision ID: 0016
Revises: 0015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.core.models

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def _when(name: str, nullable: bool) -> sa.Column:
    return sa.Column(name, engine.core.models.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "learned_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=True),
        sa.Column("action_id", sa.Integer(), nullable=True),
        sa.Column("origin", sa.String(length=20), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=True),
        sa.Column("particulars", JSON, nullable=False),
        sa.Column("general_by", sa.String(length=100), nullable=True),
        _when("general_at", True),
        sa.Column("published_document_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        _when("created_at", False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_learned_answers_ticket_id_tickets"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["action_id"], ["actions.id"], name=op.f("fk_learned_answers_action_id_actions"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learned_answers")),
    )
    op.create_index(op.f("ix_learned_answers_ticket_id"), "learned_answers", ["ticket_id"], unique=False)
    op.create_table(
        "learned_questions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("learned_answer_id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("question", sa.Text(), nullable=True),
        sa.Column("vector", JSON, nullable=True),
        _when("created_at", False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_learned_questions_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["learned_answer_id"],
            ["learned_answers.id"],
            name=op.f("fk_learned_questions_learned_answer_id_learned_answers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_learned_questions")),
        sa.UniqueConstraint("learned_answer_id", "ticket_id", name=op.f("uq_learned_questions_learned_answer_id")),
    )
    op.create_index(
        op.f("ix_learned_questions_learned_answer_id"), "learned_questions", ["learned_answer_id"], unique=False
    )
    op.create_table(
        "answer_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        *[
            sa.Column(name, sa.Integer(), nullable=False)
            for name in ("approved", "edited", "rejected", "confirmed", "assumed", "reopened")
        ],
        _when("updated_at", False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_answer_records")),
        sa.UniqueConstraint("subject", "category", name=op.f("uq_answer_records_subject")),
    )
    op.create_index(op.f("ix_answer_records_subject"), "answer_records", ["subject"], unique=False)
    op.create_table(
        "answer_reviews",
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("reviewed_by", sa.String(length=100), nullable=False),
        _when("reviewed_at", False),
        sa.Column("reopened_at_review", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_answer_reviews")),
    )


def downgrade() -> None:
    op.drop_table("answer_reviews")
    op.drop_index(op.f("ix_answer_records_subject"), table_name="answer_records")
    op.drop_table("answer_records")
    op.drop_index(op.f("ix_learned_questions_learned_answer_id"), table_name="learned_questions")
    op.drop_table("learned_questions")
    op.drop_index(op.f("ix_learned_answers_ticket_id"), table_name="learned_answers")
    op.drop_table("learned_answers")
