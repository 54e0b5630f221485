"""What became of each resolution: the customer's answer (link or reply), CSAT, and the state time gives it.

pending → confirmed (the customer said yes) or assumed (no reply within OUTCOME_ASSUMED_HOURS) → durable (not
re-opened within OUTCOME_DURABLE_DAYS); reopened when the customer says no or writes back with a problem.
Automatic and human resolutions are kept apart, so the desk can tell a satisfied customer from one who gave up,
and a category whose automatic answers do not last loses its autopilot (`apply_durable_floor`).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.core.addresses import same_address
from engine.core.db import transaction
from engine.core.desk_policy import current_policy, save_policy
from engine.core.enums import OutcomeState, TicketStatus
from engine.core.lifecycle import transition
from engine.core.models import Action, Analysis, AuditEntry, ResolutionOutcome, Ticket, utcnow
from engine.core.settings import Settings
from engine.core.timeline import record_audit, record_event
from engine.outcomes.learned import outcome_verdict

log = logging.getLogger(__name__)
Answer = Literal["yes", "no"]
FINAL = frozenset({OutcomeState.REOPENED, OutcomeState.DURABLE})
OPEN = frozenset({OutcomeState.PENDING, OutcomeState.CONFIRMED, OutcomeState.ASSUMED})
MAX_COMMENT_CHARS = 2000
SWITCH_OFF = "autopilot_floor_switch_off"
"""The audit action of the floor switching a category's autopilot off."""
UNCLEAR_REPLY = "unclear"
"""`answered_via` of a reply the rules could not read: it waits for the LLM's reading when a model is configured."""
FLOOR_WINDOW_DAYS = 30
"""The durable rate behind the autopilot floor counts the automatic resolutions of 30 days, those old enough to
have settled (sent at least OUTCOME_DURABLE_DAYS ago)."""


def open_outcome(session: Session, ticket: Ticket, action: Action, *, automated: bool) -> ResolutionOutcome:
    """Start tracking a resolution that is being sent; any earlier open outcome of the ticket the customer did not
    confirm is superseded (a confirmed one, e.g. a reply the LLM read as solved later, keeps its verdict)."""
    for earlier in session.scalars(
        select(ResolutionOutcome).where(
            ResolutionOutcome.ticket_id == ticket.id,
            ResolutionOutcome.state.in_(list(OPEN)),
            or_(ResolutionOutcome.answer.is_(None), ResolutionOutcome.answer != "yes"),
        )
    ):
        _set_state(earlier, OutcomeState.REOPENED)
    confidence = session.scalar(select(Analysis.confidence).where(Analysis.id == action.analysis_id))
    outcome = ResolutionOutcome(
        ticket_id=ticket.id,
        action_id=action.id,
        automated=automated,
        source=ticket.source,
        category=ticket.category,
        confidence=confidence,
        state=OutcomeState.PENDING,
        resolved_at=utcnow(),
        state_changed_at=utcnow(),
    )
    session.add(outcome)
    session.flush()
    return outcome


def latest_outcome(session: Session, ticket_id: int) -> ResolutionOutcome | None:
    return session.scalar(
        select(ResolutionOutcome)
        .where(ResolutionOutcome.ticket_id == ticket_id)
        .order_by(ResolutionOutcome.id.desc())
        .limit(1)
    )


def _set_state(outcome: ResolutionOutcome, state: OutcomeState, now: datetime | None = None) -> None:
    outcome.state = state
    outcome.state_changed_at = now or utcnow()


