from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import Action, utcnow
from engine.core.settings import Settings
from engine.outcomes.metrics import MetricsFilter, escalation_reasons, reason_group
from engine.pipeline import process_pending
from tests.factories import Proposes, new_ticket


def test_reasons_that_differ_only_in_their_figures_are_one_group() -> None:
    assert reason_group("no strong evidence (confidence 0.42)") == "no strong evidence"
    assert reason_group("no strong evidence (confidence 0.31)") == "no strong evidence"
    assert reason_group("category security") == "category security"
    assert reason_group(None) == reason_group("") == "(none given)"


def test_escalation_reasons_count_each_group_once(session_factory: sessionmaker[Session], settings: Settings) -> None:
    for _ in range(3):
        new_ticket(session_factory, settings)
    process_pending(session_factory, settings, Proposes(decision="escalate"), worker="w")
    with session_factory.begin() as session:
        for number, action_id in enumerate(session.scalars(Action.__table__.select().with_only_columns(Action.id))):
            reason = "category security" if number == 0 else f"no strong evidence (confidence 0.{number}1)"
            session.execute(update(Action).where(Action.id == action_id).values(reason=reason))
    now = utcnow()
    with session_factory() as session:
        rows = escalation_reasons(session, MetricsFilter(start=now - timedelta(days=1), end=now + timedelta(days=1)))
    assert rows == [{"reason": "no strong evidence", "tickets": 2}, {"reason": "category security", "tickets": 1}]
