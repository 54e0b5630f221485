"""The desk's policy as support leads set it in the dashboard: autopilot switches, thresholds, weights, templates.

Stored append-only (every save is a new version with who and when), so a lead can see what changed and
the engine always reads one consistent version. Environment settings give the defaults.
"""

from __future__ import annotations

import re

import phonenumbers
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors import registry
from engine.core.models import DeskPolicyVersion
from engine.core.settings import Settings
from engine.core.timeline import record_audit

SEED_WEIGHTS = {
    "code_change_complexity": 0.20,
    "new_feature_scope": 0.15,
    "dev_team_involvement": 0.20,
    "estimated_hours": 0.20,
    "system_impact": 0.15,
    "dependency_complexity": 0.10,
}
"""Seed §8.1.2: the escalation criteria and their weights."""

DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{1,62}")
MAILBOX = re.compile(rf"[\w.+-]+@{DOMAIN.pattern}")


def normalise_contact_point(entry: str) -> str:
    """A phone number in E.164 (`+442079464357`) or a lower-cased e-mail address; a ValueError that says how to
    write it otherwise. Numbers need their country code: a national number is only a number in one country."""
    value = entry.strip().removeprefix("tel:").removeprefix("mailto:").strip()
    if "@" in value:
        if not MAILBOX.fullmatch(value.lower()):
            raise ValueError(f"not an e-mail address: {entry[:80]!r}")
        return value.lower()
    if value.startswith("00"):
        value = "+" + value[2:]
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_possible_number(number):
        raise ValueError(f"not a phone number with its country code: {entry[:80]!r} (write it as +44 20 7946 4357)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


TEAM_ROUTES = {
    "access": "Identity & Access",
    "email": "Messaging",
    "network": "Network",
    "hardware": "Field Services",
    "software": "Desktop Applications",
    "product_howto": "Customer Support",
    "product_bug": "Engineering",
    "billing": "Billing",
    "outage": "Incident Response",
    "security": "Security",
}


class DeskPolicy(BaseModel):
    autopilot: dict[str, bool] = Field(default_factory=dict)
    """Keys `source:category`, `source:*`, `*:category` or `*:*`; the most specific key wins."""
    auto_send_min_confidence: float = Field(default=0.75, ge=0, le=1)
    escalation_threshold: float = Field(default=70.0, ge=0, le=100)
    escalation_weights: dict[str, float] = Field(default_factory=lambda: dict(SEED_WEIGHTS))
    follow_up_limit: int = Field(default=3, ge=0, le=20)
    templates: dict[str, str] = Field(default_factory=dict)
    always_escalate_categories: list[str] = Field(default_factory=lambda: ["outage", "security"])
    vip_requesters: list[str] = Field(default_factory=list)
    """E-mail addresses or `@domain`s whose tickets always go to a person."""
    team_routes: dict[str, str] = Field(default_factory=lambda: dict(TEAM_ROUTES))
    """Category → team that receives its escalations."""
    quote_customer_summary: bool = False
    """Opt-in: `$summary` in drafts is a neutralised summary of the subject (no links, addresses or digits, a few
    words) instead of "your request". Customer words: such a draft is sent only after a person approves it."""
    allowed_domains: list[str] = Field(default_factory=list)
    """Domains, beside the desk's own (Settings.own_domains), that an automatic message may link or write to."""
    contact_points: list[str] = Field(default_factory=list)
    """The desk's own phone numbers (E.164) and e-mail addresses, beside its sending address and its connectors':
    the only ones an automatic message or a knowledge-base passage may give on its own, whatever text carries them."""

    durable_floor: dict[str, float] = Field(default_factory=dict)
    """Category (or "*" for every category) → the lowest share of automatic resolutions that must stay durable;
    below it the engine switches that category's autopilot off (engine/outcomes/outcomes.py `apply_durable_floor`)."""
    durable_floor_min_resolutions: int = Field(default=20, ge=1)
    """How many durable-or-reopened automatic resolutions a category needs before the floor judges it."""

    def allowed_domain_set(self, settings: Settings) -> set[str]:
        """Every domain an automatic message may name: the desk's own and the ones a lead allowed."""
        extra = {domain.strip().lower().lstrip("@.") for domain in self.allowed_domains if domain.strip()}
        return settings.own_domains() | extra

    def contact_point_set(self, settings: Settings) -> set[str]:
        """Every phone number and e-mail address that is the desk's own: its sending addresses, its connectors'
        contact points (the demo company's, while the demo feed runs), OUTGOING_CONTACT_POINTS and the ones a lead
        listed."""
        configured = (point for point in settings.OUTGOING_CONTACT_POINTS.split(",") if point.strip())
        points = set(self.contact_points) | {normalise_contact_point(point) for point in configured}
        for entry in registry.connectors():
            if entry.contact_points is not None:
                points |= {normalise_contact_point(point) for point in entry.contact_points(settings)}
        return points | {address.lower() for address in (settings.SUPPORT_FROM_EMAIL, settings.from_address) if address}

    def is_vip(self, address: str) -> bool:
        address = address.lower()
        return any(
            address == vip.lower() or (vip.startswith("@") and address.endswith(vip.lower()))
            for vip in self.vip_requesters
        )

    @field_validator("allowed_domains")
    @classmethod
    def _domains_are_domains(cls, domains: list[str]) -> list[str]:
        cleaned = []
        for entry in domains:
            domain = entry.strip().lower().removeprefix("https://").removeprefix("http://").strip("/@. ")
            if not DOMAIN.fullmatch(domain):
                raise ValueError(f"not a domain name: {entry[:80]!r} (write it as help.example.com)")
            cleaned.append(domain)
        return sorted(set(cleaned))

    @field_validator("contact_points")
    @classmethod
    def _contact_points_are_numbers_or_addresses(cls, entries: list[str]) -> list[str]:
        return sorted({normalise_contact_point(entry) for entry in entries if entry.strip()})

    @field_validator("durable_floor")
    @classmethod
    def _floors_are_shares(cls, floors: dict[str, float]) -> dict[str, float]:
        wrong = sorted(category for category, floor in floors.items() if not 0 <= floor <= 1)
        if wrong:
            raise ValueError(f"a durable floor is a share from 0 to 1 (check {', '.join(wrong)})")
        return floors

    @field_validator("escalation_weights")
    @classmethod
    def _weights_known_and_positive(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = set(weights) - set(SEED_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown escalation criteria: {sorted(unknown)}")
        if any(weight < 0 for weight in weights.values()):
            raise ValueError("escalation weights must not be negative")
        return weights

    def autopilot_on(self, source: str, category: str | None) -> bool:
        category = category or "*"
        for key in (f"{source}:{category}", f"{source}:*", f"*:{category}", "*:*"):
            if key in self.autopilot:
                return self.autopilot[key]
        return False


def default_policy(settings: Settings) -> DeskPolicy:
    """The environment's defaults until a lead saves a policy; the demo feed runs on autopilot, so a new install
    shows what the desk answers on its own (every guard still holds whatever it must)."""
    autopilot = {"*:*": settings.AUTOPILOT_ENABLED} | ({"demo:*": True} if settings.DEMO_FEED_ENABLED else {})
    return DeskPolicy(autopilot=autopilot, auto_send_min_confidence=settings.AUTO_SEND_MIN_CONFIDENCE)


def current_policy(session: Session, settings: Settings) -> DeskPolicy:
    """The newest saved policy, or the defaults from the environment when none was saved."""
    latest = session.scalar(select(DeskPolicyVersion).order_by(DeskPolicyVersion.version.desc()).limit(1))
    return DeskPolicy.model_validate(latest.policy) if latest else default_policy(settings)


def save_policy(
    session: Session, policy: DeskPolicy, *, actor: str, previous: DeskPolicy | None = None
) -> DeskPolicyVersion:
    """Store `policy` as the next version and audit who changed what, with each value before and after. The first
    save compares with `previous` (the defaults the person saw), so it names only what they changed."""
    latest = session.scalar(select(DeskPolicyVersion).order_by(DeskPolicyVersion.version.desc()).limit(1))
    row = DeskPolicyVersion(version=(latest.version + 1) if latest else 1, policy=policy.model_dump(), changed_by=actor)
    session.add(row)
    before = latest.policy if latest else (previous or DeskPolicy()).model_dump(mode="json")
    after = policy.model_dump(mode="json")
    changed = sorted(key for key, value in after.items() if before.get(key) != value)
    changes = {key: [before.get(key), after[key]] for key in changed if key != "templates"}
    templates = sorted(
        name
        for name in {*before.get("templates", {}), *after["templates"]}
        if before.get("templates", {}).get(name) != after["templates"].get(name)
    )
    record_audit(
        session,
        actor,
        "change_policy",
        "desk_policy",
        row.version,
        changed=changed,
        changes=changes,
        templates=templates,
    )
    return row
