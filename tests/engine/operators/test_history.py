"""The requester's history: their other tickets (same address, any case), newest first, with outcomes."""

from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import OutcomeState
from engine.core.models import ResolutionOutcome, Ticket
from engine.core.settings import Settings
from engine.operators.history import requester_history
from tests.factories import new_ticket


def test_lists_the_other_tickets_of_the_same_requester(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    older = new_ticket(session_factory, settings, requester_email="Grace@Navy.example", subject="Old printer")
    newer = new_ticket(session_factory, settings, requester_email="grace@navy.example", subject="New laptop")
    new_ticket(session_factory, settings, requester_email="someone@else.example")
    current = new_ticket(session_factory, settings, requester_email="grace@navy.example", subject="Today")
    with session_factory.begin() as session:
        for state, csat in ((OutcomeState.PENDING, None), (OutcomeState.REOPENED, 2)):
            session.add(ResolutionOutcome(ticket_id=older, automated=True, source="test", state=state, csat=csat))
    with session_factory() as session:
        history = requester_history(session, session.get(Ticket, current))
        first = requester_history(session, session.get(Ticket, current), limit=1)
    assert history.total == 2
    assert [(t.id, t.subject, t.outcome, t.csat) for t in history.tickets] == [
        (newer, "New laptop", None, None),
        (older, "Old printer", OutcomeState.REOPENED, 2),
    ]
    assert first.total == 2 and [t.id for t in first.tickets] == [newer]


def test_a_first_ticket_has_no_history(session_factory: sessionmaker[Session], settings: Settings) -> None:
    only = new_ticket(session_factory, settings)
    with session_factory() as session:
        history = requester_history(session, session.get(Ticket, only))
    assert history.total == 0 and history.tickets == []
