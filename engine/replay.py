"""Replay: labelled tickets in file order through the real desk, with a simulated person and customer.

    python -m engine.evaluate replay CASES.jsonl --kb DIR [DIR ...] [--json OUT]

Each case (`subject`, `body`, `expected_action`, `expected_evidence`, `answer`: what a person would send) is
ingested as an e-mail, analysed and decided by `process_pending`, delivered by the outbox job into the database
(nothing leaves the machine), and then:

- an automatic answer is right when it cites an expected document, or a learned answer taught by a case with
  an expected document in common; the simulated customer replies "thanks" to a right one and "this did not help"
  to a wrong one (both read by the real reply classifier), and a re-opened ticket goes back through the engine;
- a person acts through engine/operators/actions.py on what is left: a drafted answer is approved as it is when
  right, otherwise its text is replaced by `answer` and approved (an edit); with no draft the person writes
  `answer` and marks the ticket resolved; for a case that expects a question back the person approves the engine's
  question (nothing to do when the engine asked on its own); any other case that expects no answer is escalated.

After each case the engine's knowledge job runs (what resolved tickets teach, recalibration when the knowledge
base changed enough) and the outcome job, on a clock that moves MINUTES_PER_CASE simulated minutes per case.
Autopilot is on for the replayed source; every other policy value is the desk's default.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from tqdm import tqdm

from connectors.base import MailTransport, TicketIn
from engine.core.analysis import Analyser
from engine.core.db import make_engine, make_session_factory, transaction, upgrade_database
from engine.core.desk_policy import current_policy, save_policy
from engine.core.enums import ActionKind, ActionState, Role, TicketStatus
from engine.core.models import Action, Analysis, LearnedAnswer, Ticket, utcnow
from engine.core.settings import Settings, get_settings, load_settings
from engine.delivery.outbox import deliver_outbox, make_transport
from engine.evaluate import Case, build_scratch_knowledge, load_cases, names_expected
from engine.intake.ingest import ingest
from engine.jobs import calibrate_knowledge_if_changed, index_knowledge
from engine.operators.actions import approve_draft, edit_draft, override_decision, send_manual_reply, set_status
from engine.operators.permissions import Actor
from engine.outcomes.learned import LEARNED
from engine.outcomes.outcomes import advance_outcomes
from engine.outcomes.teaching import TICKET_KIND
from engine.pipeline import process_pending
from engine.runtime import build_analyser

Person = Literal["approved", "edited", "wrote", "escalated"]
SOURCE = "replay"
CUSTOMER_DOMAIN = "customers.example"
OPERATOR = Actor("replay-operator", Role.AGENT)
CONFIRMATION = "Thanks, that solved it."
DID_NOT_HELP = "This did not help, the problem is still there."
MINUTES_PER_CASE = 10
WINDOW = 100
MAX_REOPENS = 2
"""After this many re-opened automatic answers on one ticket, the customer's next "did not help" goes to the person
without another engine turn."""


def teaching_ticket(session: Session, citation: dict[str, Any]) -> int | None:
    """The ticket whose person-given answer a cited passage is, or None when the passage is an article.

    A learned answer (engine/outcomes/learned.py) is cited by its own id and names the ticket that first taught it;
    a resolved ticket in the knowledge index (source kind `ticket`) is cited by the ticket's id.
    """
    kind = citation.get("source_kind")
    if kind == LEARNED:
        answer = session.get(LearnedAnswer, int(citation["source_id"]))
        return answer.ticket_id if answer is not None else None
    if kind == TICKET_KIND:
        ticket = session.get(Ticket, int(citation["source_id"]))
        return ticket.id if ticket is not None else None
    return None


@dataclass
class CaseResult:
    case: Case
    automatic: bool
    """The desk sent an answer on its own, before any person touched the ticket."""
    right: bool | None
    person: Person | None
    reanswered: int = 0
    """Automatic answers sent again after the customer said the first did not help."""
    why: dict[str, Any] | None = None
    """The engine's first turn: its decision, confidence and reason, and what held its action for a person."""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.case.id,
            "automatic": self.automatic,
            "right": self.right,
            "person": self.person,
            "why": self.why,
        }


