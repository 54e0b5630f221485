"""Tickets in the states the pages show: an escalation and a draft's escalation score (a draft awaiting approval,
with evidence, is `tests.factories.drafted`)."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import Escalation
from engine.core.settings import Settings
from engine.pipeline import process_pending
from tests.factories import Proposes, new_ticket


def escalated(factory: sessionmaker[Session], settings: Settings, **fields: object) -> int:
    """A ticket the engine sent to a person."""
    ticket_id = new_ticket(factory, settings, **fields)
    process_pending(factory, settings, Proposes(decision="escalate"), worker="seed")
    return ticket_id


def scored(factory: sessionmaker[Session], ticket_id: int) -> None:
    """The escalation breakdown the analyser will write: two weighted components under the threshold."""
    with factory.begin() as session:
        session.add(
            Escalation(
                ticket_id=ticket_id,
                criteria={"system_impact": "one user", "estimated_hours": "under an hour"},
                components={
                    "system_impact": {"score": 20.0, "weight": 0.15, "weighted": 3.0},
                    "estimated_hours": {"score": 40.0, "weight": 0.20, "weighted": 8.0},
                },
                weighted_score=11.0,
                threshold=70.0,
                escalate=False,
                reasons=["small, single-user problem"],
            )
        )
