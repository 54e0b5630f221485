"""Full-text search over a ticket's words (subject, description, requester, every message, internal notes), done by the
database itself: PostgreSQL `tsvector` columns with GIN indexes, SQLite one FTS5 table kept in sync by triggers.

Migration 0018 builds both; the models do not map these columns and tables (the database fills them), so schema
comparisons skip the names in `DATABASE_MAINTAINED`.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, column, exists, func, literal_column, or_, select, table
from sqlalchemy.orm import Session

from engine.core.db import is_postgres
from engine.core.models import Ticket

SEARCH_COLUMN = "search_text"
"""The generated `tsvector` column on tickets, email_interactions and ticket_notes (PostgreSQL)."""
FTS_TABLE = "ticket_text"
"""The FTS5 table holding every searchable text with its ticket (SQLite)."""
DATABASE_MAINTAINED = frozenset(
    {
        SEARCH_COLUMN,
        FTS_TABLE,
        *(f"{FTS_TABLE}_{part}" for part in ("data", "idx", "content", "docsize", "config")),
        *(f"ix_{table}_{SEARCH_COLUMN}" for table in ("tickets", "email_interactions", "ticket_notes")),
    }
)
"""Columns, tables (FTS5's shadow tables included) and indexes the database maintains for search."""
WORD = re.compile(r"\w+", re.UNICODE)
MAX_WORDS = 16
MAX_TEXT = 500


def mapped_by_models(_object: Any, name: str | None, _type: str, reflected: bool, _compare_to: Any) -> bool:
    """Alembic's `include_object`: the search machinery belongs to the database, not to the models."""
    return not (reflected and name in DATABASE_MAINTAINED)


def search_words(text: str) -> list[str]:
    """The words of what a person typed, each searched as a word (operators and quotes are not syntax)."""
    return WORD.findall(text)[:MAX_WORDS]


def ticket_ids_matching(session: Session, text: str) -> ColumnElement[bool] | None:
    """A condition on a ticket row: its own text, one of its messages or one of its notes holds every word of `text`.

    None when `text` has no words (punctuation only), so the caller filters on nothing.
    """
    words = search_words(text)
    if not words:
        return None
    if is_postgres(session):
        # plainto_tsquery reads any text as plain words (no operators), and keeps an address as one token. Each
        # ticket is tested on its own row (EXISTS, not IN over every match), so the newest page of a word found in
        # every ticket stops at its first 50 tickets instead of collecting 100,000 ids first.
        query = func.plainto_tsquery("english", text[:MAX_TEXT])
        return or_(
            literal_column(f"{Ticket.__tablename__}.{SEARCH_COLUMN}").op("@@")(query),
            *(
                exists().where(searched.c.ticket_id == Ticket.id, searched.c[SEARCH_COLUMN].op("@@")(query))
                for searched in (
                    table("email_interactions", column("ticket_id"), column(SEARCH_COLUMN)),
                    table("ticket_notes", column("ticket_id"), column(SEARCH_COLUMN)),
                )
            ),
        )
    phrase = " ".join('"' + word.replace('"', '""') + '"' for word in words)
    searched = table(FTS_TABLE, column("ticket_id"))
    return Ticket.id.in_(select(searched.c.ticket_id).where(literal_column(FTS_TABLE).op("MATCH")(phrase)))
