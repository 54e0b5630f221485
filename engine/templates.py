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


def acknowledgement(ticket: Ticket, signature: str, overrides: dict[str, str] | None = None) -> EmailContent:
    """The seed's acknowledgement for every new ticket, in the lead's wording when one is saved."""
    text = render(
        "acknowledgement",
        overrides or {},
        name=ticket.requester_name or "there",
        reference=ticket.reference,
        summary=(ticket.subject or ticket.description)[:200],
        signature=signature,
    )
    return EmailContent(
        subject=f"Ticket Received: {ticket.reference} {ticket.subject}"[:500], body_text=text, body_html=to_html(text)
    )


RESOLUTION = Template(
    "Hello $name,\n\n"
    'Thank you for contacting us about "$summary". This should solve it:\n\n'
    "$steps\n\n"
    "$sources\n\n"
    "If it does not, simply reply to this e-mail (keep $reference in the subject) and a person will take over.\n\n"
    "$signature"
)

REQUEST_INFO = Template(
    "Hello $name,\n\n"
    'Thank you for contacting us about "$summary". To help you quickly we need a few more details:\n\n'
    "$questions\n\n"
    "Please reply to this e-mail and keep $reference in the subject.\n\n"
    "$signature"
)

TEMPLATES = {"acknowledgement": ACKNOWLEDGEMENT, "resolution": RESOLUTION, "request_info": REQUEST_INFO}
SAMPLE_VALUES = {
    "name": "Dana",
    "reference": "TCKT-1042",
    "summary": "VPN disconnects every few minutes",
    "steps": "1. Open the VPN client.\n2. Choose TCP 443 under Settings > Protocol.",
    "sources": "Sources: vpn-setup.md (section Troubleshooting)",
    "questions": "1. What exact error message do you see?\n2. Since when does this happen?",
}
"""What a preview fills in; a lead's template may use these placeholders and $signature."""


def numbered(lines: list[str]) -> str:
    return "\n".join(f"{number}. {line}" for number, line in enumerate(lines, 1))


def render(kind: str, overrides: dict[str, str], **values: str) -> str:
    """Fill the template of `kind`, a lead's override (Settings page) when one is saved."""
    template = Template(overrides[kind]) if overrides.get(kind) else TEMPLATES[kind]
    return template.safe_substitute(**values)


def resolution_email(
    reference: str,
    name: str | None,
    summary: str,
    steps: list[str],
    sources: list[str],
    signature: str,
    overrides: dict[str, str],
    note: str = "",
) -> tuple[str, str]:
    """Subject and body of a proposed resolution (seed: "Resolution Proposed: TCKT-{id}")."""
    body = render(
        "resolution",
        overrides,
        name=name or "there",
        summary=summary[:120],
        steps=numbered(steps),
        sources="Sources: " + "; ".join(sources) if sources else "",
        reference=reference,
        signature=signature,
    )
    return f"Resolution Proposed: {reference}", body + (f"\n\n{note}" if note else "")


def request_info_email(
    reference: str,
    name: str | None,
    summary: str,
    questions: list[str],
    signature: str,
    overrides: dict[str, str],
    note: str = "",
) -> tuple[str, str]:
    """Subject and body asking for what is missing (seed: "Additional Information Required: TCKT-{id}")."""
    body = render(
        "request_info",
        overrides,
        name=name or "there",
        summary=summary[:120],
        questions=numbered(questions),
        reference=reference,
        signature=signature,
    )
    return f"Additional Information Required: {reference}", body + (f"\n\n{note}" if note else "")


def to_html(text: str) -> str:
    """A plain-text message as escaped HTML: nothing from a ticket can become markup."""
    paragraphs = "".join(f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>" for part in text.split("\n\n"))
    return f"<!doctype html><html><body>{paragraphs}</body></html>"
