"""Builders for test data, so tests say only what matters to them."""

from __future__ import annotations

import itertools
import random
from typing import Any

from sqlalchemy.orm import Session

from connectors.base import TicketIn
from engine.enums import TicketStatus
from engine.models import Ticket, utcnow

_counter = itertools.count(1)


def ticket_in(**overrides: Any) -> TicketIn:
    """A plausible new ticket from a person; override any field."""
    number = next(_counter)
    fields: dict[str, Any] = {
        "source": "test",
        "external_id": f"EXT-{number}",
        "requester_email": f"user{number}@customer.example",
        "requester_name": f"User {number}",
        "subject": f"Cannot log in to the portal ({number})",
        "body": "Since this morning the portal says 'invalid password' although I reset it yesterday.",
    }
    fields.update(overrides)
    return TicketIn(**fields)


def email_in(**overrides: Any) -> TicketIn:
    """An e-mail message (new or reply, depending on its subject and thread)."""
    number = next(_counter)
    fields: dict[str, Any] = {
        "kind": "email",
        "external_id": f"msg-{number}",
        "message_id": f"<msg-{number}@customer.example>",
    }
    fields.update(overrides)
    return ticket_in(**fields)


ROUTING_VOCABULARY = {
    "Network": [
        "vpn tunnel drops",
        "wifi access point",
        "switch port down",
        "firewall rule blocks",
        "dns lookup fails",
    ],
    "Identity & Access": [
        "password reset",
        "account locked out",
        "mfa token lost",
        "sso login loop",
        "ad group access",
    ],
    "Messaging": [
        "outlook mailbox full",
        "shared mailbox missing",
        "distribution list",
        "calendar invite",
        "mail rule",
    ],
    "Service Desk": ["question about my laptop", "how do i order", "general request", "new starter kit", "desk phone"],
}
"""Three specialist teams and the first line (Settings.DEFAULT_TEAM), each with its own words."""


def routing_history(per_team: int, *, seed: int = 0) -> list[tuple[str, str, str]]:
    """(subject, description, team) of resolved tickets whose words tell the team apart, in a shuffled order."""
    rng = random.Random(seed)
    rows = []
    for team, phrases in ROUTING_VOCABULARY.items():
        for _ in range(per_team):
            first, second = rng.sample(phrases, 2)
            rows.append((first, f"Hello, {first} since this morning and {second}. Regards, Sam", team))
    rng.shuffle(rows)
    return rows


def resolved_ticket(session: Session, subject: str, description: str, team: str) -> Ticket:
    """A ticket a person resolved under `team`: what the routing model learns from."""
    number = next(_counter)
    ticket = Ticket(
        source="test",
        external_id=f"RES-{number}",
        email=f"user{number}@customer.example",
        subject=subject,
        description=description,
        status=TicketStatus.RESOLVED,
        team=team,
        human_touched_at=utcnow(),
        resolved_at=utcnow(),
    )
    session.add(ticket)
    return ticket
