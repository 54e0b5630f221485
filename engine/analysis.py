"""What the analyser sees of a ticket and what it must return; the analyser the engine runs by default.

Until a real analyser is configured the engine is honest about it: every ticket goes to a person with
the reason "no analyser configured", and no AI output is invented.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from engine.models import Ticket

Decision = Literal["resolve", "ask", "escalate"]


@dataclass(frozen=True)
class TicketSnapshot:
    """The ticket as it was when claimed; analysis runs outside any database transaction."""

    id: int
    reference: str
    subject: str
    description: str
    email: str
    priority: str | None
    category: str | None
    team: str | None
    follow_up_count: int
    replies: tuple[str, ...] = ()

    @classmethod
    def of(cls, ticket: Ticket, replies: list[str]) -> TicketSnapshot:
        return cls(
            id=ticket.id,
            reference=ticket.reference,
            subject=ticket.subject,
            description=ticket.description,
            email=ticket.email,
            priority=ticket.priority,
            category=ticket.category,
            team=ticket.team,
            follow_up_count=ticket.follow_up_count,
            replies=tuple(replies),
        )


@dataclass(frozen=True)
class AnalysisResult:
    analyser: str
    decision: Decision
    reason: str
    confidence: float = 0.0
    team: str | None = None
    summary: str = ""
    resolution_steps: list[str] = field(default_factory=list)
    information_gaps: list[str] = field(default_factory=list)
    follow_up_questions: list[str] = field(default_factory=list)
    evidence: list[dict[str, object]] = field(default_factory=list)
    guards: list[str] = field(default_factory=list)
    draft_subject: str | None = None
    draft_body: str | None = None


class Analyser(Protocol):
    name: str

    def analyse(self, ticket: TicketSnapshot) -> AnalysisResult:
        """Decide what to do with a ticket. Must not raise for bad model output; may raise on bugs."""
        ...


class NoAnalyser:
    """The honest pass-through: route every ticket to a person."""

    name = "none"

    def analyse(self, ticket: TicketSnapshot) -> AnalysisResult:
        return AnalysisResult(
            analyser=self.name, decision="escalate", reason="no analyser configured", team=ticket.team
        )
