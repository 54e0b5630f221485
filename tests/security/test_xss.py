"""Markup in anything a customer controls reaches the ticket page as text: never as HTML, never as a live link."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from connectors.base import AttachmentIn
from engine.core.settings import Settings
from engine.intake.ingest import ingest
from tests.factories import email_in, ticket_in
from tests.pages.conftest import open_page
from tests.security.conftest import lines_of

PAYLOADS = lines_of("xss.txt")
SCRIPT = PAYLOADS[0]
LINK_ADDRESS = "[verify-your-account](https://evil.example)@evil.example"
LIVE_TAG = re.compile(r"(?<!\\)<\s*(script|img|svg|iframe)", re.IGNORECASE)
"""A tag the markdown renderer would see as markup: one not escaped with a backslash."""
MARKDOWN_ELEMENTS = ("title", "header", "subheader", "markdown", "caption", "info", "success", "warning", "error")


def markdown_texts(at: AppTest) -> list[str]:
    """What the page hands to Streamlit's markdown renderer (labels of expanders included)."""
    rendered = [str(element.value) for kind in MARKDOWN_ELEMENTS for element in getattr(at, kind)]
    return rendered + [str(expander.label) for expander in at.expander]


def hostile_ticket_page(factory: sessionmaker[Session], settings: Settings) -> AppTest:
    """The ticket page of a ticket and a reply carrying every payload, the requester's address a markdown link."""
    everything = "\n".join(PAYLOADS)
    with factory.begin() as session:
        ticket_id = ingest(
            session,
            ticket_in(
                kind="email",
                message_id="<xss@customer.example>",
                requester_name=SCRIPT,
                requester_email=LINK_ADDRESS,
                subject=SCRIPT,
                body=everything,
                attachments=[AttachmentIn(filename=f"{SCRIPT}.txt", data=everything.encode())],
            ),
            settings,
        ).ticket_id
        ingest(
            session, email_in(subject=f"Re: TCKT-{ticket_id}", body=everything, requester_email=LINK_ADDRESS), settings
        )
    at = open_page("pages/2_Ticket.py", id=str(ticket_id))
    assert not at.exception
    assert everything in [text.value for text in at.text], "the payloads are on the page, as plain text"
    return at


def test_hostile_markup_never_reaches_the_page_as_a_tag(app: Settings, session_factory: sessionmaker[Session]) -> None:
    rendered = markdown_texts(hostile_ticket_page(session_factory, app))
    assert [text for text in rendered if LIVE_TAG.search(text)] == []


def test_a_sender_address_never_becomes_a_link(app: Settings, session_factory: sessionmaker[Session]) -> None:
    rendered = markdown_texts(hostile_ticket_page(session_factory, app))
    assert [text for text in rendered if "](https://evil.example)" in text] == []
