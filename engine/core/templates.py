"""E-mail content. Every message of a conversation has one subject, "Re: your request [TCKT-n]", carrying the ticket
reference so replies thread back (seed §6.2.1): the seed's "Ticket Received: …", "Resolution Proposed: …" and
"Additional Information Required: …" read as five conversations in a customer's mailbox (#24), and "Proposed" stayed
on answers a person had approved.

Automatic messages speak in our own words: the customer's subject, body and display name never appear in them (an
attacker would otherwise use the desk as a relay for their text, from our address). A greeting names the requester
only when the source's user directory vouches for the name (Ticket.directory_name); `$summary` is "your request"
unless a lead opts in to a neutralised summary, which then reaches customers only in drafts a person approves: the
final check of every automatic message (engine/trust/provenance.py) holds one that carries it.
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


NAME = re.compile(r"[^\W\d_](?:[^\W\d_]|[ '-](?=[^\W\d_])|\.(?= [^\W\d_])){0,39}", re.UNICODE)
"""Letters, single spaces, apostrophes and hyphens, and a dot only before a space ("J. Smith"): never a domain."""
LINK_LIKE = re.compile(r"https?:|www\.|@|\.(?:com|net|org|io|ru|cn|xyz|top|info)\b|\d", re.IGNORECASE)
SUMMARY_WORDS = 12


# The desk's own follow-up questions: what an automatic request for information may ask (our wording), by detail.
GAP_QUESTIONS = {
    "error": "What exact error message or code do you see? A screenshot is welcome.",
    "steps": "What were you doing when it happened: which steps lead to the problem?",
    "since": "Since when does this happen, and did anything change around then (update, new device, move)?",
    "place": "Where are you connecting from (office, home, VPN) and on which device?",
    "account": "Which account (user name) and which application or sign-in page is affected?",
    "mailbox": "Which mailbox and which mail app (Outlook desktop, Outlook on the web, phone)?",
    "device": "Which device is it (model or asset tag) and where is it?",
    "application": "Which application and version, on which computer?",
    "workspace": "Which workspace is it? Its ID is shown under Settings > General.",
    "browser": "Which browser do you use, and does it happen for other users too?",
    "invoice": "Which invoice or subscription is this about (its number or date)?",
    "discrepancy": "What looks wrong on it: which amount, line or detail did you expect to be different?",
    "affected": "Which system or application is affected, and is it only you or other people too?",
}
CATEGORY_DETAILS: dict[str, tuple[str, ...]] = {
    "network": ("error", "since", "place"),
    "access": ("error", "since", "account"),
    "email": ("error", "since", "mailbox"),
    "hardware": ("error", "since", "device"),
    "software": ("error", "steps", "application"),
    "product_bug": ("error", "steps", "workspace", "browser"),
    "product_howto": (),
    "billing": ("invoice", "discrepancy"),
}
"""What a person needs to act on each kind of request, in the order it is asked: an invoice question needs the
invoice and what is wrong on it, never an error message; a how-to question needs nothing more than itself."""
DEFAULT_DETAILS = ("error", "steps", "since", "affected")


def safe_name(name: str | None) -> str:
    """The requester's directory name for a greeting, or "there": even a directory's entry is repeated from our
    address only when it reads as a name, not a long or link-like one ("Re-validate at evil.example")."""
    name = " ".join((name or "").split())
    return name if NAME.fullmatch(name) and len(name.split()) <= 4 else "there"


def neutral_summary(text: str) -> str:
    """An opt-in summary of the customer's subject: no links, addresses, phone numbers or digits, a few words."""
    words = [word for word in text.split() if not LINK_LIKE.search(word)]
    kept = " ".join(re.sub(r"[^\w' -]", "", word, flags=re.UNICODE) for word in words[:SUMMARY_WORDS]).strip()
    return kept or "your request"


def summary_of(subject: str, *, quote_customer: bool) -> str:
    """What `$summary` says in a draft: our words unless a lead opted in to the neutral summary, whose customer words
    hold the draft for a person (engine/trust/provenance.py): quoted, it is never sent automatically."""
    return neutral_summary(subject) if quote_customer else "your request"


SUBJECT_TOPIC = "your request"
SUBJECT_WORDS = ("Re: ", SUBJECT_TOPIC, " [", "]")
"""The pieces of our subject line, for the final check's trusted text."""


def conversation_subject(reference: str, topic: str = SUBJECT_TOPIC) -> str:
    """The one subject of a ticket's conversation: "Re: <topic> [TCKT-n]". Automatic messages never name the
    customer's topic (their words are not ours to repeat); a person's reply may."""
    return f"Re: {' '.join(topic.split()) or SUBJECT_TOPIC} [{reference}]"


SOURCES_LABEL = "Sources: "
PLACEHOLDER = re.compile(r"\$(?:\$|\w+|\{\w+\})")


def acknowledgement(ticket: Ticket, signature: str, overrides: dict[str, str] | None = None) -> EmailContent:
    """The seed's acknowledgement for every new ticket, in the lead's wording when one is saved. It is always sent on
    its own, so it never quotes the customer: `$summary` is "your request" whatever a lead opted in to."""
    text = render(
        "acknowledgement",
        overrides or {},
        name=safe_name(ticket.directory_name),
        reference=ticket.reference,
        summary="your request",
        signature=signature,
    )
    subject = conversation_subject(ticket.reference)
    return EmailContent(subject=subject, body_text=text, body_html=to_html(text))


def template_texts(overrides: dict[str, str]) -> list[str]:
    """Our own wording: the literal text of every template (the defaults and a lead's), cut at its placeholders, and
    the subject lines and labels the builders add: what the final check of an automatic message trusts."""
    templates = [template.template for template in TEMPLATES.values()] + [text for text in overrides.values() if text]
    pieces = [piece for template in templates for piece in PLACEHOLDER.split(template)]
    return [piece for piece in [*pieces, *SUBJECT_WORDS, SOURCES_LABEL, "there"] if piece.strip()]


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
    """Subject and body of a proposed resolution."""
    body = render(
        "resolution",
        overrides,
        name=safe_name(name),
        summary=summary,
        steps=numbered(steps),
        sources=SOURCES_LABEL + "; ".join(sources) if sources else "",
        reference=reference,
        signature=signature,
    )
    return conversation_subject(reference), body


def request_info_email(
    reference: str,
    name: str | None,
    summary: str,
    questions: list[str],
    signature: str,
    overrides: dict[str, str],
) -> tuple[str, str]:
    """Subject and body asking for what is missing."""
    body = render(
        "request_info",
        overrides,
        name=safe_name(name),
        summary=summary,
        questions=numbered(questions),
        reference=reference,
        signature=signature,
    )
    return conversation_subject(reference), body


def to_html(text: str) -> str:
    """A plain-text message as escaped HTML: nothing from a ticket can become markup."""
    paragraphs = "".join(f"<p>{html.escape(part).replace(chr(10), '<br>')}</p>" for part in text.split("\n\n"))
    return f"<!doctype html><html><body>{paragraphs}</body></html>"
