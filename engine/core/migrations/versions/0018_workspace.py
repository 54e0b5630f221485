"""The operators' workspace: full-text search, assignment to a person, teams, internal notes, canned replies,
presence, notifications, merged and linked tickets, tags

Search is the database's own: on PostgreSQL a generated `tsvector` column with a GIN index on tickets (subject,
description, requester's name and address), email_interactions (subject and body) and ticket_notes (body); on SQLite one FTS5 table,
`ticket_text`, filled from the same texts by triggers (rowid = source row id × 4 + 0 ticket, 1 message, 2 note).
Existing rows are indexed here; a ticket someone took over is assigned to them. A later migration that rebuilds one of these tables on SQLite (batch mode's
"move and copy") must create its triggers again.

Revision ID: 0018
Revises: 0017
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import engine.core.models

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT_LIMIT = 200_000
"""Characters of one text that are searchable: a tsvector holds at most 1 MB."""
SEARCHED = {
    # table: (its searched columns, the ticket it belongs to, rowid offset in the FTS5 table)
    "tickets": (("subject", "description", "requester_name", "email"), "id", 0),
    "email_interactions": (("subject", "body"), "ticket_id", 1),
    "ticket_notes": (("body",), "ticket_id", 2),
}


def _text(row: str, columns: tuple[str, ...]) -> str:
    """The SQL of one row's searchable text (`row` "": the table's own row): its columns joined by spaces."""
    prefix = f"{row}." if row else ""
    return " || ' ' || ".join(f"coalesce({prefix}{column}, '')" for column in columns)


def _tables() -> None:
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("assignee", sa.String(length=120), nullable=True))
        batch_op.create_index(batch_op.f("ix_tickets_assignee"), ["assignee"], unique=False)
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_tickets_merged_into_id"), ["merged_into_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_tickets_merged_into_id_tickets"), "tickets", ["merged_into_id"], ["id"], ondelete="SET NULL"
        )
    op.execute("UPDATE tickets SET assignee = taken_over_by WHERE taken_over_by IS NOT NULL")
    op.create_index("ix_tickets_email_lower", "tickets", [sa.text("lower(email)")], unique=False)
    with op.batch_alter_table("operators") as batch_op:
        batch_op.add_column(sa.Column("team", sa.String(length=100), nullable=True))
        batch_op.add_column(
            sa.Column("notifications_seen_at", engine.core.models.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "ticket_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("author", sa.String(length=120), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("mentions", engine.core.models.JSONType, nullable=False),
        sa.Column("created_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_notes_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_notes")),
    )
    op.create_index(op.f("ix_ticket_notes_ticket_id"), "ticket_notes", ["ticket_id"], unique=False)
    op.create_index(op.f("ix_ticket_notes_created_at"), "ticket_notes", ["created_at"], unique=False)
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("team", sa.String(length=100), nullable=True),
        sa.Column("source_ticket_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_ticket_id"],
            ["tickets.id"],
            name=op.f("fk_canned_replies_source_ticket_id_tickets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_replies")),
        sa.UniqueConstraint("title", name=op.f("uq_canned_replies_title")),
    )
    op.create_table(
        "ticket_presence",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=120), nullable=False),
        sa.Column("seen_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_presence_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", "username", name=op.f("pk_ticket_presence")),
    )
    op.create_index(op.f("ix_ticket_presence_seen_at"), "ticket_presence", ["seen_at"], unique=False)
    op.create_table(
        "ticket_tags",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_tags_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", "tag", name=op.f("pk_ticket_tags")),
    )
    op.create_index(op.f("ix_ticket_tags_tag"), "ticket_tags", ["tag"], unique=False)
    op.create_table(
        "ticket_links",
        sa.Column("ticket_id", sa.Integer(), nullable=False),
        sa.Column("linked_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("created_at", engine.core.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_links_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["linked_id"], ["tickets.id"], name=op.f("fk_ticket_links_linked_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", "linked_id", name=op.f("pk_ticket_links")),
    )
    op.create_index(op.f("ix_ticket_links_linked_id"), "ticket_links", ["linked_id"], unique=False)


def _postgres_search() -> None:
    for table, (columns, _, _) in SEARCHED.items():
        body = _text("", columns)
        op.execute(
            f"ALTER TABLE {table} ADD COLUMN search_text tsvector GENERATED ALWAYS AS "
            f"(to_tsvector('english'::regconfig, left({body}, {TEXT_LIMIT}))) STORED"
        )
        op.execute(f"CREATE INDEX ix_{table}_search_text ON {table} USING gin (search_text)")


def _sqlite_search() -> None:
    op.execute(
        "CREATE VIRTUAL TABLE ticket_text USING fts5(body, ticket_id UNINDEXED, "
        "tokenize = 'porter unicode61 remove_diacritics 2')"
    )
    for table, (columns, ticket, offset) in SEARCHED.items():
        # every name and number below is one of this migration's constants, never outside input
        insert = (
            "INSERT INTO ticket_text (rowid, body, ticket_id) VALUES "  # noqa: S608
            f"(new.id * 4 + {offset}, substr({_text('new', columns)}, 1, {TEXT_LIMIT}), new.{ticket});"
        )
        delete = f"DELETE FROM ticket_text WHERE rowid = old.id * 4 + {offset};"  # noqa: S608
        watched = ", ".join((*columns, ticket))
        op.execute(f"CREATE TRIGGER ticket_text_{table}_insert AFTER INSERT ON {table} BEGIN {insert} END")
        op.execute(
            f"CREATE TRIGGER ticket_text_{table}_update AFTER UPDATE OF {watched} ON {table} BEGIN {delete} {insert} END"
        )
        op.execute(f"CREATE TRIGGER ticket_text_{table}_delete AFTER DELETE ON {table} BEGIN {delete} END")
        op.execute(
            "INSERT INTO ticket_text (rowid, body, ticket_id) "  # noqa: S608
            f"SELECT id * 4 + {offset}, substr({_text(table, columns)}, 1, {TEXT_LIMIT}), {ticket} FROM {table}"
        )


def upgrade() -> None:
    _tables()
    if op.get_bind().dialect.name == "postgresql":
        _postgres_search()
    else:
        _sqlite_search()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in SEARCHED:
            op.execute(f"DROP INDEX ix_{table}_search_text")
            op.execute(f"ALTER TABLE {table} DROP COLUMN search_text")
    else:
        for table in SEARCHED:
            for event in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER ticket_text_{table}_{event}")
        op.execute("DROP TABLE ticket_text")
    op.drop_index(op.f("ix_ticket_links_linked_id"), table_name="ticket_links")
    op.drop_table("ticket_links")
    op.drop_index(op.f("ix_ticket_tags_tag"), table_name="ticket_tags")
    op.drop_table("ticket_tags")
    op.drop_index(op.f("ix_ticket_presence_seen_at"), table_name="ticket_presence")
    op.drop_table("ticket_presence")
    op.drop_table("canned_replies")
    op.drop_index(op.f("ix_ticket_notes_created_at"), table_name="ticket_notes")
    op.drop_index(op.f("ix_ticket_notes_ticket_id"), table_name="ticket_notes")
    op.drop_table("ticket_notes")
    with op.batch_alter_table("operators") as batch_op:
        batch_op.drop_column("notifications_seen_at")
        batch_op.drop_column("team")
    op.drop_index("ix_tickets_email_lower", table_name="tickets")
    with op.batch_alter_table("tickets") as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_tickets_merged_into_id_tickets"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_tickets_merged_into_id"))
        batch_op.drop_column("merged_into_id")
        batch_op.drop_index(batch_op.f("ix_tickets_assignee"))
        batch_op.drop_column("assignee")
