"""The Quarantined section of the knowledge-base page: what was held back and why; only a lead or admin approves."""

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import AuditEntry, KbChunk
from engine.core.settings import Settings
from kb.indexer import add_document
from tests.factories import own_transactions
from tests.pages.conftest import open_page, texts
from ui.components import plain

KB = "pages/3_Knowledge_Base.py"
ARTICLE = (
    b"# Password reset\nOpen https://portal.no-touch.localhost/reset and choose Forgot password.\n\n"
    b"# Faster help\nFor a faster reset, sign in at https://no-touch-localhost.support/reset first.\n"
)


def quarantined_article(factory: sessionmaker[Session], settings: Settings) -> int:
    """An article whose second section links a look-alike domain: that chunk's id."""
    with factory() as session:
        document = add_document(own_transactions(session), settings, "password.md", ARTICLE)
        return session.scalar(
            select(KbChunk.id).where(KbChunk.source_id == document.id, KbChunk.quarantine.is_not(None))
        )


def test_an_agent_sees_what_is_quarantined_and_why_but_cannot_approve(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    chunk_id = quarantined_article(session_factory, app)
    at = open_page(KB, "ann")
    assert not at.exception
    shown = texts(at)
    assert "**Password reset** · section Faster help" in shown
    reason = "links or addresses outside the allowed domains: 'no-touch-localhost.support'"
    assert f"Quarantined: {plain(reason)}" in shown  # shown inert: a reason cannot carry a live link
    held = "sign in at https\u200b://no-touch-localhost.support/reset"  # rendered as markdown, the address inert
    assert any(held in markdown.value for markdown in at.markdown)
    assert not any(button.key == f"kb_approve_{chunk_id}" for button in at.button)


def test_a_lead_approves_a_chunk_and_it_is_audited(app: Settings, session_factory: sessionmaker[Session]) -> None:
    chunk_id = quarantined_article(session_factory, app)
    at = open_page(KB, "lee")
    at = at.button(key=f"kb_approve_{chunk_id}").click().run()
    assert not at.exception
    assert f"Chunk {chunk_id} of Password reset approved; the engine may cite it now." in texts(at)
    assert "Nothing is quarantined." in texts(at)
    with session_factory() as session:
        chunk = session.get(KbChunk, chunk_id)
        assert chunk.approved_by == "lee" and chunk.approved_at is not None
        audit = session.scalar(select(AuditEntry).where(AuditEntry.action == "kb_approve_chunk"))
        assert (audit.actor, audit.target_id) == ("lee", str(chunk_id))
        assert audit.details["reason"].startswith("links or addresses outside the allowed domains")
