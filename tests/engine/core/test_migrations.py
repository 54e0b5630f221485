import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from engine.core.db import MIGRATIONS, newest_revision, schema_is_current, upgrade_database
from engine.core.fulltext import mapped_by_models
from engine.core.models import Base, JSONType, UTCDateTime, utcnow


def test_migrations_build_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "include_object": mapped_by_models}
        )
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrade_is_idempotent(engine: Engine) -> None:
    upgrade_database(engine)
    upgrade_database(engine)
    assert {"tickets", "timelines", "outbox", "actions", "audit_log"} <= set(inspect(engine).get_table_names())


def test_the_newest_revision_read_off_the_file_names_is_alembics_head() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert newest_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_a_start_skips_alembic_only_when_the_schema_is_current(engine: Engine) -> None:
    """`engine` is migrated to the newest revision; one step back, a start must migrate again."""
    assert schema_is_current(engine)
    previous = f"{int(newest_revision()) - 1:04d}"
    _migrate(engine, previous)
    assert not schema_is_current(engine)
    upgrade_database(engine)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == newest_revision()
    assert schema_is_current(engine)


def test_an_empty_database_is_not_current() -> None:
    empty = sa.create_engine("sqlite://")
    assert not schema_is_current(empty)
    upgrade_database(empty)
    assert schema_is_current(empty)


def _migrate(engine: Engine, revision: str) -> None:
    """Move the schema to `revision`, up or down, as `upgrade_database` does."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        current = MigrationContext.configure(connection).get_current_revision() or ""
        (command.upgrade if revision == "head" or revision > current else command.downgrade)(config, revision)


def test_0006_drops_ticket_evidence_and_makes_the_index_rebuild(engine: Engine) -> None:
    """Ticket chunks indexed under the old rule (customer text) go; KB chunks stay, their documents wait to be
    screened; the index job starts over."""
    _migrate(engine, "0005")
    chunks = sa.table(
        "kb_chunks",
        sa.column("source_kind", sa.String()),
        sa.column("source_id", sa.Integer()),
        sa.column("chunk_index", sa.Integer()),
        sa.column("text", sa.Text()),
        sa.column("location", JSONType),
        sa.column("content_hash", sa.String()),
        sa.column("created_at", UTCDateTime()),
    )
    cursors = sa.table(
        "source_cursors", sa.column("source", sa.String()), sa.column("cursor", sa.Text()), sa.column("updated_at")
    )
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            chunks.insert(),
            [
                {
                    "source_kind": kind,
                    "source_id": 1,
                    "chunk_index": 0,
                    "text": text,
                    "location": {},
                    "content_hash": kind,
                    "created_at": now,
                }
                for kind, text in (("ticket", "1. Open https://portal-login.example"), ("kb", "Restart the router"))
            ],
        )
        connection.execute(
            sa.text(
                "INSERT INTO kb_documents (filename, size, status, chunk_count, created_at, updated_at) "
                "VALUES ('router.md', 1, 'indexed', 1, :now, :now), ('bad.pdf', 1, 'corrupt', 0, :now, :now)"
            ).bindparams(sa.bindparam("now", now, type_=UTCDateTime())),
        )
        connection.execute(cursors.delete())
        connection.execute(
            cursors.insert(),
            [
                {"source": "kb:tickets", "cursor": "2026-01-01T00:00:00+00:00", "updated_at": now},
                {"source": "kb:index-version", "cursor": "old-token", "updated_at": now},
                {"source": "imap", "cursor": "42", "updated_at": now},
            ],
        )
    _migrate(engine, "head")
    with engine.connect() as connection:
        remaining = connection.execute(sa.text("SELECT source_kind, quarantine, approved_by FROM kb_chunks")).all()
        cursor_rows = dict(connection.execute(sa.text("SELECT source, cursor FROM source_cursors")).all())
        documents = connection.execute(
            sa.text("SELECT filename, status, quarantined_count FROM kb_documents ORDER BY filename")
        ).all()
    assert [tuple(row) for row in remaining] == [("kb", None, None)]
    assert "kb:tickets" not in cursor_rows and cursor_rows["imap"] == "42"
    assert cursor_rows["kb:index-version"] not in ("", "old-token")
    assert [tuple(row) for row in documents] == [("bad.pdf", "corrupt", 0), ("router.md", "pending", 0)]


def test_0011_makes_indexed_documents_take_their_heading_as_title(engine: Engine) -> None:
    _migrate(engine, "0010")
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO kb_documents (filename, size, status, title, chunk_count, created_at, updated_at) "
                "VALUES ('vpn-setup.md', 1, 'indexed', 'vpn-setup', 1, :now, :now), "
                "('bad.pdf', 1, 'corrupt', 'bad', 0, :now, :now)"
            ).bindparams(sa.bindparam("now", now, type_=UTCDateTime())),
        )
    _migrate(engine, "head")
    with engine.connect() as connection:
        documents = connection.execute(sa.text("SELECT filename, status FROM kb_documents ORDER BY filename")).all()
    assert [tuple(row) for row in documents] == [("bad.pdf", "corrupt"), ("vpn-setup.md", "pending")]


def test_0013_links_tickets_and_makes_ticket_knowledge_derived_again(engine: Engine) -> None:
    """Knowledge the old rule taught from customer-confirmed automatic resolutions goes at the next index run."""
    _migrate(engine, "0011")
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO source_cursors (source, cursor, updated_at) "
                "VALUES ('kb:tickets', '2024-01-01T00:00:00+00:00', :now), ('email', '42', :now)"
            ).bindparams(sa.bindparam("now", now, type_=UTCDateTime())),
        )
    _migrate(engine, "head")
    with engine.connect() as connection:
        cursors = set(connection.execute(sa.text("SELECT source FROM source_cursors")).scalars())
    assert "email" in cursors and "kb:tickets" not in cursors
    assert "related_ticket_id" in {column["name"] for column in inspect(engine).get_columns("tickets")}
    _migrate(engine, "0011")
    assert "related_ticket_id" not in {column["name"] for column in inspect(engine).get_columns("tickets")}
    _migrate(engine, "head")  # the PostgreSQL database is shared by the whole run


def test_0015_keeps_operators_drops_the_lock_out_and_adds_sessions(engine: Engine) -> None:
    """A locked-out operator keeps the account and loses the lock: failures now only delay, per name and client."""
    _migrate(engine, "0014")
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO operators (username, display_name, role, password_hash, is_active, failed_logins, "
                "locked_until, created_at) VALUES ('ada', 'Ada', 'admin', 'x', true, 4, :now, :now)"
            ).bindparams(sa.bindparam("now", now, type_=UTCDateTime())),
        )
    _migrate(engine, "head")
    columns = {column["name"] for column in inspect(engine).get_columns("operators")}
    assert "failed_logins" not in columns and "locked_until" not in columns and "sessions_ended_at" in columns
    assert {"operator_sessions", "sign_in_throttles"} <= set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT username, role FROM operators")).all() == [("ada", "admin")]
    _migrate(engine, "0014")
    assert "operator_sessions" not in set(inspect(engine).get_table_names())
    assert "failed_logins" in {column["name"] for column in inspect(engine).get_columns("operators")}
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM operators"))
    _migrate(engine, "head")  # the PostgreSQL database is shared by the whole run
