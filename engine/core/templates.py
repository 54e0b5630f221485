"""E-mail content. Every subject carries the ticket reference so replies thread back (seed §6.2.1).

Automatic messages speak in our own words: the customer's subject and body never appear in them (an attacker
would otherwise use the desk as a relay for their text, from our address). The requester's name is used only
when it looks like a name; `$summary` is "your request" unless a lead opts in to a neutralised summary.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from string import Template

from engine.core.models import Ticket


@dataclass(frozen=True)
class EmailContent:
    subject: str
    body_text: str
    body_html: str


ACKNOWLEDGEMENT = Template(
    "Hello $name,\n\n"
    "We have received your request and opened ticket $reference for it.\n\n"
    "We are looking at it now and will write again shortly. To add details, simply reply to this e-mail "
    "and keep $reference in the subject.\n\n"
    "$signature"
)


NAME = re.compile(r"[^\W\d_](?:[^\W\d_]|[ '.-](?=[^\W\d_])){0,39}", re.UNICODE)
LINK_LIKE = re.compile(r"https?:|www\.|@|\.(?:com|net|org|io|ru|cn|xyz|top|info)\b|\d", re.IGNORECASE)
SUMMARY_WORDS = 12


def safe_name(name: str | None) -> str:
    """The requester's name for a greeting, or "there": a display name is the sender's text, and a long or
    link-like one ("Re-validate at evil.example") must not be repeated from our address."""
    name = " ".join((name or "").split())
    return name if NAME.fullmatch(name) and len(name.split()) <= 4 else "there"


def neutral_summary(text: str) -> str:
    """An opt-in summary of the customer's subject: no links, addresses, phone numbers or digits, a few words."""
    words = [word for word in text.split() if not LINK_LIKE.search(word)]
    kept = " ".join(re.sub(r"[^\w' -]", "", word, flags=re.UNICODE) for word in words[:SUMMARY_WORDS]).strip()
    return kept or "your request"


def summary_of(subject: str, *, quote_customer: bool) -> str:
    """What `$summary` says in an automatic message: our words unless a lead opted in to the neutral summary."""
    return neutral_summary(subject) if quote_customer else "your request"


def acknowledgement(
    ticket: Ticket, signature: str, overrides: dict[str, str] | None = None, *, quote_customer: bool = False
) -> EmailContent:
    """The seed's acknowledgement for every new ticket, in the lead's wording when one is saved."""
    text = render(
        "acknowledgement",
        overrides or {},
        name=safe_name(ticket.requester_name),
        reference=ticket.reference,
        summary=summary_of(ticket.subject or ticket.description, quote_customer=quote_customer),
        signature=signature,
    )
    return EmailContent(subject=f"Ticket Received: {ticket.reference}", body_text=text, body_html=to_html(text))


RESOLUTION = Template(
    "Hello $name,\n\n"
    "Thank you for contacting us about $reference. This should solve it:\n\n"
    "$steps\n\n"
    "$sources\n\n"
    "If it does not, simply reply to this e-mail (keep $reference in the subject) and a person will take over.\n\n"
    "$signature"
)

REQUEST_INFO = Template(
    "Hello $name,\n\n"
    "Thank you for contacting us about $reference. To help you quickly we need a few more details:\n\n"
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
    "sources": "Sources: Installing and troubleshooting the VPN (section Troubleshooting)",
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
) -> tuple[str, str]:
    """Subject and body of a proposed resolution (seed: "Resolution Proposed: TCKT-{id}")."""
    body = render(
        "resolution",
        overrides,
        name=safe_name(name),
        summary=summary,
        steps=numbered(steps),
        sources="Sources: " + "; ".join(sources) if sources else "",
        reference=reference,
        signature=signature,
    )
    return f"Resolution Proposed: {reference}", body


def request_info_email(
    reference: str,
    name: str | None,
    summary: str,
    questions: list[str],
    signature: str,
    overrides: dict[str, str],
) -> tuple[str, str]:
    """Subject and body asking for what is missing (seed: "Additional Information Required: TCKT-{id}")."""
    body = render(
        "request_info",
        overrides,
        name=safe_name(name),
        summary=summary,
        questions=numbered(questions),
        reference=reference,
        signature=signature,
    )
    return f"Additional Information Required: {reference}", body


def to_html(text: str) -> str:
    """A plain-text message as escaped HTML: nothing from a ticket can become markup."""
    paragraphs = "".join(f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>" for part in text.split("\n\n"))
    return f"<!doctype html><html><body>{paragraphs}</body></html>"