def claim_answer(session: Session, outcome_id: int, answer: Answer, via: str) -> bool:
    """Mark the outcome answered, once: a conditional update, so two clicks (or two processes) cannot both win."""
    claimed = session.execute(
        update(ResolutionOutcome)
        .where(ResolutionOutcome.id == outcome_id, ResolutionOutcome.answered_at.is_(None))
        .values(answer=answer, answered_via=via, answered_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1


def record_link_answer(
    session: Session, outcome_id: int, answer: Answer, *, comment: str = "", csat: int | None = None
) -> bool:
    """The customer's click on a yes/no link; False when this resolution was answered already (nothing changes).

    "no" re-opens the ticket for a person (Escalated, action required) with the customer's comment on the timeline.
    """
    if csat is not None and not 1 <= csat <= 5:
        raise ValueError(f"a rating is 1 to 5, not {csat}")
    if not claim_answer(session, outcome_id, answer, "link"):
        return False
    outcome = session.get(ResolutionOutcome, outcome_id)
    ticket = session.get(Ticket, outcome.ticket_id) if outcome else None
    if outcome is None or ticket is None:
        return True
    session.refresh(outcome)
    outcome.csat = csat
    outcome.comment = comment.strip()[:MAX_COMMENT_CHARS] or None
    rating = f", rated {csat}/5" if csat else ""
    if answer == "yes":
        _confirm(session, ticket, outcome, f"Customer confirmed the resolution{rating}")
        return True
    record_event(
        session,
        ticket,
        "resolution_rejected",
        f"Customer says the resolution did not solve it{rating}"
        + (f": “{' '.join(outcome.comment.split())[:200]}”" if outcome.comment else ""),
        actor="customer",
        comment=outcome.comment or "",
    )
    if outcome.state in OPEN and outcome.id == latest_outcome(session, ticket.id).id:
        _set_state(outcome, OutcomeState.REOPENED)
        outcome_verdict(session, outcome, "reopened")
        reopen_for_a_person(session, ticket)
    return True


def _confirm(session: Session, ticket: Ticket, outcome: ResolutionOutcome, title: str) -> None:
    """The customer stands behind the resolution: a verdict for the metrics, the calibration and the track record of
    the answers it gave; an automatic one becomes a learned answer to the ticket's question (outcomes/learned.py).
    It never makes the resolution a knowledge-base passage: only what a person wrote or approved does
    (engine/outcomes/teaching.py)."""
    if outcome.state in (OutcomeState.PENDING, OutcomeState.ASSUMED):
        _set_state(outcome, OutcomeState.CONFIRMED)
        outcome_verdict(session, outcome, "confirmed")
    ticket.updated_at = utcnow()
    record_event(session, ticket, "resolution_confirmed", title, actor="customer")


def reopen_for_a_person(session: Session, ticket: Ticket) -> None:
    """A resolution the customer rejected goes to a person, not back to automation."""
    if ticket.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        transition(session, ticket, TicketStatus.NEW, actor="customer", reason="the customer says it is not solved")
    if ticket.status != TicketStatus.ESCALATED:
        transition(session, ticket, TicketStatus.ESCALATED, reason="re-opened by the customer: a person takes over")
    ticket.pending_since = None
    ticket.action_required = True


def record_reply_outcome(session: Session, ticket: Ticket, verdict: str, *, sender: str) -> bool:
    """A plain-text reply to a resolved ticket: True when it confirms (the ticket stays resolved), else the
    resolution counts as re-opened, against the answers it gave, the ticket never gets an automatic answer again, and
    the caller re-opens the ticket as for any reply. Only the requester's reply is
    a verdict: when `sender` is anyone else, nothing changes and the answer is False.

    An `unclear` reply is answered via UNCLEAR_REPLY, so the LLM job (engine/intake/llm_reply_classifier.py) can read it
    later for the metrics and the calibration; the ticket is re-opened all the same."""
    outcome = latest_outcome(session, ticket.id)
    if outcome is None or outcome.state not in OPEN or not same_address(sender, ticket.email):
        return False
    if verdict == "solved":
        claim_answer(session, outcome.id, "yes", "reply")
        session.refresh(outcome)
        _confirm(session, ticket, outcome, "Customer's reply confirms the resolution")
        return True
    claim_answer(session, outcome.id, "no", UNCLEAR_REPLY if verdict == "unclear" else "reply")
    session.refresh(outcome)
    _set_state(outcome, OutcomeState.REOPENED)
    outcome_verdict(session, outcome, "reopened")
    return False


@dataclass
class OutcomeReport:
    assumed: int = 0
    durable: int = 0
    autopilot_switched_off: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def advance_outcomes(
    factory: sessionmaker[Session], settings: Settings, *, now: datetime | None = None
) -> OutcomeReport:
    """The periodic job: silence past the window makes a resolution assumed, time without a re-open durable;
    then the autopilot floor. `now` is injectable so tests and the benchmark move the clock."""
    now = now or utcnow()
    report = OutcomeReport()
    assumed_before = now - timedelta(hours=settings.OUTCOME_ASSUMED_HOURS)
    durable_before = now - timedelta(days=settings.OUTCOME_DURABLE_DAYS)
    with transaction(factory) as session:
        for outcome in session.scalars(
            select(ResolutionOutcome).where(
                ResolutionOutcome.state.in_([OutcomeState.PENDING, OutcomeState.CONFIRMED, OutcomeState.ASSUMED]),
                ResolutionOutcome.resolved_at < assumed_before,
            )
        ):
            ticket = session.get(Ticket, outcome.ticket_id)
            if outcome.resolved_at < durable_before:
                _set_state(outcome, OutcomeState.DURABLE, now)
                report.durable += 1
                if ticket is not None:
                    record_event(session, ticket, "resolution_outcome", "Resolution durable: not re-opened in time")
            elif outcome.state == OutcomeState.PENDING:
                _set_state(outcome, OutcomeState.ASSUMED, now)
                outcome_verdict(session, outcome, "assumed")
                report.assumed += 1
        report.autopilot_switched_off = apply_durable_floor(session, settings, now=now)
    return report


@dataclass(frozen=True)
class CategoryDurability:
    category: str
    durable: int
    reopened: int

    @property
    def decided(self) -> int:
        return self.durable + self.reopened

    @property
    def rate(self) -> float:
        return self.durable / self.decided if self.decided else 0.0


def automatic_durability(session: Session, since: datetime, until: datetime) -> list[CategoryDurability]:
    """Per category, automatic resolutions sent between `since` and `until` that became durable or were re-opened.

    `until` must be at least the durable window ago: younger resolutions can already be re-opened but not yet
    durable, and counting them would make every category look worse than it is."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for category, state, count in session.execute(
        select(ResolutionOutcome.category, ResolutionOutcome.state, func.count())
        .where(
            ResolutionOutcome.automated.is_(True),
            ResolutionOutcome.state.in_(list(FINAL)),
            ResolutionOutcome.resolved_at >= since,
            ResolutionOutcome.resolved_at < until,
        )
        .group_by(ResolutionOutcome.category, ResolutionOutcome.state)
    ):
        counts[category or "uncategorised"][state] += count
    return [
        CategoryDurability(category, found[OutcomeState.DURABLE], found[OutcomeState.REOPENED])
        for category, found in sorted(counts.items())
    ]


def apply_durable_floor(session: Session, settings: Settings, *, now: datetime) -> int:
    """Switch the autopilot off for each category whose durable automatic resolution rate fell below the lead's
    floor (with enough settled resolutions to judge); a new policy version by "engine", audit-logged for the leads."""
    policy = current_policy(session, settings)
    if not policy.durable_floor:
        return 0
    switched = []
    settled = now - timedelta(days=settings.OUTCOME_DURABLE_DAYS)
    for found in automatic_durability(session, settled - timedelta(days=FLOOR_WINDOW_DAYS), settled):
        floor = policy.durable_floor.get(found.category, policy.durable_floor.get("*"))
        if floor is None or found.decided < policy.durable_floor_min_resolutions or found.rate >= floor:
            continue
        sources = session.scalars(
            select(ResolutionOutcome.source).where(ResolutionOutcome.category == found.category).distinct()
        ).all()
        if not any(policy.autopilot_on(source, found.category) for source in sources):
            continue
        policy.autopilot[f"*:{found.category}"] = False
        for key in [key for key, on in policy.autopilot.items() if on and key.endswith(f":{found.category}")]:
            policy.autopilot[key] = False
        switched.append(found)
    if not switched:
        return 0
    version = save_policy(session, policy, actor="engine")
    for found in switched:
        log.warning(
            "autopilot off for %s: %.0f%% durable < floor", found.category, found.rate * 100, extra={"actor": "engine"}
        )
        record_audit(
            session,
            "engine",
            SWITCH_OFF,
            "category",
            found.category,
            durable_rate=round(found.rate, 3),
            floor=policy.durable_floor.get(found.category, policy.durable_floor.get("*")),
            durable=found.durable,
            reopened=found.reopened,
            policy_version=version.version,
        )
    return len(switched)


def autopilot_switch_offs(session: Session, since: datetime) -> list[AuditEntry]:
    """The floor's switch-offs since `since`, newest first: what the Home page tells the leads."""
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == SWITCH_OFF, AuditEntry.at >= since)
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        )
    )


