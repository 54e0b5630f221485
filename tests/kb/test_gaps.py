import warnings
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import OutcomeState
from engine.core.models import ResolutionOutcome, utcnow
from kb.gaps import knowledge_gaps
from tests.factories import analysed_ticket

VPN = ["VPN certificate expired on my laptop", "VPN says certificate expired", "certificate expired error in VPN"]
INVOICE = ["Invoice PDF is missing the VAT number", "Where is the VAT number on my invoice", "invoice VAT wrong"]


def test_weak_unanswered_and_reopened_tickets_group_into_labelled_topics(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        for subject in VPN * 2:
            analysed_ticket(session, subject, confidence=0.0, evidence=False)
        for subject in INVOICE:
            analysed_ticket(session, subject, confidence=0.3, evidence=True)
        reopened = analysed_ticket(session, INVOICE[0], confidence=0.9, evidence=True)
        session.add(
            ResolutionOutcome(
                ticket_id=reopened, automated=True, source="test", category="billing", state=OutcomeState.REOPENED
            )
        )
        for _ in range(5):
            analysed_ticket(session, "How do I change my password", confidence=0.95, evidence=True)
    with session_factory() as session:
        gaps = knowledge_gaps(session, utcnow() - timedelta(days=1), max_topics=2)
    assert [gap.tickets for gap in gaps] == [6, 4]
    assert "vpn" in gaps[0].label.lower() or "certificate" in gaps[0].label.lower()
    assert "invoice" in gaps[1].label.lower() or "vat" in gaps[1].label.lower()
    assert gaps[1].reopened == 1 and len(gaps[1].examples) == 3
    assert all("password" not in example for gap in gaps for example in gap.examples)


def test_no_gaps_without_weak_answers(session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        analysed_ticket(session, "How do I change my password", confidence=0.95, evidence=True)
    with session_factory() as session:
        assert knowledge_gaps(session, utcnow() - timedelta(days=1)) == []


def test_a_flood_of_one_alert_is_one_topic_without_a_warning(session_factory: sessionmaker[Session]) -> None:
    """Forty tickets that read alike, beside three that differ: no more topics than the vectors tell apart (K-means
    asked for more would warn in the server's log and leave clusters empty)."""
    with session_factory.begin() as session:
        for _ in range(40):
            analysed_ticket(session, "ALERT disk full on host-1", confidence=0.0, evidence=False)
        for subject in VPN:
            analysed_ticket(session, subject, confidence=0.0, evidence=False)
    with session_factory() as session, warnings.catch_warnings():
        warnings.simplefilter("error")
        gaps = knowledge_gaps(session, utcnow() - timedelta(days=1))
    assert sum(gap.tickets for gap in gaps) == 43
    assert gaps[0].tickets == 40 and "disk full" in gaps[0].label.lower()
