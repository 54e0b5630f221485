"""Escalation scoring (seed §8.1.2): criteria scored by the LLM or by rules, validated, weighted, penalised.

Every component is kept so the dashboard can draw the breakdown against the threshold. Besides the score,
a ticket escalates when it exceeded the follow-up limit, reads angry and urgent, or comes from a VIP.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, field_validator

from engine.analysers.routing import RouteSuggestion, served_suggestion, ticket_text
from engine.core.analysis import TicketSnapshot
from engine.core.desk_policy import DeskPolicy

IMPACT_SCORE = {"Low": 20.0, "Medium": 60.0, "High": 100.0}
MAX_HOURS = 40.0


class Criteria(BaseModel):
    """The seed's criteria; out-of-range or malformed values are clamped, not trusted."""

    code_change_complexity: float = 0
    new_feature_scope: float = 0
    dev_team_involvement: float = 0
    estimated_hours: float = 0
    system_impact: Literal["Low", "Medium", "High"] = "Low"
    dependency_complexity: float = 0
    user_provided_info_quality: float = 5

    @field_validator(
        "code_change_complexity",
        "new_feature_scope",
        "dev_team_involvement",
        "dependency_complexity",
        "user_provided_info_quality",
        mode="before",
    )
    @classmethod
    def _zero_to_ten(cls, value: Any) -> float:
        try:
            return min(10.0, max(0.0, float(value)))
        except (TypeError, ValueError):
            return 0.0

    @field_validator("estimated_hours", mode="before")
    @classmethod
    def _hours(cls, value: Any) -> float:
        try:
            return min(1000.0, max(0.0, float(value)))
        except (TypeError, ValueError):
            return 0.0

    @field_validator("system_impact", mode="before")
    @classmethod
    def _impact(cls, value: Any) -> str:
        text = str(value).strip().capitalize()
        return text if text in IMPACT_SCORE else "Medium"


@dataclass(frozen=True)
class Assessment:
    criteria: Criteria
    components: dict[str, dict[str, float]]
    raw_score: float
    penalty: float
    weighted_score: float
    threshold: float
    escalate: bool
    reasons: list[str] = field(default_factory=list)
    team: str | None = None
    route: RouteSuggestion | None = None
    """The learned routing's suggestion, asked when the category names no team; its team only when confident."""


def component_value(name: str, criteria: Criteria) -> float:
    """A criterion on a 0–100 scale, so the weighted sum is comparable with the threshold of 70."""
    if name == "estimated_hours":
        return min(criteria.estimated_hours, MAX_HOURS) / MAX_HOURS * 100
    if name == "system_impact":
        return IMPACT_SCORE[criteria.system_impact]
    return float(getattr(criteria, name)) * 10


def assess(ticket: TicketSnapshot, criteria: Criteria, policy: DeskPolicy) -> Assessment:
    components = {
        name: {
            "score": round(component_value(name, criteria), 2),
            "weight": weight,
            "weighted": round(component_value(name, criteria) * weight, 2),
        }
        for name, weight in policy.escalation_weights.items()
    }
    raw = sum(component["weighted"] for component in components.values())
    quality = criteria.user_provided_info_quality
    penalty = (4 - quality) * 5 / 100 if quality < 4 else 0.0
    score = round(raw * (1 - penalty), 2)
    reasons = []
    if score >= policy.escalation_threshold:
        reasons.append(f"escalation score {score:.0f} ≥ {policy.escalation_threshold:.0f}")
    if ticket.follow_up_count > policy.follow_up_limit:
        reasons.append(f"{ticket.follow_up_count} follow-ups, over the limit of {policy.follow_up_limit}")
    if angry_and_urgent(ticket.text):
        reasons.append("negative sentiment with urgency")
    if policy.is_vip(ticket.email):
        reasons.append("VIP requester")
    if (ticket.category or "") in policy.always_escalate_categories:
        reasons.append(f"category {ticket.category} always goes to a person")
    team = policy.team_routes.get(ticket.category or "")
    route = None if team else served_suggestion(ticket_text(ticket.subject, ticket.description, ticket.email))
    if route is not None and route.needs_specialist:
        reasons.append(
            f"needs a specialist team: probability {route.specialist_probability:.2f}, at or above "
            f"{route.specialist_threshold:.2f} learned from resolved tickets"
        )
    return Assessment(
        criteria=criteria,
        components=components,
        raw_score=round(raw, 2),
        penalty=penalty,
        weighted_score=score,
        threshold=policy.escalation_threshold,
        escalate=bool(reasons),
        reasons=reasons,
        team=team or (route.team if route else None),
        route=route,
    )