@dataclass(frozen=True)
class OutcomeLabel:
    """One automatic resolution the customer judged: for the confidence calibration per category."""

    category: str | None
    confidence: float
    solved: bool


def outcome_labels(session: Session) -> list[OutcomeLabel]:
    """Confirmed or durable (solved) and re-opened (not solved) automatic resolutions with their confidence."""
    rows = session.execute(
        select(ResolutionOutcome.category, ResolutionOutcome.confidence, ResolutionOutcome.state).where(
            ResolutionOutcome.automated.is_(True),
            ResolutionOutcome.confidence.is_not(None),
            ResolutionOutcome.state.in_([OutcomeState.CONFIRMED, OutcomeState.DURABLE, OutcomeState.REOPENED]),
        )
    )
    return [OutcomeLabel(category, confidence, state != OutcomeState.REOPENED) for category, confidence, state in rows]


def outcome_funnel(session: Session, since: datetime) -> dict[str, Any]:
    """The resolution funnel since `since`, automatic and human apart, with reopen rate and CSAT.

    Assumed counts every resolution that passed the silence window unanswered (also those since durable), so
    confirmed + assumed is the funnel's middle stage."""
    received = session.scalar(select(func.count()).select_from(Ticket).where(Ticket.created_at >= since)) or 0
    rows = session.execute(
        select(
            ResolutionOutcome.automated, ResolutionOutcome.state, ResolutionOutcome.answer, ResolutionOutcome.csat
        ).where(ResolutionOutcome.resolved_at >= since)
    ).all()
    funnel: dict[str, Any] = {"received": received}
    for automated, name in ((True, "automatic"), (False, "human")):
        mine = [row for row in rows if row.automated is automated]
        states = Counter(row.state for row in mine)
        ratings = [row.csat for row in mine if row.csat]
        funnel[name] = {
            "resolved": len(mine),
            "confirmed": sum(1 for row in mine if row.answer == "yes"),
            "assumed": sum(
                1 for row in mine if row.answer != "yes" and row.state in (OutcomeState.ASSUMED, OutcomeState.DURABLE)
            ),
            "durable": states[OutcomeState.DURABLE],
            "reopened": states[OutcomeState.REOPENED],
            "reopen_rate": states[OutcomeState.REOPENED] / len(mine) if mine else 0.0,
            "csat": sum(ratings) / len(ratings) if ratings else None,
            "ratings": len(ratings),
        }
    return funnel


