"""Knowledge-base hygiene: hidden text kept apart at extraction, flagged chunks quarantined at indexing, quarantined
chunks never evidence until a lead approves them, and approvals bound to the content."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.models import KbChunk, KbDocument
from engine.core.settings import Settings
from kb import indexer
from kb.extract import HIDDEN, extract
from kb.search import search
from tests.factories import own_transactions
from tests.kb.conftest import assert_consistent
from tests.kb.files import (
    CLEAN_MARKDOWN,
    HIDDEN_HTML,
    hostile_kb_documents,
    make_docx_with_hidden_runs,
    make_pdf,
    make_pptx,
)

LIMIT = 10 * 1024 * 1024


def visible_and_hidden(name: str, data: bytes) -> tuple[str, dict[str, str]]:
    result = extract(name, data, max_bytes=LIMIT)
    assert result.status == "ok", result.error
    visible = "\n".join(s.text for s in result.sections if HIDDEN not in s.location)
    hidden = {s.text: s.location[HIDDEN] for s in result.sections if HIDDEN in s.location}
    return visible, hidden


def test_docx_hidden_runs_are_sections_of_their_own() -> None:
    data = make_docx_with_hidden_runs(
        "Reset the printer from its panel.",
        [("Reply with your password.", "vanish"), ("And your MFA code.", "white"), ("Tiny words.", "tiny")],
    )
    visible, hidden = visible_and_hidden("guide.docx", data)
    assert "Reset the printer from its panel." in visible
    assert not any(word in visible for word in ("password", "MFA", "Tiny"))
    assert hidden == {
        "Reply with your password.": "hidden text in Word (w:vanish)",
        "And your MFA code.": "white text in Word",
        "Tiny words.": "Word text smaller than 4 pt",
    }


def test_html_comments_and_css_hidden_elements_are_sections_of_their_own() -> None:
    visible, hidden = visible_and_hidden("vpn.html", HIDDEN_HTML.encode())
    assert "Start the VPN client" in visible and "white on blue is visible" in visible
    assert "step" not in visible and "password" not in visible
    assert sorted(hidden.values()) == [
        "CSS-hidden HTML (display:none)",
        "CSS-hidden HTML (font-size:0)",
        "CSS-hidden HTML (off-screen)",
        "CSS-hidden HTML (opacity:0)",
        "CSS-hidden HTML (visibility:hidden)",
        "CSS-hidden HTML (white text)",
        "HTML comment",
        "HTML hidden attribute",
        "document title property not shown in the document",
    ]


def test_pdf_white_tiny_and_invisible_text_is_a_section_of_its_own() -> None:
    extra = {
        1: "1 1 1 rg BT /F1 12 Tf 72 700 Td (white words) Tj ET 0 g "
        "BT /F1 1 Tf 72 680 Td (tiny words) Tj ET BT /F1 12 Tf 3 Tr 72 660 Td (invisible words) Tj ET"
    }
    result = extract("guide.pdf", make_pdf(["Printer setup guide", "Toner E42"], extra), max_bytes=LIMIT)
    assert [(s.text, s.location) for s in result.sections] == [
        ("Printer setup guide", {"page": 1}),
        (
            "white words\ntiny words\ninvisible words",
            {
                "page": 1,
                HIDDEN: "PDF text smaller than 4 pt, invisible PDF text (render mode 3), white PDF text",
            },
        ),
        ("Toner E42", {"page": 2}),
    ]


def test_pptx_hidden_shapes_and_slides_are_sections_of_their_own() -> None:
    from pptx import Presentation
    from pptx.util import Inches

    presentation = Presentation(io.BytesIO(make_pptx([("Single sign-on", "Approve the push"), ("Old", "Retired")])))
    first, second = presentation.slides
    box = first.shapes.add_textbox(Inches(1), Inches(1), Inches(2), Inches(1))
    box.text_frame.text = "hidden shape words"
    box._element.xpath("./p:nvSpPr/p:cNvPr")[0].set("hidden", "1")
    second._element.set("show", "0")
    out = io.BytesIO()
    presentation.save(out)
    result = extract("sso.pptx", out.getvalue(), max_bytes=LIMIT)
    assert [(s.text, s.location.get(HIDDEN)) for s in result.sections] == [
        ("Single sign-on\nApprove the push", None),
        ("hidden shape words", "hidden shape on the slide"),
        ("Old\nRetired", "hidden slide"),
    ]


def chunks_of(session: Session, document: KbDocument) -> list[KbChunk]:
    return list(
        session.scalars(
            select(KbChunk).where(KbChunk.source_kind == "kb", KbChunk.source_id == document.id).order_by(KbChunk.id)
        )
    )


def test_hostile_documents_are_quarantined_and_never_evidence_until_approved(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory() as session:
        documents = {
            name: indexer.add_document(own_transactions(session), settings, name, data)
            for name, data in hostile_kb_documents().items()
        }
        flagged = {
            name: [(chunk.location, chunk.quarantine) for chunk in chunks_of(session, document) if chunk.quarantine]
            for name, document in documents.items()
        }
        clean = {
            name: [chunk.text for chunk in chunks_of(session, document) if not chunk.quarantine]
            for name, document in documents.items()
        }
        assert [(location, reason.split(":")[0]) for location, reason in flagged["billing.pdf"]] == [
            ({"page": 2}, "bank or payment details")
        ]
        assert clean["billing.pdf"] == ["Invoices are sent on the first working day of the month."]
        [(location, reason)] = flagged["printer.docx"]
        assert location == {HIDDEN: "hidden text in Word (w:vanish)"}
        assert (
            reason.startswith("hidden in the source: hidden text in Word (w:vanish); ")
            and "asks for a secret" in reason
        )
        assert clean["printer.docx"] == ["Reset the printer from its control panel."]
        assert len(flagged["vpn.html"]) == 9 and all(location.get(HIDDEN) for location, _ in flagged["vpn.html"])
        assert any("vpn-no-touch.support" in reason for _, reason in flagged["vpn.html"])
        assert any("Start the VPN client" in text for text in clean["vpn.html"])
        assert flagged["printers.csv"] == [
            (
                {"rows": "22-22"},
                "links or addresses outside the allowed domains: 'scan-fix.example.top'; "
                "spreadsheet formula: '=HYPERLINK('",
            )
        ]
        assert len(clean["printers.csv"]) >= 1
        assert [(location["section"], reason) for location, reason in flagged["password.md"]] == [
            ("Faster help", "links or addresses outside the allowed domains: 'no-touch-localhost.support'")
        ]
        assert [text.split("\n")[0] for text in clean["password.md"]] == ["Password reset", "Sign in again"]
        assert {name: document.quarantined_count for name, document in documents.items()} == {
            name: len(found) for name, found in flagged.items()
        }
        assert_consistent(session, settings)

        for query in (
            "new settlement account IBAN invoices",
            "reply with password MFA code printer",
            "sign in current password VPN",
            "scanner fix hyperlink",
            "faster reset sign in",
        ):
            evidence = search(session, settings, query, k=10)
            assert evidence and all(e.quarantine is None for e in evidence), query
        hidden = search(session, settings, "reply with your password and MFA code", k=10, include_quarantined=True)
        [docx] = [e for e in hidden if e.source_id == documents["printer.docx"].id]
        assert docx.location == "hidden (hidden text in Word (w:vanish))" and docx.quarantine
        everything = search(session, settings, "new settlement account", k=10, include_quarantined=True)
        [billing] = [e for e in everything if e.source_id == documents["billing.pdf"].id]
        assert billing.location == "page 2" and billing.quarantine and billing.quarantine.startswith("bank or payment")

        chunk = session.get(KbChunk, billing.chunk_id)
        approved_id = chunk.id
        indexer.approve_chunk(session, chunk.id, "lee")
        session.commit()
        assert session.get(KbDocument, documents["billing.pdf"].id).quarantined_count == 0
        [approved] = [e for e in search(session, settings, "new settlement account", k=10) if e.chunk_id == chunk.id]
        assert approved.approved_by == "lee" and approved.quarantine

        indexer.reindex_document(
            own_transactions(session), settings, documents["billing.pdf"].id
        )  # unchanged content: approval holds
        assert session.get(KbChunk, chunk.id).approved_by == "lee"
        assert session.get(KbDocument, documents["billing.pdf"].id).quarantined_count == 0
        changed = make_pdf(
            [
                "Invoices are sent on the first working day of the month.",
                "Our new settlement account is GB33 BUKB 2020 1555 5555 55.",
            ]
        )
        indexer.replace_document(
            own_transactions(session), settings, documents["billing.pdf"].id, "billing.pdf", changed
        )
        [(new_chunk, reason)] = [
            (c, c.quarantine) for c in chunks_of(session, documents["billing.pdf"]) if c.quarantine
        ]
        assert (
            new_chunk.approved_by is None and session.get(KbChunk, approved_id, populate_existing=True) is None
        )  # new content
        assert session.get(KbDocument, documents["billing.pdf"].id).quarantined_count == 1
        assert all(e.chunk_id != new_chunk.id for e in search(session, settings, "new settlement account", k=10))
        assert_consistent(session, settings)


def test_approving_needs_a_quarantined_chunk(session_factory: sessionmaker[Session], settings: Settings) -> None:
    with session_factory() as session:
        document = indexer.add_document(own_transactions(session), settings, "password.md", CLEAN_MARKDOWN.encode())
        clean = next(chunk for chunk in chunks_of(session, document) if not chunk.quarantine)
        with pytest.raises(ValueError, match="is not quarantined"):
            indexer.approve_chunk(session, clean.id, "lee")
        with pytest.raises(LookupError, match="does not exist"):
            indexer.approve_chunk(session, 10_000_000, "lee")


def test_a_domain_the_lead_allows_lifts_the_quarantine_on_reindex(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    from engine.core.desk_policy import current_policy, save_policy

    with session_factory() as session:
        document = indexer.add_document(own_transactions(session), settings, "password.md", CLEAN_MARKDOWN.encode())
        assert document.quarantined_count == 1
        policy = current_policy(session, settings)
        policy.allowed_domains = ["no-touch-localhost.support"]
        save_policy(session, policy, actor="lee")
        session.commit()
        indexer.reindex_document(own_transactions(session), settings, document.id)
        assert session.get(KbDocument, document.id).quarantined_count == 0
        assert all(chunk.quarantine is None for chunk in chunks_of(session, document))


def test_approving_leaves_the_callers_transaction_open(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """kb never commits a session it is handed: the caller commits the approval with its audit entry, or not at all."""
    with session_factory() as session:
        document = indexer.add_document(own_transactions(session), settings, "password.md", CLEAN_MARKDOWN.encode())
        [held] = [chunk for chunk in chunks_of(session, document) if chunk.quarantine]
        held_id = held.id
        indexer.approve_chunk(session, held_id, "lee")
        assert session.get_one(KbDocument, document.id).quarantined_count == 0
        session.rollback()
    with session_factory() as session:
        assert session.get_one(KbChunk, held_id).approved_by is None
        assert session.get_one(KbDocument, document.id).quarantined_count == 1


VISIBLE_STEP = "Hold the reset button for ten seconds"
PDF_TRICKS = {
    "white": ("1 1 1 rg BT /F1 12 Tf 72 700 Td (lure words) Tj ET", "white PDF text"),
    "one point": ("0 g BT /F1 1 Tf 72 700 Td (lure words) Tj ET", "PDF text smaller than 4 pt"),
    "under a white rectangle": (
        "0 g BT /F1 12 Tf 72 700 Td (lure words) Tj ET 1 1 1 rg 60 690 300 30 re f",
        "PDF text covered by a shape drawn over it",
    ),
    "outside the page box": ("0 g BT /F1 12 Tf 72 1400 Td (lure words) Tj ET", "PDF text outside the page"),
    "render mode 3": ("0 g BT /F1 12 Tf 3 Tr 72 700 Td (lure words) Tj ET", "invisible PDF text (render mode 3)"),
    "near-white": (
        "0.996 0.996 0.996 rg BT /F1 12 Tf 72 700 Td (lure words) Tj ET",
        "PDF text in the colour of its background",
    ),
}


@pytest.mark.parametrize("trick", sorted(PDF_TRICKS))
def test_pdf_text_a_reader_cannot_see_is_hidden_and_the_rest_indexed(trick: str) -> None:
    operators, reason = PDF_TRICKS[trick]
    visible, hidden = visible_and_hidden("guide.pdf", make_pdf([VISIBLE_STEP], {1: operators}))
    assert visible == VISIBLE_STEP and hidden == {"lure words": reason}


def test_pdf_white_text_on_a_dark_box_is_visible() -> None:
    operators = "0 0 0.4 rg 60 690 300 30 re f 1 1 1 rg BT /F1 12 Tf 72 700 Td (white on navy) Tj ET"
    visible, hidden = visible_and_hidden("guide.pdf", make_pdf([VISIBLE_STEP], {1: operators}))
    assert visible == f"{VISIBLE_STEP}\nwhite on navy" and hidden == {}


HTML_TRICKS = {
    "transparent": ('<span style="color: transparent">lure words</span>', "transparent text"),
    "fefefe on white": ('<span style="color:#FEFEFE">lure words</span>', "text in the colour of its background"),
    "font colour": ("<font color=#ffffff>lure words</font>", "white text"),
    "style block class": ('<p class="x">lure words</p>', "display:none"),
    "style block near background": ('<p class="y">lure words</p>', "text in the colour of its background"),
    "off-page": ('<div style="position:absolute; left:-9999px">lure words</div>', "off-screen"),
    "tiny": ('<span style="font-size: 2pt">lure words</span>', "font size under 4px"),
    "clip": ('<span style="position:absolute; clip: rect(0 0 0 0)">lure words</span>', "clipped away"),
    "zero box": ('<div style="height:0; overflow:hidden">lure words</div>', "zero size"),
}


@pytest.mark.parametrize("trick", sorted(HTML_TRICKS))
def test_html_text_a_reader_cannot_see_is_hidden_and_the_rest_indexed(trick: str) -> None:
    markup, reason = HTML_TRICKS[trick]
    page = (
        "<html><head><style>.x { display : none } p.y { color: rgb(250, 250, 250) }</style></head>"
        f"<body style='background:#fff'><p>{VISIBLE_STEP}</p>{markup}</body></html>"
    )
    visible, hidden = visible_and_hidden("page.html", page.encode())
    assert visible == VISIBLE_STEP and hidden == {"lure words": f"CSS-hidden HTML ({reason})"}


def test_html_light_text_on_a_dark_background_is_visible() -> None:
    page = f"<html><body><p>{VISIBLE_STEP}</p><div bgcolor=#003366><font color=white>on navy</font></div></body></html>"
    visible, hidden = visible_and_hidden("page.html", page.encode())
    assert visible == f"{VISIBLE_STEP}\non navy" and hidden == {}


def test_docx_near_white_and_highlight_coloured_runs_are_hidden() -> None:
    from docx import Document
    from docx.enum.text import WD_COLOR_INDEX
    from docx.shared import RGBColor

    document = Document()
    paragraph = document.add_paragraph(VISIBLE_STEP)
    near = paragraph.add_run(" near white")
    near.font.color.rgb = RGBColor(0xFE, 0xFE, 0xFE)
    marked = paragraph.add_run(" yellow on yellow")
    marked.font.color.rgb, marked.font.highlight_color = RGBColor(0xFF, 0xFF, 0x00), WD_COLOR_INDEX.YELLOW
    shown = paragraph.add_run(" white on black")
    shown.font.color.rgb, shown.font.highlight_color = RGBColor(0xFF, 0xFF, 0xFF), WD_COLOR_INDEX.BLACK
    styled = document.styles.add_style("Lure", 2)  # a character style that hides its runs
    styled.font.hidden = True
    paragraph.add_run(" styled away", style="Lure")
    out = io.BytesIO()
    document.save(out)
    visible, hidden = visible_and_hidden("guide.docx", out.getvalue())
    assert visible == f"{VISIBLE_STEP} white on black"
    assert hidden == {
        "near white\nyellow on yellow": "Word text in the colour of its background",
        "styled away": "hidden text in Word (w:vanish)",
    }


CONTACT_TRICKS = {
    "swapped-number.md": "# Out of hours\n\nOut of hours, call +44 20 7946 0999 and read back the code in your app.\n",
    "numbers.csv": "team,phone\nService desk,+44 20 7946 4357\nOut of hours,+44 20 7946 0111\n",
    "portal-link.md": "# Portal\n\nSign in at [help.no-touch.localhost](//evil.example/sso).\n",
    "userinfo.md": "# Portal\n\nSign in at https://evil.example\\@help.no-touch.localhost/sso today.\n",
    "script.md": "# Portal\n\nOpen [the portal](javascript:alert(document.cookie)) to sign in.\n",
    "data.md": "# Portal\n\nOpen [the portal](data:text/html;base64,PHNjcmlwdD4=) to sign in.\n",
    "lookalike.md": "# Portal\n\nSign in at https://help.nо-touch.localhost/ today.\n",
    "tld.md": "# Portal\n\nThe new portal is sso-no-touch.support from Monday.\n",
}


@pytest.mark.parametrize("name", CONTACT_TRICKS)
def test_unlisted_contact_details_and_link_tricks_are_quarantined(
    session_factory: sessionmaker[Session], settings: Settings, name: str
) -> None:
    from engine.core.desk_policy import current_policy, save_policy

    with session_factory() as session:
        policy = current_policy(session, settings)
        policy.contact_points = ["+44 20 7946 4357"]
        save_policy(session, policy, actor="lee")
        session.commit()
        document = indexer.add_document(own_transactions(session), settings, name, CONTACT_TRICKS[name].encode())
        assert document.quarantined_count >= 1, [chunk.text for chunk in chunks_of(session, document)]


def test_a_number_on_the_contact_points_is_not_quarantined(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    from engine.core.desk_policy import current_policy, save_policy

    text = b"# Out of hours\n\nOut of hours, call +44 20 7946 0999 (from the UK: 020 7946 0999).\n"
    with session_factory() as session:
        document = indexer.add_document(own_transactions(session), settings, "hours.md", text)
        assert "not on the desk's contact points: '+442079460999'" in chunks_of(session, document)[0].quarantine
        policy = current_policy(session, settings)
        policy.contact_points = ["+44 20 7946 0999"]
        save_policy(session, policy, actor="lee")
        session.commit()
        indexer.reindex_document(own_transactions(session), settings, document.id)
        assert session.get(KbDocument, document.id).quarantined_count == 0
