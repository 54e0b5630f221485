"""The auto-send what-if on the desk's own history: what each minimum confidence would have sent and how it went."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import ActionState, OutcomeState
from engine.core.models import utcnow
from engine.core.settings import Settings
from engine.outcomes.metrics import MetricsFilter
from engine.outcomes.threshold_history import (
    APPROVED,
    CONFIRMED,
    EDITED,
    REJECTED,
    REOPENED,
    UNKNOWN,
    threshold_history,
    verdict,
)
from tests.factories import proposed_resolution


def build_history(session: Session) -> None:
    """Ten analyses: right ones high, wrong ones in the middle, unknown and held ones around them."""
    proposed_resolution(session, confidence=0.97, outcome=OutcomeState.CONFIRMED, answer="yes")
    proposed_resolution(session, confidence=0.92, outcome=OutcomeState.DURABLE)
    proposed_resolution(session, confidence=0.88, decided_by="operator:ann")
    proposed_resolution(session, confidence=0.81, outcome=OutcomeState.ASSUMED)
    proposed_resolution(session, confidence=0.77, decided_by="operator:ann", edited=True)
    proposed_resolution(session, confidence=0.72, state=ActionState.REJECTED, decided_by="operator:ann")
    proposed_resolution(session, confidence=0.66, outcome=OutcomeState.REOPENED, answer="no")
    proposed_resolution(session, confidence=0.61, state=ActionState.AWAITING_APPROVAL)
    proposed_resolution(session, confidence=0.99, guards=("payment change",), state=ActionState.AWAITING_APPROVAL)
    proposed_resolution(session, confidence=0.95, decision="escalate", state=None)
    session.commit()


def window() -> MetricsFilter:
    now = utcnow()
    return MetricsFilter(start=now - timedelta(days=1), end=now + timedelta(days=1))


def test_each_minimum_counts_what_it_would_have_sent_and_how_that_went(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory() as session:
        build_history(session)
        history = threshold_history(session, settings, window())
    assert (history.analysed, history.eligible, history.current) == (10, 8, settings.AUTO_SEND_MIN_CONFIDENCE)
    rows = {row["minimum confidence"]: row for row in history.rows}
    assert list(rows) == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    assert [row["minimum confidence"] for row in history.rows if row["current setting"]] == [0.75]
    assert rows[0.85] == {
        "minimum confidence": 0.85,
        "current setting": False,
        "sent automatically": 3,
        APPROVED: 1,
        EDITED: 0,
        REJECTED: 0,
        CONFIRMED: 2,
        REOPENED: 0,
        UNKNOWN: 0,
        "right when known": 1.0,
        "coverage": 0.3,
    }
    low = rows[0.6]
    assert (low["sent automatically"], low[EDITED], low[REJECTED], low[REOPENED], low[UNKNOWN]) == (8, 1, 1, 1, 2)
    assert low["right when known"] == 0.5 and low["coverage"] == 0.8
    assert rows[0.95]["sent automatically"] == 1, "a guard holds a draft at any minimum"


def test_the_range_and_sources_choose_the_history(session_factory: sessionmaker[Session], settings: Settings) -> None:
    with session_factory() as session:
        proposed_resolution(session, confidence=0.9, source="jira", outcome=OutcomeState.REOPENED)
        proposed_resolution(session, confidence=0.9, source="imap", outcome=OutcomeState.CONFIRMED)
        session.commit()
        jira = threshold_history(session, settings, MetricsFilter(window().start, window().end, ("jira",)))
        past = threshold_history(
            session, settings, MetricsFilter(utcnow() - timedelta(days=9), utcnow() - timedelta(days=8))
        )
    assert jira.analysed == 1 and jira.rows[0][REOPENED] == 1 and jira.rows[0]["right when known"] == 0.0
    assert past.analysed == 0 and past.rows[0]["right when known"] is None and past.rows[0]["coverage"] is None


def test_a_person_who_changed_the_draft_outweighs_the_customer() -> None:
    assert verdict(ActionState.EXECUTED, 2, "operator:ann", OutcomeState.CONFIRMED, "yes") == EDITED
    assert verdict(ActionState.EXECUTED, 1, "operator:ann", OutcomeState.REOPENED, "no") == REOPENED
    assert verdict(ActionState.EXECUTED, 1, "engine", OutcomeState.PENDING, None) == UNKNOWN
    assert verdict(ActionState.VOIDED, 1, None, None, None) == UNKNOWN
    assert verdict(None, None, None, None, None) == UNKNOWN
