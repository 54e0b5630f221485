import threading
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.analysis import AnalysisResult, TicketSnapshot
from engine.core.desk_policy import DeskPolicy, save_policy
from engine.core.enums import ActionState, TicketStatus
from engine.core.models import Action, Analysis, OutboxMessage, Ticket, utcnow
from engine.core.settings import Settings
from engine.intake.ingest import ingest
from engine.pipeline import AnalysisPool, claim_pending_tickets, process_pending
from tests.factories import Proposes, email_in, new_ticket
from tests.waiting import wait_until


def test_escalation_acknowledges_and_routes_the_ticket_to_a_team(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = new_ticket(session_factory, settings)
    report = process_pending(session_factory, settings, Proposes(decision="escalate"), worker="w1")
    assert (report.claimed, report.processed) == (1, 1)
    assert process_pending(session_factory, settings, Proposes(decision="escalate"), worker="w1").claimed == 0
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket.status == TicketStatus.ESCALATED
        assert ticket.team == settings.DEFAULT_TEAM
        [action] = session.scalars(select(Action)).all()
        assert (action.kind, action.state, action.reason) == ("escalate", "executed", "test")
        [analysis] = session.scalars(select(Analysis)).all()
        assert analysis.analyser == "fixed"
        [ack] = session.scalars(select(OutboxMessage)).all()
        assert (ack.kind, ack.dedupe_key) == ("acknowledgement", f"ack:{ticket_id}")
        assert [e.type for e in ticket.timeline] == [
            "received",
            "email_queued",
            "status_changed",
            "analysed",
            "status_changed",
        ]


def test_a_claimed_ticket_is_not_claimed_again_until_its_lease_expires(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    new_ticket(session_factory, settings)
    assert len(claim_pending_tickets(session_factory, settings, worker="a")) == 1
    assert claim_pending_tickets(session_factory, settings, worker="b") == []
    settings.CLAIM_LEASE_SECONDS = 0.001
    with session_factory.begin() as session:
        session.scalar(select(Ticket)).claim_expires = session.scalar(select(Ticket)).created_at
    [claim] = claim_pending_tickets(session_factory, settings, worker="b")
    with session_factory() as session:
        ticket = session.get(Ticket, claim.ticket_id)
        assert ticket.claimed_by == "b"
        assert "claim_expired" in [e.type for e in ticket.timeline]
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_low_confidence_draft_waits_for_approval(session_factory: sessionmaker[Session], settings: Settings) -> None:
    settings.AUTOPILOT_ENABLED = True
    ticket_id = new_ticket(session_factory, settings)
    process_pending(session_factory, settings, Proposes(confidence=0.4), worker="w")
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        action = session.scalar(select(Action))
        assert ticket.status == TicketStatus.AWAITING_APPROVAL
        assert action.state == ActionState.AWAITING_APPROVAL
        assert action.policy["reasons"] == ["confidence 0.40 below 0.75"]
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_an_analysis_that_hit_an_error_never_goes_out_on_its_own(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings.AUTOPILOT_ENABLED = True
    new_ticket(session_factory, settings)
    process_pending(session_factory, settings, Proposes(error="knowledge base unavailable: ConnectError"), worker="w")
    with session_factory() as session:
        action = session.scalar(select(Action))
        assert action.state == ActionState.AWAITING_APPROVAL
        assert action.policy["reasons"] == ["analysis incomplete: knowledge base unavailable: ConnectError"]
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_confident_resolution_with_autopilot_goes_out(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings.AUTOPILOT_ENABLED = True
    ticket_id = new_ticket(session_factory, settings)
    process_pending(session_factory, settings, Proposes(), worker="w")
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket.status == TicketStatus.RESOLVED
        assert ticket.resolution == "1. Restart the VPN client."
        kinds = session.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id)).all()
        assert kinds == ["acknowledgement", "resolution"]


def test_reply_during_analysis_is_analysed_again(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id = new_ticket(session_factory, settings)
    analyser = Proposes()

    class ReplyArrivesMeanwhile:
        name = "slow"

        def analyse(self, ticket: TicketSnapshot, policy: DeskPolicy | None = None) -> AnalysisResult:
            with session_factory.begin() as session:
                reply = email_in(
                    requester_email=ticket.email, subject=f"Re: {ticket.reference}", body="also: error 0x80070005"
                )
                ingest(session, reply, settings)
            return analyser.analyse(ticket, policy)

    process_pending(session_factory, settings, ReplyArrivesMeanwhile(), worker="w")
    process_pending(session_factory, settings, analyser, worker="w")
    assert [snapshot.replies for snapshot in analyser.seen] == [(), ("also: error 0x80070005",)]
    with session_factory() as session:
        drafts = session.scalars(select(Action.state).where(Action.ticket_id == ticket_id).order_by(Action.id)).all()
        assert drafts == [ActionState.VOIDED, ActionState.AWAITING_APPROVAL]


def test_automatic_mail_gets_no_acknowledgement_and_goes_to_triage(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = new_ticket(session_factory, settings, headers={"Precedence": "bulk"}, subject="Weekly newsletter")
    process_pending(session_factory, settings, Proposes(), worker="w")
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert (ticket.status, ticket.team) == (TicketStatus.ESCALATED, "Triage")
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_one_ticket_is_analysed_and_judged_under_the_policy_its_claim_read(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """A lead saving a new policy while a ticket is being analysed changes the next ticket, not this one."""
    with session_factory.begin() as session:
        save_policy(session, DeskPolicy(autopilot={"*:*": True}, auto_send_min_confidence=0.5), actor="lee")
    ticket_id = new_ticket(session_factory, settings)
    analyser = Proposes()

    class PolicyChangesMeanwhile:
        name = "slow"
        seen: list[DeskPolicy | None] = []

        def analyse(self, ticket: TicketSnapshot, policy: DeskPolicy | None = None) -> AnalysisResult:
            self.seen.append(policy)
            with session_factory.begin() as session:
                save_policy(session, DeskPolicy(autopilot={"*:*": False}), actor="lee")
            return analyser.analyse(ticket, policy)

    changing = PolicyChangesMeanwhile()
    process_pending(session_factory, settings, changing, worker="w")
    assert changing.seen[0] is not None and changing.seen[0].autopilot == {"*:*": True}
    with session_factory() as session:
        assert session.get(Ticket, ticket_id).status == TicketStatus.RESOLVED
        assert session.scalar(select(Action)).state == ActionState.EXECUTED


def test_analyser_crash_escalates_with_the_reason(session_factory: sessionmaker[Session], settings: Settings) -> None:
    class Broken:
        name = "broken"

        def analyse(self, ticket: TicketSnapshot, policy: DeskPolicy | None = None) -> AnalysisResult:
            raise RuntimeError("model returned nonsense")

    ticket_id = new_ticket(session_factory, settings)
    report = process_pending(session_factory, settings, Broken(), worker="w")
    assert (report.processed, report.failed) == (1, 1)
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket.status == TicketStatus.ESCALATED
        assert "analysis failed: RuntimeError: model returned nonsense" in ticket.timeline[-1].title


def test_mail_from_a_no_reply_sender_is_never_answered(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings.AUTOPILOT_ENABLED = True
    ticket_id = new_ticket(session_factory, settings, requester_email="no-reply@shop.example")
    process_pending(session_factory, settings, Proposes(decision="ask"), worker="w")
    with session_factory() as session:
        assert session.scalars(select(OutboxMessage)).all() == []
        assert session.get(Ticket, ticket_id).status == TicketStatus.ESCALATED


class Gated:
    """An analyser double that holds the analysis of the tickets named in `held` until `gate` is set."""

    name = "gated"

    def __init__(self, *held: str) -> None:
        self.held = set(held)
        self.gate = threading.Event()
        self.waiting: set[str] = set()

    def analyse(self, ticket: TicketSnapshot, policy: DeskPolicy | None = None) -> AnalysisResult:
        if ticket.subject in self.held:
            self.waiting.add(ticket.subject)
            self.gate.wait(timeout=300)
        return Proposes(decision="escalate").analyse(ticket, policy)


def analyses_of(factory: sessionmaker[Session], ticket_id: int) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Analysis).where(Analysis.ticket_id == ticket_id)) or 0


def test_each_ticket_commits_when_its_own_analysis_ends_and_the_next_run_claims_more(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    slow = new_ticket(session_factory, settings, subject="slow one")
    quick = [new_ticket(session_factory, settings, subject=f"quick {n}") for n in range(3)]
    analyser = Gated("slow one")
    pool = AnalysisPool(session_factory, threads=4, waiting=50)
    assert process_pending(session_factory, settings, analyser, worker="w", pool=pool).claimed == 4
    wait_until(lambda: all(analyses_of(session_factory, t) == 1 for t in quick), timeout=120, what="the quick ones")
    later = new_ticket(session_factory, settings, subject="arrived later")
    report = process_pending(session_factory, settings, analyser, worker="w", pool=pool)
    assert (report.claimed, report.processed, report.in_flight) == (1, 3, 2)
    wait_until(lambda: analyses_of(session_factory, later) == 1, timeout=120, what="the later ticket")
    assert analyses_of(session_factory, slow) == 0 and pool.tickets() == {slow}
    analyser.gate.set()
    assert pool.wait_idle(timeout=120)
    assert analyses_of(session_factory, slow) == 1
    pool.close()


def slow_analysis_under_way(
    session_factory: sessionmaker[Session], settings: Settings
) -> tuple[int, Gated, AnalysisPool]:
    """A ticket whose analysis has started in a pool and waits at the gate: (ticket id, analyser, pool)."""
    ticket_id = new_ticket(session_factory, settings, subject="slow one")
    analyser = Gated("slow one")
    pool = AnalysisPool(session_factory, threads=2, waiting=50)
    process_pending(session_factory, settings, analyser, worker="w", pool=pool)
    wait_until(lambda: analyser.waiting == {"slow one"}, timeout=60, what="the analysis to start")
    return ticket_id, analyser, pool


def test_a_ticket_the_pool_holds_is_not_claimed_again_when_its_lease_runs_out(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id, analyser, pool = slow_analysis_under_way(session_factory, settings)
    with session_factory.begin() as session:
        session.get(Ticket, ticket_id).claim_expires = utcnow() - timedelta(seconds=1)
    assert process_pending(session_factory, settings, analyser, worker="w", pool=pool).claimed == 0
    analyser.gate.set()
    assert pool.wait_idle(timeout=120)
    assert analyses_of(session_factory, ticket_id) == 1
    pool.close()


def test_a_stopping_pool_gives_its_claims_back_and_a_late_analysis_is_discarded(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id, analyser, pool = slow_analysis_under_way(session_factory, settings)
    assert pool.stop(grace=0.1) == 1
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert (ticket.claim_token, ticket.status) == (None, TicketStatus.ANALYZING)
        assert ticket.pending_since is not None
        assert "claim_released" in [event.type for event in ticket.timeline]
    assert process_pending(session_factory, settings, analyser, worker="w", pool=pool).claimed == 0  # stopped
    analyser.gate.set()
    assert pool.wait_idle(timeout=120)
    assert analyses_of(session_factory, ticket_id) == 0
    assert process_pending(session_factory, settings, Proposes(decision="escalate"), worker="w").processed == 1
    with session_factory() as session:
        assert "analysis_discarded" in [event.type for event in session.get(Ticket, ticket_id).timeline]
    assert analyses_of(session_factory, ticket_id) == 1
