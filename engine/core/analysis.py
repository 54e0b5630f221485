"""What an analyser sees of a ticket and what it must return.

Analysers: engine/analysers/retrieval_analyser.py (LLM_PROVIDER=none) and engine/analysers/llm_analyser.py (azure,
openai).
The decision is a typed field, never parsed out of free text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from engine.core.desk_policy import DeskPolicy
from engine.core.models import Ticket

Decision = Literal["resolve", "ask", "escalate"]
RETRIEVAL_ANALYSER = "retrieval-only"
"""The name of the analyser that answers from the knowledge base alone (no LLM_PROVIDER)."""
RETRIEVAL_ONLY = ("none", RETRIEVAL_ANALYSER)


def draft_label(analyser: str) -> str:
    """How operators see an engine-prepared draft was made; kept in the timeline, never sent to the customer."""
    if analyser in RETRIEVAL_ONLY or analyser.endswith("(fallback: retrieval-only)"):
        return "Prepared from the knowledge base without an AI model (retrieval-only)"
    return f"Drafted by the AI model ({analyser}) from the knowledge base"


@dataclass(frozen=True)
class TicketSnapshot:
    """The ticket as it was when claimed; analysis runs outside any database transaction."""

    id: int
    reference: str
    subject: str
    description: str
    email: str
    requester_name: str | None
    """Only a name from a trusted directory (Ticket.directory_name): automatic messages greet with it."""
    source: str
    priority: str | None
    category: str | None
    team: str | None
    follow_up_count: int
    replies: tuple[str, ...] = ()
    attachments: tuple[str, ...] = ()
    """The names of the files the customer attached (a screenshot answers "which error?")."""

    @property
    def text(self) -> str:
        """Everything the customer wrote, oldest first."""
        return "\n\n".join([self.subject, self.description, *self.replies])

    @classmethod
    def of(cls, ticket: Ticket, replies: list[str], attachments: list[str] | None = None) -> TicketSnapshot:
        return cls(
            id=ticket.id,
            reference=ticket.reference,
            subject=ticket.subject,
            description=ticket.description,
            email=ticket.email,
            requester_name=ticket.directory_name,
            source=ticket.source,
            priority=ticket.priority,
            category=ticket.category,
            team=ticket.team,
            follow_up_count=ticket.follow_up_count,
            replies=tuple(replies),
            attachments=tuple(attachments or ()),
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
    category: str | None = None
    escalation: dict[str, Any] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: int = 0
    error: str | None = None
    confidence_adjustment: dict[str, Any] | None = None
    """What customers' verdicts did to the confidence (engine/outcomes/outcome_calibration.py); None: nothing."""
    model_confidence: dict[str, Any] | None = None
    """The AI model's stated confidence and what the desk made of it (engine/analysers/llm_confidence.py); None:
    no model's answer behind this analysis."""


class Analyser(Protocol):
    name: str

    def analyse(self, ticket: TicketSnapshot, policy: DeskPolicy | None = None) -> AnalysisResult:
        """Decide what to do with a ticket under `policy`: the pipeline passes the one its claim read, which the
        verdict uses too; None (evaluations, benchmarks) reads the desk's current one. Must not raise for bad model
        output; may raise on bugs."""
        ...
