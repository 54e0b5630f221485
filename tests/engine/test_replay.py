"""The replay: real desk, simulated person and customer; what it counts and what the person's actions leave behind."""

import shutil
import socket
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.core.db import make_engine, make_session_factory
from engine.core.enums import OutboxState
from engine.core.models import AuditEntry, KbChunk, OutboxMessage, ResolutionOutcome, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.replay import CONFIRMATION, CaseResult, replay, summary, windows
from tests.factories import replay_case

ARTICLES = Path(__file__).resolve().parent.parent.parent / "connectors" / "demo_data" / "kb"
KB = ("invite-users-northwind-cloud.md", "reset-password.md", "export-reports-northwind-cloud.md", "vpn-setup.md")
PERSON = {"approved", "edited", "wrote", "escalated", None}


def test_summary_counts_unanswerable_answers_precision_and_the_person() -> None:
    results = [
        CaseResult(replay_case("a", "How do I invite users?", "resolve", "invite"), True, True, None),
        CaseResult(replay_case("b", "What is for lunch?", "escalate"), True, False, "escalated", reanswered=1),
        CaseResult(replay_case("c", "How do I export?", "resolve", "export"), False, None, "edited"),
        CaseResult(replay_case("d", "How do I print?", "resolve", "printer"), False, None, "wrote"),
    ] * 30
    total = summary(results)
    assert (total["cases"], total["automatic"], total["right"]) == (120, 60, 30)
    assert (total["precision"], total["coverage"], total["unanswerable_automatic"]) == (0.5, 0.5, 30)
    assert total["person"] == {"approved": 0, "edited": 30, "wrote": 30, "escalated": 30}
    assert total["reanswered_after_did_not_help"] == 30
    assert [(label, part["cases"]) for label, part in windows(results)] == [("1-100", 100), ("101-120", 20)]


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_replay_through_the_real_desk(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    knowledge = tmp_path / "kb"
    knowledge.mkdir()
    for name in KB:
        shutil.copy(ARTICLES / name, knowledge / name)
    settings.AUTO_SEND_MIN_CONFIDENCE = 0.0
    cases = [
        replay_case("invite", "How do I invite new users to our Northwind Cloud workspace?", "resolve", "invite-users"),
        replay_case("password", "How do I reset my password?", "resolve", "reset-password"),
        replay_case("export", "How do I export a report as a CSV file?", "escalate"),
        replay_case("lunch", "What is on the lunch menu on Friday?", "escalate"),
        replay_case(
            "outage",
            "The whole office lost the network, nothing works.",
            "resolve",
            "network-status",
            category="outage",
            answer="The network is back since 10:40; please restart your laptop.",
        ),
        replay_case("password-again", "I forgot my password, how do I reset it?", "resolve", "reset-password"),
    ]
    connections: list[object] = []
    real_connect = socket.socket.connect

    def watched_connect(self: socket.socket, address: object) -> None:
        connections.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", watched_connect)
    results = replay(cases, settings, [knowledge])

    rows = [result.as_json() for result in results]
    assert [row["id"] for row in rows] == [case.id for case in cases]
    for row in rows:
        assert set(row) == {"id", "automatic", "right", "person", "why"}
        assert isinstance(row["right"], bool) if row["automatic"] else row["right"] is None
        assert row["person"] in PERSON
        assert row["why"]["decision"] in ("resolve", "ask", "escalate") and row["why"]["reason"]
    by_id = {row["id"]: {key: value for key, value in row.items() if key != "why"} for row in rows}
    assert by_id["password"] == {"id": "password", "automatic": False, "right": None, "person": "approved"}, (
        "a password reset is held for a person at any threshold; the draft cites the right article"
    )
    assert any("social engineering" in held for held in rows[1]["why"]["held"]), "the replay says what held it"
    assert by_id["lunch"]["automatic"] is False and by_id["lunch"]["person"] == "escalated"
    assert by_id["outage"] == {"id": "outage", "automatic": False, "right": None, "person": "wrote"}
    assert by_id["export"]["automatic"] is True and by_id["export"]["right"] is False
    assert summary(results)["unanswerable_automatic"] == sum(
        row["automatic"] and case.expected_action != "resolve" for row, case in zip(rows, cases, strict=True)
    )
    assert summary(results)["unanswerable_automatic"] >= 1

    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    with factory() as session:
        tickets = {ticket.external_id: ticket for ticket in session.scalars(select(Ticket))}
        approved = tickets["case-2"]
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "approve_draft")).all()
        assert any(entry.actor == "replay-operator" and entry.details["ticket"] == approved.id for entry in audit)
        events = session.scalars(select(TimelineEvent.type).where(TimelineEvent.ticket_id == approved.id)).all()
        assert "approved" in events
        written = tickets["case-5"]
        assert session.scalar(
            select(AuditEntry).where(AuditEntry.action == "manual_reply", AuditEntry.target_id == str(written.id))
        )
        assert written.status == "Resolved"
        verdicts = {
            outcome.ticket_id: outcome.answer
            for outcome in session.scalars(select(ResolutionOutcome).where(ResolutionOutcome.automated.is_(True)))
        }
        assert verdicts.get(tickets["case-3"].id) == "no", "the customer re-opened the wrong automatic answer"
        for number, row in enumerate(rows, 1):
            if row["right"]:
                assert verdicts.get(tickets[f"case-{number}"].id) == "yes", CONFIRMATION
        taught = session.scalars(select(KbChunk.source_id).where(KbChunk.source_kind == "ticket")).all()
        assert approved.id in taught, "the approved resolution teaches the knowledge base (the index job ran)"
        messages = session.scalars(select(OutboxMessage)).all()
        assert messages and {message.state for message in messages} == {OutboxState.SENT}
        assert {message.transport for message in messages} == {"database"}
    engine.dispose()
    internet = [
        address for address in connections if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1")
    ]
    assert internet == [], "nothing leaves the machine"