class Replay:
    """One scratch desk and the cases replayed on it so far: which ticket each case became, to judge learned answers."""

    def __init__(
        self, factory: sessionmaker[Session], settings: Settings, analyser: Analyser, transport: MailTransport
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.analyser = analyser
        self.transport = transport
        self.cases_by_ticket: dict[int, Case] = {}
        self.started = utcnow()
        with transaction(factory) as session:
            policy = current_policy(session, settings)
            policy.autopilot[f"{SOURCE}:*"] = True
            save_policy(session, policy, actor=OPERATOR.username)

    def run(self, cases: Iterable[Case]) -> list[CaseResult]:
        return [self.replay_case(number, case) for number, case in enumerate(cases, 1)]

    def replay_case(self, number: int, case: Case) -> CaseResult:
        if case.expected_action == "resolve" and not case.answer.strip():
            raise ValueError(f"case {case.id} expects a resolution but has no `answer` for the person to send")
        address = f"case-{number}@{CUSTOMER_DOMAIN}"
        with transaction(self.factory) as session:
            item = TicketIn(
                source=SOURCE,
                kind="email",
                external_id=f"case-{number}",
                requester_email=address,
                subject=case.subject or case.body[:80],
                body=case.body,
                category=None if case.category == "uncategorised" else case.category,
                message_id=f"<case-{number}@{CUSTOMER_DOMAIN}>",
            )
            ticket_id = ingest_item(session, item, self.settings)
        self.cases_by_ticket[ticket_id] = case
        answer = self._engine_turn(ticket_id)
        result = CaseResult(case, automatic=answer is not None, right=None, person=None, why=self.why(ticket_id))
        confirmed = False
        if answer is not None:
            result.right = self.is_right(case, answer)
        for turn in range(1, MAX_REOPENS + 2):
            if answer is None:
                break
            confirmed = self.is_right(case, answer)
            self._customer_replies(ticket_id, number, turn, CONFIRMATION if confirmed else DID_NOT_HELP)
            if confirmed or turn > MAX_REOPENS:
                break
            answer = self._engine_turn(ticket_id)
            result.reanswered += answer is not None
        if not confirmed:
            result.person = self._person_acts(ticket_id, case)
        deliver_outbox(self.factory, self.settings, self.transport)
        index_knowledge(self.factory, self.settings)
        calibrate_knowledge_if_changed(self.factory, self.settings)
        advance_outcomes(self.factory, self.settings, now=self._clock(number))
        return result

    def _clock(self, number: int) -> datetime:
        return self.started + timedelta(minutes=MINUTES_PER_CASE * number)

    def _engine_turn(self, ticket_id: int) -> list[dict[str, Any]] | None:
        """Analyse and deliver; the evidence cited by the answer the engine sent on its own, if it sent one."""
        with self.factory() as session:
            before = session.scalar(select(Action.id).order_by(Action.id.desc()).limit(1)) or 0
        process_pending(self.factory, self.settings, self.analyser, worker=SOURCE)
        deliver_outbox(self.factory, self.settings, self.transport)
        with self.factory() as session:
            sent = session.scalar(
                select(Action).where(
                    Action.ticket_id == ticket_id,
                    Action.id > before,
                    Action.kind == ActionKind.PROPOSE_RESOLUTION,
                    Action.state == ActionState.EXECUTED,
                    Action.decided_by == "engine",
                )
            )
            return cited(session, sent) if sent is not None else None

    def why(self, ticket_id: int) -> dict[str, Any] | None:
        """What the engine decided on the ticket's first turn and what held its first action (bench/replay.py's
        per-case JSON: the reason a case did not go out on its own)."""
        with self.factory() as session:
            analysis = session.scalar(
                select(Analysis).where(Analysis.ticket_id == ticket_id).order_by(Analysis.id).limit(1)
            )
            action = session.scalar(select(Action).where(Action.ticket_id == ticket_id).order_by(Action.id).limit(1))
            if analysis is None:
                return None
            top = analysis.evidence[0] if analysis.evidence else {}
            return {
                "decision": analysis.decision,
                "confidence": analysis.confidence,
                "reason": action.reason if action is not None else analysis.summary,
                "top": top.get("title"),
                "top_kind": top.get("source_kind"),
                "held": (action.policy or {}).get("reasons") if action is not None else None,
            }

    def _customer_replies(self, ticket_id: int, number: int, turn: int, body: str) -> None:
        with transaction(self.factory) as session:
            ticket = session.get(Ticket, ticket_id)
            item = TicketIn(
                source=SOURCE,
                kind="email",
                external_id=f"case-{number}-reply-{turn}",
                requester_email=ticket.email,
                subject=f"Re: Resolution Proposed: {ticket.reference}",
                body=body,
                message_id=f"<case-{number}-reply-{turn}@{CUSTOMER_DOMAIN}>",
            )
            ingest_item(session, item, self.settings)

    def is_right(self, case: Case, citations: list[dict[str, Any]]) -> bool:
        with self.factory() as session:
            return self.right_in(session, case, citations)

    def right_in(self, session: Session, case: Case, citations: list[dict[str, Any]]) -> bool:
        """An answer is right for a case that expects one when it cites an expected document or a learned answer
        taught by a case with an expected document in common; with no documents named, by the label alone.

        Read in the caller's `session`: on SQLite a second session would wait for the write lock the person's
        transaction holds (every transaction begins IMMEDIATE) until it fails as "database is locked"."""
        if case.expected_action != "resolve":
            return False
        if not case.expected_evidence:
            return True
        expected = set(case.expected_evidence)
        for citation in citations:
            taught = teaching_ticket(session, citation)
            if taught is None:
                if names_expected(f"{citation.get('title', '')} {citation.get('document', '')}", expected):
                    return True
            elif (teacher := self.cases_by_ticket.get(taught)) and expected & set(teacher.expected_evidence):
                return True
        return False

    def _person_acts(self, ticket_id: int, case: Case) -> Person | None:
        with transaction(self.factory) as session:
            ticket = session.get(Ticket, ticket_id)
            draft = session.scalar(
                select(Action)
                .where(Action.ticket_id == ticket_id, Action.state == ActionState.AWAITING_APPROVAL)
                .order_by(Action.id.desc())
                .limit(1)
            )
            kind = ActionKind(draft.kind) if draft is not None else None
            if case.expected_action == "resolve":
                if kind is ActionKind.PROPOSE_RESOLUTION:
                    if self.right_in(session, case, cited(session, draft)):
                        approve_draft(session, self.settings, OPERATOR, draft.id, draft.version)
                        return "approved"
                    edited = edit_draft(
                        session, OPERATOR, draft.id, draft.version, subject=draft.subject or "", body=case.answer
                    )
                    approve_draft(session, self.settings, OPERATOR, draft.id, edited.version)
                    return "edited"
                send_manual_reply(
                    session, self.settings, OPERATOR, ticket.id, subject=f"Re: {ticket.subject}", body=case.answer
                )
                if ticket.status != TicketStatus.RESOLVED:
                    set_status(session, OPERATOR, ticket.id, TicketStatus.RESOLVED, reason="answered by hand")
                return "wrote"
            if case.expected_action == "ask" and kind is ActionKind.REQUEST_INFO:
                approve_draft(session, self.settings, OPERATOR, draft.id, draft.version)
                return "approved"
            if case.expected_action == "ask" and ticket.status == TicketStatus.AWAITING_CUSTOMER:
                return None  # the engine asked on its own, as the case expects: nothing for a person to do
            if ticket.status != TicketStatus.ESCALATED:
                override_decision(
                    session, self.settings, OPERATOR, ticket.id, "escalate", reason="not for the desk to answer"
                )
            return "escalated"


def ingest_item(session: Session, item: TicketIn, settings: Settings) -> int:
    """Ingest one e-mail; the ticket it became or continued."""
    found = ingest(session, item, settings).ticket_id
    if found is None:
        raise LookupError(f"{item.external_id} was not recorded on any ticket")
    return found


def cited(session: Session, action: Action) -> list[dict[str, Any]]:
    """The evidence a draft or answer cites, from the analysis that made it."""
    analysis = session.get(Analysis, action.analysis_id) if action.analysis_id else None
    return [item for item in (analysis.evidence if analysis else []) if item.get("cited")]


def summary(results: list[CaseResult]) -> dict[str, Any]:
    """Automatic answers, their precision, coverage (share of all cases answered automatically), unanswerable cases
    answered automatically, and what the person did."""
    automatic = [result for result in results if result.automatic]
    right = sum(bool(result.right) for result in automatic)
    persons = Counter(result.person for result in results if result.person)
    return {
        "cases": len(results),
        "automatic": len(automatic),
        "right": right,
        "precision": round(right / len(automatic), 4) if automatic else None,
        "coverage": round(len(automatic) / len(results), 4) if results else None,
        "unanswerable_automatic": sum(result.case.expected_action != "resolve" for result in automatic),
        "reanswered_after_did_not_help": sum(result.reanswered for result in results),
        "person": {name: persons[name] for name in ("approved", "edited", "wrote", "escalated")},
    }


def windows(results: list[CaseResult], size: int = WINDOW) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{start + 1}-{min(start + size, len(results))}", summary(results[start : start + size]))
        for start in range(0, len(results), size)
    ]


