"""Builders for test data, so tests say only what matters to them."""

from __future__ import annotations

import itertools
from typing import Any

from connectors.base import TicketIn

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
