"""E-mail content. Every subject carries the ticket reference so replies thread back (seed §6.2.1)."""

from __future__ import annotations

import html
from dataclasses import dataclass
from string import Template

from engine.models import Ticket


@dataclass(frozen=True)
class EmailContent:
    subject: str
    body_text: str
    body_html: str


ACKNOWLEDGEMENT = Template(
    "Hello $name,\n\n"
    "We have received your request and opened ticket $reference:\n\n"
    "    $summary\n\n"
    "We are looking at it now and will write again shortly. To add details, simply reply to this e-mail "
    "and keep $reference in the subject.\n\n"
    "$signature"
)


def acknowledgement(ticket: Ticket, signature: str) -> EmailContent:
    text = ACKNOWLEDGEMENT.substitute(
        name=ticket.requester_name or "there",
        reference=ticket.reference,
        summary=(ticket.subject or ticket.description)[:200],
        signature=signature,
    )
    return EmailContent(
        subject=f"Ticket Received: {ticket.reference} {ticket.subject}"[:500], body_text=text, body_html=to_html(text)
    )


def to_html(text: str) -> str:
    """A plain-text message as escaped HTML: nothing from a ticket can become markup."""
    paragraphs = "".join(f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>" for part in text.split("\n\n"))
    return f"<!doctype html><html><body>{paragraphs}</body></html>"