def print_summary(results: list[CaseResult]) -> None:
    header = (
        f"{'cases':>10}{'automatic':>11}{'precision':>11}{'coverage':>10}{'unanswerable':>14}"
        f"{'approved':>10}{'edited':>8}{'wrote':>7}{'escalated':>11}{'re-answered':>13}"
    )
    print(header)
    for label, part in [*windows(results), ("total", summary(results))]:
        person = part["person"]
        precision = "—" if part["precision"] is None else f"{part['precision']:.3f}"
        print(
            f"{label:>10}{part['automatic']:>11}{precision:>11}{part['coverage']:>10.3f}"
            f"{part['unanswerable_automatic']:>14}{person['approved']:>10}{person['edited']:>8}{person['wrote']:>7}"
            f"{person['escalated']:>11}{part['reanswered_after_did_not_help']:>13}"
        )
    print(
        "unanswerable: cases expecting no answer that were answered automatically; re-answered: automatic answers "
        "sent again after the customer said the previous one did not help"
    )


def replay(cases: list[Case], settings: Settings, knowledge: list[Path]) -> list[CaseResult]:
    """Build and calibrate the knowledge base of `knowledge` in the (scratch) desk of `settings`, then replay."""
    build_scratch_knowledge(settings, knowledge)
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    factory = make_session_factory(engine)
    try:
        desk = Replay(factory, settings, build_analyser(settings, factory), make_transport(settings))
        return desk.run(tqdm(cases, desc="replaying", unit="ticket", file=sys.stderr, disable=None))
    finally:
        engine.dispose()


