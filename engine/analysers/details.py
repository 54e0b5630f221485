"""What a request for information may ask: the details this kind of request needs (engine/core/templates.py's
CATEGORY_DETAILS) that the customer has not already given.

A detail counts as given when the ticket carries something that reads as it (an id, an error text, a date, an amount,
an attached file for the error); a question the customer already answered tells them nobody read their message.
"""

from __future__ import annotations

import re

from engine.analysers.escalation import DETAIL_SIGNALS
from engine.core.analysis import TicketSnapshot
from engine.core.templates import CATEGORY_DETAILS, DEFAULT_DETAILS, GAP_QUESTIONS
from engine.trust.requests import LANGUAGE_NAMES, requests_of, seeks_information

HOW_TO = re.compile(
    r"\b(how (do|can|to|should)|where (can|do|is)|is (there|it possible)|can (i|we)|what (is|are|does))\b", re.I
)
"""Asking how to do something. Not "can you …": that asks the desk to act ("My calendar is not right. Can you help?",
"can you check?"), and such a request lacks what any fault report lacks."""
HOW_TO_WORDS = 60
"""A how-to question of fewer words lacks nothing: its answer does not depend on the asker's particulars."""

ERROR_SIGNAL, STEPS_SIGNAL, SINCE_SIGNAL, ENVIRONMENT_SIGNAL = DETAIL_SIGNALS
EMAIL_ADDRESS = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
MONTHS = r"jan(uary)?|feb(ruary)?|march|apr(il)?|june?|july?|aug(ust)?|sep(tember)?|oct(ober)?|nov(ember)?|dec(ember)?"
"""Month names that are no common word too ("may", "mar" are left out)."""
DATE = rf"\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b\d{{1,2}}[./]\d{{1,2}}[./]\d{{2,4}}\b|\b({MONTHS})\b"
AMOUNT = r"[$€£]\s?\d|\b\d[\d,.]*\s?(€|\$|£|eur|usd|gbp|chf)\b"
DEVICES = r"laptop|desktop|phone|iphone|android|ipad|tablet|mac|pc|printer|monitor|dock"

GIVEN: dict[str, tuple[re.Pattern[str], ...]] = {
    "error": (
        ERROR_SIGNAL,
        re.compile(r"\b(says|shows|reads|displays|error|message)\b\W{0,3}[\"'“‘][^\"'”’]{3,}[\"'”’]", re.I),
        re.compile(r"\b(error|code|http|status)\s*:?\s*#?\d{3,}\b|\b0x[0-9a-f]{4,}\b", re.I),
    ),
    "steps": (STEPS_SIGNAL,),
    "since": (SINCE_SIGNAL, re.compile(rf"{DATE}|\b(ago|weeks?|days?|months?|hours?)\b", re.I)),
    "place": (re.compile(rf"\b(office|home|vpn|wi-?fi|hotel|remote(ly)?|on site|hotspot|{DEVICES})\b", re.I),),
    "account": (
        re.compile(EMAIL_ADDRESS),
        re.compile(r"\b(user ?name|user id|login|account)\s*[:=#]?\s*[\"'“]?[\w.-]*\d[\w.-]*", re.I),
        re.compile(r"\b(windows|outlook|teams|vpn|sso|portal|citrix|sap|salesforce|jira|laptop|sign-in page)\b", re.I),
    ),
    "mailbox": (
        re.compile(EMAIL_ADDRESS),
        re.compile(r"\b(outlook|owa|mail app|gmail|apple mail|thunderbird|iphone|android|phone)\b", re.I),
    ),
    "device": (
        re.compile(r"\b[A-Z]{2,}-?\d{3,}\b"),
        re.compile(r"\b(thinkpad|latitude|elitebook|surface|macbook|dell|hp|lenovo|canon|brother|xerox|ricoh)\b", re.I),
    ),
    "application": (ENVIRONMENT_SIGNAL,),
    "workspace": (
        re.compile(r"\bws_[a-z0-9]{3,}\b", re.I),
        re.compile(r"\bworkspace\s+[\"'“‘][^\"'”’]{2,}[\"'”’]", re.I),
    ),
    "browser": (
        re.compile(
            r"\b(chrome|firefox|edge|safari|browser|all users|everyone|other users|colleagues|whole team)\b", re.I
        ),
    ),
    "invoice": (
        re.compile(r"\b[A-Z]{2,}(?:-[A-Z]+)*-\d{3,}\b"),
        re.compile(r"\b(invoice|inv|receipt|order)\s*(no\.?|number|#)?\s*[:#]?\s*[\w-]*\d{3,}", re.I),
        re.compile(DATE, re.I),
        re.compile(AMOUNT, re.I),
    ),
    "discrepancy": (
        re.compile(AMOUNT, re.I),
        re.compile(
            r"\b(twice|double|duplicate|seats?|vat|tax|address|plan|refund|overcharged|more than|less than|"
            r"instead of|should be|discount|currency|company name|po number)\b",
            re.I,
        ),
    ),
    "affected": (ENVIRONMENT_SIGNAL,),
}
"""What reads as each detail in a ticket's text."""


def needed_details(category: str | None) -> tuple[str, ...]:
    """The details a person needs for this kind of request, in the order they are asked."""
    return CATEGORY_DETAILS.get(category or "", DEFAULT_DETAILS)


def given(detail: str, text: str, attachments: tuple[str, ...] = ()) -> bool:
    """Whether the customer already gave `detail`: an attached file shows the error as well as a quoted message."""
    if detail == "error" and attachments:
        return True
    return any(pattern.search(text) for pattern in GIVEN[detail])


def asks_to_know(text: str) -> bool:
    """The ticket asks to know something (engine/trust/requests.py's `seeks_information`): "what does the purple
    light mean?", "is there a separate wifi for guests?"."""
    return any(seeks_information(request) for request in requests_of(text, LANGUAGE_NAMES))


def information_gaps(ticket: TicketSnapshot) -> tuple[list[str], list[str]]:
    """What this kind of request still lacks, and the questions that would close it. How-to questions lack nothing,
    and neither does a question of a kind the desk does not know: the general details (error message, steps, since
    when, who is affected) are a fault report's, and asking them of "the light glows purple, what does that
    mean?" or of a question the desk does not handle at all tells the customer nobody read it."""
    text = ticket.text
    if HOW_TO.search(text) and len(text.split()) < HOW_TO_WORDS:
        return [], []
    if not ticket.category and asks_to_know(text):
        return [], []
    missing = [detail for detail in needed_details(ticket.category) if not given(detail, text, ticket.attachments)]
    return missing, [GAP_QUESTIONS[detail] for detail in missing]