def outcome_breakdown(session: Session, since: datetime, by: Literal["category", "source", "week"]) -> list[dict]:
    """Outcomes since `since` per category, source or week: counts by state, reopen rate and CSAT."""
    groups: dict[tuple[str, bool], list[ResolutionOutcome]] = defaultdict(list)
    for outcome in session.scalars(select(ResolutionOutcome).where(ResolutionOutcome.resolved_at >= since)):
        key = outcome.resolved_at.strftime("%G-W%V") if by == "week" else getattr(outcome, by) or "uncategorised"
        groups[(key, outcome.automated)].append(outcome)
    table = []
    for (key, automated), outcomes in sorted(groups.items()):
        states = Counter(outcome.state for outcome in outcomes)
        ratings = [outcome.csat for outcome in outcomes if outcome.csat]
        table.append(
            {
                by: key,
                "resolved by": "automatic" if automated else "human",
                "resolutions": len(outcomes),
                "confirmed": sum(1 for outcome in outcomes if outcome.answer == "yes"),
                "durable": states[OutcomeState.DURABLE],
                "reopened": states[OutcomeState.REOPENED],
                "reopen rate": round(states[OutcomeState.REOPENED] / len(outcomes), 3),
                "CSAT": round(sum(ratings) / len(ratings), 2) if ratings else None,
            }
        )
    return table
