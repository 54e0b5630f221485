"""What the desk learned, on the pages: a cited answer's track record on the ticket, and on the Knowledge Base page
the learned answers, those waiting for a lead (particulars, re-opened) and the article drafts only a lead publishes."""

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import Role
from engine.core.models import Action, AuditEntry, Blob, KbDocument, LearnedAnswer
from engine.core.settings import Settings
from engine.operators.actions import approve_draft
from engine.operators.permissions import Actor
from engine.outcomes.learned import count, learned_subject
from tests.factories import answered_by_a_person, drafted
from tests.pages.conftest import open_page, texts

TICKET = "pages/2_Ticket.py"
KB = "pages/3_Knowledge_Base.py"
PARTICULAR = "Hello,\n\nI switched workspace ws_91fa3d to annual billing under Billing > Plan.\n\nKind regards,\nAnn"


def only_answer(factory: sessionmaker[Session]) -> LearnedAnswer:
    with factory() as session:
        return session.scalars(select(LearnedAnswer)).one()


def test_the_ticket_shows_the_track_record_of_the_answer_its_draft_cites(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    for _ in range(2):
        _, action_id = drafted(session_factory, app)
        with session_factory.begin() as session:
            approve_draft(session, app, Actor("ann", Role.AGENT), action_id, session.get(Action, action_id).version)
    ticket_id, _ = drafted(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    assert not at.exception
    assert "This answer (vpn\\.md): approved 2×, confirmed 0×, re-opened 0×" in texts(at)  # the title made inert


def test_an_agent_sees_a_learned_answer_waiting_for_a_lead_but_cannot_mark_it_general(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    answered_by_a_person(session_factory, app, answer=PARTICULAR)
    learned = only_answer(session_factory)
    at = open_page(KB, "ann")
    assert not at.exception
    shown = texts(at)
    assert f"**Learned answer {learned.id}** · waiting for a lead · approved 1×, confirmed 0×, re-opened 0×" in shown
    assert "It names the first customer's particulars (an account or workspace id)" in shown
    assert "How do I change the e-mail address our invoices are sent to?" not in shown  # not filled by an analysis yet
    assert at.button(key=f"learned_general_{learned.id}").disabled


def test_a_lead_rewrites_a_learned_answer_without_particulars_and_it_is_audited(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    answered_by_a_person(session_factory, app, answer=PARTICULAR)
    learned = only_answer(session_factory)
    at = open_page(KB, "lee")
    at.text_area(key=f"learned_text_{learned.id}").input("Switch a workspace to annual billing under Billing > Plan.")
    at = at.button(key=f"learned_general_{learned.id}").click().run()
    assert not at.exception
    assert f"Learned answer {learned.id} may now be given to other customers." in texts(at)
    learned = only_answer(session_factory)
    assert (learned.answer, learned.general_by) == ("Switch a workspace to annual billing under Billing > Plan.", "lee")
    with session_factory() as session:
        assert session.scalar(select(AuditEntry.actor).where(AuditEntry.action == "learned_mark_general")) == "lee"


def test_a_lead_restores_an_answer_customers_re_opened_twice(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    answered_by_a_person(session_factory, app)
    learned = only_answer(session_factory)
    with session_factory.begin() as session:
        for _ in range(2):
            count(session, [learned_subject(learned.id)], None, "reopened")
    at = open_page(KB, "lee")
    assert "Customers re-opened it 2×: it is not sent on its own." in texts(at)
    at = at.button(key=f"learned_restore_{learned.id}").click().run()
    assert not at.exception
    assert f"Learned answer {learned.id} may be sent on its own again." in texts(at)
    assert f"**Learned answer {learned.id}** · given again" in texts(at)


def test_an_article_draft_is_offered_after_repeated_approvals_and_a_lead_publishes_it(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    answered_by_a_person(session_factory, app)
    learned = only_answer(session_factory)
    with session_factory.begin() as session:
        count(session, [learned_subject(learned.id)], None, "approved")
    assert not any(button.key == f"learned_publish_{learned.id}" for button in open_page(KB, "lee").button)
    with session_factory.begin() as session:
        count(session, [learned_subject(learned.id)], None, "approved")
    assert open_page(KB, "ann").button(key=f"learned_publish_{learned.id}").disabled
    at = open_page(KB, "lee")
    at.text_input(key=f"learned_title_{learned.id}").input("Changing where invoices are sent")
    at.text_area(key=f"learned_q_{learned.id}_1").input("How do I change where invoices are e-mailed?")
    at = at.button(key=f"learned_publish_{learned.id}").click().run()
    assert not at.exception
    assert "Published as Changing where invoices are sent.md (indexed)." in texts(at)
    with session_factory() as session:
        document = session.scalars(select(KbDocument)).one()
        assert (document.title, document.uploaded_by) == ("Changing where invoices are sent", "lee")
        article = bytes(session.get(Blob, document.sha256).data).decode()
    assert "- How do I change where invoices are e-mailed?" in article, "the variant as the lead edited it"
    assert only_answer(session_factory).published_document_id == document.id


def test_a_lead_leaves_out_a_variant_and_one_still_naming_particulars_is_refused(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    answered_by_a_person(session_factory, app)
    learned = only_answer(session_factory)
    with session_factory.begin() as session:
        count(session, [learned_subject(learned.id)], None, "approved")
        count(session, [learned_subject(learned.id)], None, "approved")
    at = open_page(KB, "lee")
    at.text_area(key=f"learned_q_{learned.id}_1").input("Invoices for ap@client.example?")
    at = at.button(key=f"learned_publish_{learned.id}").click().run()
    assert "Not published: question 1 still names an e-mail address" in texts(at)
    at.checkbox(key=f"learned_keep_{learned.id}_1").uncheck()
    at = at.button(key=f"learned_publish_{learned.id}").click().run()
    with session_factory() as session:
        article = bytes(session.get(Blob, session.scalars(select(KbDocument)).one().sha256).data).decode()
    assert "Questions this answers" not in article and "ap@client.example" not in article