def scratch_settings(settings: Settings, folder: Path) -> Settings:
    """`settings` on a scratch database and vector store in `folder`, delivering into the database only."""
    return load_settings(
        **{
            **settings.model_dump(),
            "DATA_DIR": folder,
            "DATABASE_URL": "",
            "CHROMA_HOST": "",
            "OUTBOX_TRANSPORT": "database",
            "ENGINE_ENABLED": False,
            # the replay indexes and calibrates its knowledge base before the first case, and no connector adds
            # articles to it: there is nothing to wait for (the demo feed's own articles would never arrive)
            "KB_READY_WAIT_SECONDS": 0,
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m engine.evaluate replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("cases", type=Path, help="JSONL or CSV cases, replayed in file order")
    parser.add_argument("--kb", type=Path, nargs="+", required=True, help="knowledge-base files or folders")
    parser.add_argument("--json", type=Path, help="write one object per case here (id, automatic, right, person)")
    args = parser.parse_args(argv)
    cases = load_cases(args.cases)
    with tempfile.TemporaryDirectory() as scratch:
        results = replay(cases, scratch_settings(get_settings(), Path(scratch)), args.kb)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([result.as_json() for result in results], indent=1), encoding="utf-8")
    print(f"replay of {args.cases}: {len(results)} cases, windows of {WINDOW}")
    print_summary(results)
    return 0