NEGATIVE = re.compile(
    r"\b(unacceptable|furious|ridiculous|disgusted|terrible|worst|fed up|angry|outraged|lawyer|legal action|"
    r"cancel (my|our) (contract|subscription)|third time|still (not|broken)|nobody (helps|answers))\b|!{3,}",
    re.IGNORECASE,
)
URGENT = re.compile(
    r"\b(urgent|asap|immediately|right now|critical|emergency|production (is )?down|losing (money|customers)|"
    r"deadline|blocked)\b",
    re.IGNORECASE,
)


def angry_and_urgent(text: str) -> bool:
    return bool(NEGATIVE.search(text) and URGENT.search(text))


RULES: list[tuple[re.Pattern[str], dict[str, Any]]] = [
    (
        re.compile(r"\b(how (do|can|to)|where (can|do) i|is there a way|what is the (way|setting))\b", re.I),
        {"code_change_complexity": 0, "dev_team_involvement": 0, "estimated_hours": 0.25},
    ),
    (
        re.compile(
            r"\b(bug|crash(es|ed)?|exception|traceback|stack ?trace|regression|error 5\d\d|http 5\d\d|"
            r"500 internal|doesn'?t work since (the )?(update|release))\b",
            re.I,
        ),
        {"code_change_complexity": 6, "dev_team_involvement": 7, "estimated_hours": 8, "system_impact": "Medium"},
    ),
    (
        re.compile(
            r"\b(feature request|would be (great|nice) if|can you add|please add|support for|enhancement)\b", re.I
        ),
        {"new_feature_scope": 8, "code_change_complexity": 6, "dev_team_involvement": 6, "estimated_hours": 24},
    ),
    (
        re.compile(
            r"\b(outage|is down|are down|all users|everyone|whole (team|company|office)|nobody can|"
            r"entire|502|503|bad gateway|service unavailable)\b",
            re.I,
        ),
        {
            "system_impact": "High",
            "dev_team_involvement": 8,
            "code_change_complexity": 5,
            "dependency_complexity": 6,
            "estimated_hours": 8,
        },
    ),
    (
        re.compile(r"\b(data loss|lost (all|our|my) (data|files)|deleted|corrupt(ed)?|wiped)\b", re.I),
        {"system_impact": "High", "dev_team_involvement": 8, "code_change_complexity": 6, "estimated_hours": 16},
    ),
    (
        re.compile(r"\b(phish(ing)?|breach|compromised|hacked|malware|ransomware|suspicious (login|sign-?in))\b", re.I),
        {"system_impact": "High", "dev_team_involvement": 6, "dependency_complexity": 5, "estimated_hours": 6},
    ),
    (
        re.compile(r"\b(api|integration|sso|saml|oauth|webhook|third[- ]party|vendor|sync)\b", re.I),
        {"dependency_complexity": 6},
    ),
    (
        re.compile(r"\b(refund|chargeback|dispute|overcharged|double charged|invoice (is )?wrong)\b", re.I),
        {"system_impact": "Medium", "dev_team_involvement": 2, "estimated_hours": 2},
    ),
]

DETAIL_SIGNALS = [
    re.compile(
        r"\b(error|code|message)\b.{0,40}([\"'“][^\"'”]{3,}[\"'”]|\b[A-Z]{2,}[-_ ]?\d{2,}\b|0x[0-9a-f]{4,})", re.I
    ),
    re.compile(r"\b(steps?|when i|after i|i (tried|clicked|restarted|reinstalled)|1\.)", re.I),
    re.compile(
        r"\b(since|yesterday|this morning|today|last (week|night)|\d{1,2}[:.]\d{2}|monday|tuesday|wednesday|"
        r"thursday|friday)\b",
        re.I,
    ),
    re.compile(
        r"\b(version|v?\d+\.\d+(\.\d+)?|windows|macos|ios|android|chrome|firefox|edge|outlook|laptop|"
        r"printer|vpn)\b",
        re.I,
    ),
]


def information_quality(text: str) -> float:
    """0–10: how much a person could act on (length, error text, steps, timing, environment)."""
    words = len(text.split())
    score = min(4.0, words / 15)
    score += 1.5 * sum(bool(signal.search(text)) for signal in DETAIL_SIGNALS)
    return round(min(10.0, score), 1)


def rule_criteria(ticket: TicketSnapshot) -> Criteria:
    """Score the criteria without an LLM: the strongest signal per criterion wins."""
    values: dict[str, Any] = {"system_impact": "Low"}
    order = {"Low": 0, "Medium": 1, "High": 2}
    for pattern, scores in RULES:
        if not pattern.search(ticket.text):
            continue
        for name, value in scores.items():
            if name == "system_impact":
                values[name] = max(values[name], value, key=order.__getitem__)
            else:
                values[name] = max(values.get(name, 0), value)
    values["user_provided_info_quality"] = information_quality(ticket.text)
    return Criteria(**values)
