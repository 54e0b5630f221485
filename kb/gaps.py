"""Knowledge gaps: what customers ask that the knowledge base does not answer well, grouped by topic.

A ticket is a gap when its newest analysis had no evidence or weak evidence (confidence below WEAK_CONFIDENCE),
or when an automatic answer was re-opened by the customer. Their text is clustered (TF-IDF, k-means) and each
cluster is named by its top terms, so a lead reads "write an article about vpn · certificate · expired".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core.enums import OutcomeState
from engine.core.models import Analysis, ResolutionOutcome, Ticket

WEAK_CONFIDENCE = 0.5
MAX_TICKETS = 5000
"""The newest gap tickets clustered in one run: enough for a month of a busy desk, quick on two cores."""
WORDS = r"(?u)\b[^\W\d_][\w-]{2,}\b"
"""Words of three letters or more that start with a letter: ticket numbers and codes name no topic."""
LABEL_TERMS = 3
EXAMPLES = 3


@dataclass(frozen=True)
class GapTicket:
    ticket_id: int
    reference: str
    subject: str
    text: str
    why: str


@dataclass(frozen=True)
class KnowledgeGap:
    label: str
    tickets: int
    reopened: int
    examples: list[str]
    """"TCKT-12: subject" of the tickets nearest the topic's centre."""


def gap_tickets(session: Session, since: datetime) -> list[GapTicket]:
    """Tickets since `since` whose newest analysis had weak or no evidence, and re-opened automatic answers."""
    newest = (
        select(Analysis.ticket_id, func.max(Analysis.id).label("analysis_id")).group_by(Analysis.ticket_id).subquery()
    )
    rows = session.execute(
        select(Ticket, Analysis.confidence, Analysis.evidence)
        .join(newest, newest.c.ticket_id == Ticket.id)
        .join(Analysis, Analysis.id == newest.c.analysis_id)
        .where(Ticket.created_at >= since)
        .order_by(Ticket.id.desc())
        .limit(MAX_TICKETS)
    ).all()
    reopened = set(
        session.scalars(
            select(ResolutionOutcome.ticket_id).where(
                ResolutionOutcome.automated.is_(True),
                ResolutionOutcome.state == OutcomeState.REOPENED,
                ResolutionOutcome.resolved_at >= since,
            )
        )
    )
    found = []
    for ticket, confidence, evidence in rows:
        if ticket.id in reopened:
            why = "automatic answer re-opened"
        elif not evidence:
            why = "no evidence"
        elif confidence < WEAK_CONFIDENCE:
            why = "weak evidence"
        else:
            continue
        text = f"{ticket.subject}\n{ticket.description[:1000]}"
        found.append(GapTicket(ticket.id, ticket.reference, ticket.subject[:120], text, why))
    return found


def knowledge_gaps(session: Session, since: datetime, *, max_topics: int = 12) -> list[KnowledgeGap]:
    """Gap tickets grouped by topic, largest first; [] when there are none."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    tickets = gap_tickets(session, since)
    if not tickets:
        return []
    vectorizer = TfidfVectorizer(stop_words="english", max_features=5000, token_pattern=WORDS, sublinear_tf=True)
    try:
        matrix = vectorizer.fit_transform([ticket.text for ticket in tickets])
    except ValueError:  # nothing but stop words and numbers
        return [_gap("unlabelled", tickets, range(len(tickets)))]
    topics = max(1, min(max_topics, _distinct_rows(matrix), round(math.sqrt(len(tickets) / 2))))
    model = KMeans(n_clusters=topics, n_init=4, random_state=0).fit(matrix)
    terms = vectorizer.get_feature_names_out()
    gaps = []
    for topic in range(topics):
        members = [index for index, label in enumerate(model.labels_) if label == topic]
        if not members:
            continue
        centre = model.cluster_centers_[topic]
        members.sort(key=lambda index: -float(matrix[index].dot(centre)[0]))
        # The topic's most typical ticket names it in a person's words; its top terms ("vpn · ich · working") only
        # when that ticket has no subject.
        terms_label = " · ".join(terms[term] for term in centre.argsort()[::-1][:LABEL_TERMS] if centre[term] > 0)
        label = " ".join(tickets[members[0]].subject.split()) or terms_label
        gaps.append(_gap(label or "unlabelled", tickets, members))
    return sorted(gaps, key=lambda gap: -gap.tickets)


def _distinct_rows(matrix: Any) -> int:
    """How many different tickets the vectors tell apart: no more topics than that (tickets that read alike, as a
    flood of one alert does, would leave K-means with empty clusters and a ConvergenceWarning in the log)."""
    return len({(row.indices.tobytes(), row.data.round(6).tobytes()) for row in matrix})


def _gap(label: str, tickets: list[GapTicket], members: list[int] | range) -> KnowledgeGap:
    chosen = [tickets[index] for index in members]
    return KnowledgeGap(
        label=label,
        tickets=len(chosen),
        reopened=sum(ticket.why == "automatic answer re-opened" for ticket in chosen),
        examples=[f"{ticket.reference}: {ticket.subject}" for ticket in chosen[:EXAMPLES]],
    )
