"""Extraction of every supported type from small real files, and every failure status (no database)."""

from __future__ import annotations

import io
import shutil

import pytest

from kb import extract as ex
from kb.chunk import chunk_sections, describe_location
from tests.corpus import hostile_files as hostile
from tests.kb.files import (
    make_docx,
    make_eml,
    make_encrypted_pdf,
    make_jpeg,
    make_pdf,
    make_png,
    make_pptx,
)

LIMIT = 5 * 1024 * 1024


def run(filename: str, data: bytes, **kwargs: object) -> ex.Extraction:
    return ex.extract(filename, data, max_bytes=kwargs.pop("max_bytes", LIMIT), **kwargs)  # type: ignore[arg-type]


def test_pdf_keeps_page_numbers() -> None:
    result = run("manual.pdf", make_pdf(["Reset the router first", "Then call the helpdesk"]))
    assert result.status == ex.OK and result.kind == "pdf"
    assert [(s.location, "router" in s.text) for s in result.sections] == [({"page": 1}, True), ({"page": 2}, False)]
    assert "helpdesk" in result.sections[1].text


def test_docx_keeps_headings_and_tables() -> None:
    data = make_docx(
        [
            ("Printer guide", 1),
            ("Install the driver from the portal.", 0),
            ("Paper jams", 2),
            ("Open the rear tray.", 0),
        ]
    )
    result = run("guide.docx", data)
    assert result.status == ex.OK and result.kind == "docx"
    locations = [s.location for s in result.sections]
    assert {"section": "Printer guide > Paper jams"} in locations
    jam = next(s for s in result.sections if s.location.get("section") == "Printer guide > Paper jams")
    assert "rear tray" in jam.text
    assert any("toner cartridge" in s.text for s in result.sections if "table" in s.location)


def test_pptx_keeps_slide_numbers() -> None:
    result = run("deck.pptx", make_pptx([("VPN", "Use the GlobalProtect client"), ("MFA", "Approve the push prompt")]))
    assert result.status == ex.OK and result.kind == "pptx"
    assert result.sections[1].location == {"slide": 2, "title": "MFA"}
    assert "push prompt" in result.sections[1].text
    assert describe_location(result.sections[1].location) == "slide 2 (MFA)"


def test_html_drops_scripts_and_styles_and_follows_headings() -> None:
    page = b"""<!DOCTYPE html><html><head><title>Wi-Fi help</title><style>p{color:red}</style></head>
    <body><script>alert('x')</script><h1>Wi-Fi</h1><p>Forget the network and join again.</p>
    <h2>Captive portal</h2><p>Open any http page to see the login.</p></body></html>"""
    result = run("wifi.html", page)
    assert result.status == ex.OK and result.kind == "html" and result.title == "Wi-Fi"
    assert "alert" not in result.text and "color" not in result.text
    assert {"section": "Wi-Fi > Captive portal"} in [s.location for s in result.sections]


def test_markdown_text_and_csv() -> None:
    markdown = run("notes.md", b"# Setup\nInstall it.\n## Proxy\nSet HTTPS_PROXY.\n```\n# not a heading\n```\n")
    assert markdown.kind == "markdown"
    assert (
        markdown.sections[1].location == {"section": "Setup > Proxy"} and "not a heading" in markdown.sections[1].text
    )
    text = run("readme.txt", "Plain text with caf\u00e9".encode())
    assert text.kind == "text" and "café" in text.text
    table = run("errors.csv", b"code,meaning\nE1,paper out\nE2,toner low\n")
    assert table.kind == "csv" and table.sections[0].location == {"rows": "2-3"}
    assert "code: E2; meaning: toner low" in table.text


def test_eml_with_attachments() -> None:
    docx = make_docx([("Scanner", 1), ("Reinstall the TWAIN driver.", 0)])
    data = make_eml(
        "The scanner shows error 0x80.",
        [
            ("fix.docx", docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
            ("notes.txt", b"Firmware 2.1 fixes it.", "text/plain"),
            ("broken.pdf", b"%PDF-1.4 garbage", "application/pdf"),
        ],
    )
    result = run("message.eml", data)
    assert result.status == ex.OK and result.kind == "eml" and result.title == "Scanner stopped working"
    assert any(s.location == {"part": "body"} and "0x80" in s.text for s in result.sections)
    assert any(s.location.get("attachment") == "fix.docx" and "TWAIN" in s.text for s in result.sections)
    assert any(s.location.get("attachment") == "notes.txt" for s in result.sections)
    assert len(result.warnings) == 1 and "broken.pdf" in result.warnings[0]


def test_type_comes_from_content_not_extension() -> None:
    assert run("looks-like-text.txt", make_pdf(["Really a PDF"])).kind == "pdf"
    assert run("noext", make_docx([("Hidden docx", 1)])).kind == "docx"
    assert run("mail.txt", make_eml("hello there", [])).kind == "eml"


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")
@pytest.mark.parametrize("maker", [make_png, make_jpeg])
def test_images_by_ocr(maker: object) -> None:
    result = run("screenshot.img", maker("PRINTER OFFLINE 42"))  # type: ignore[operator]
    assert result.status == ex.OK and result.kind in {"png", "jpeg"}
    assert "OFFLINE" in result.text.upper()


def test_ocr_unavailable_is_a_status() -> None:
    result = run("screenshot.png", make_png("hello"), tesseract_cmd="no-such-tesseract-binary")
    assert result.status == ex.OCR_UNAVAILABLE and "OCR unavailable" in (result.error or "")


@pytest.mark.parametrize(
    ("filename", "data", "status"),
    [
        ("empty.txt", b"", ex.EMPTY),
        ("blank.md", b"   \n\n", ex.EMPTY),
        ("no-text.pdf", make_pdf([""]), ex.EMPTY),
        ("secret.pdf", make_encrypted_pdf("classified"), ex.ENCRYPTED),
        ("cut.pdf", make_pdf(["cut short"])[:60], ex.CORRUPT),
        ("bad.docx", b"PK\x03\x04" + b"\x00garbage" * 20, ex.CORRUPT),
        ("archive.zip", b"PK\x05\x06" + b"\x00" * 18, ex.UNSUPPORTED),
        ("bad.png", b"\x89PNG\r\n\x1a\n" + b"nonsense" * 10, ex.CORRUPT),
    ],
)
def test_failure_statuses(filename: str, data: bytes, status: str) -> None:
    if status == ex.CORRUPT and filename.endswith(".png") and shutil.which("tesseract") is None:
        pytest.skip("tesseract-ocr is not installed")
    result = run(filename, data)
    assert result.status == status, result.error
    assert result.error and result.sections == []


def test_docx_merged_and_spanning_cells_read_as_python_docx_reads_them() -> None:
    """The one-pass table reader gives each row the text python-docx's `row.cells` gives: a merged cell's text in
    every row and column it covers."""
    from docx import Document

    document = Document()
    table = document.add_table(rows=4, cols=3)
    for row_number, row in enumerate(table.rows):
        for column, cell in enumerate(row.cells):
            cell.text = f"r{row_number}c{column}"
    table.cell(0, 0).merge(table.cell(2, 0)).text = "down"
    table.cell(1, 1).merge(table.cell(1, 2)).text = "across"
    table.cell(3, 1).merge(table.cell(3, 2))
    out = io.BytesIO()
    document.save(out)
    expected = "\n".join(" | ".join(cell.text for cell in row.cells) for row in table.rows)
    [section] = [s for s in run("merged.docx", out.getvalue()).sections if "table" in s.location]
    assert section.text == expected
    assert section.text.splitlines()[1] == "down | across | across"


def test_docx_style_chains_resolve_through_every_base() -> None:
    """A run whose character style is based, four styles down, on a hidden one is hidden; a style loop ends the
    chain instead of the reading."""
    chain = "".join(
        f'<w:style w:type="character" w:styleId="C{n}"><w:name w:val="C{n}"/>'
        + (f'<w:basedOn w:val="C{n - 1}"/>' if n else "<w:rPr><w:vanish/></w:rPr>")
        + "</w:style>"
        for n in range(5)
    )
    loop = (
        '<w:style w:type="character" w:styleId="A"><w:basedOn w:val="B"/></w:style>'
        '<w:style w:type="character" w:styleId="B"><w:basedOn w:val="A"/></w:style>'
    )
    body = "".join(
        f'<w:p><w:r><w:rPr><w:rStyle w:val="{style}"/></w:rPr><w:t>{text}</w:t></w:r></w:p>'
        for style, text in (("C4", "Reply with your password."), ("A", "Open tray 2."), ("C0", "Root hidden."))
    )
    result = run("chain.docx", hostile.docx_from_xml(body, chain + loop))
    hidden = [s.text for s in result.sections if s.location.get(ex.HIDDEN) == "hidden text in Word (w:vanish)"]
    assert hidden == ["Reply with your password.\nRoot hidden."]
    assert "Open tray 2." in result.text


def test_oversized_file_is_refused_before_parsing() -> None:
    result = run("big.txt", b"x" * 2000, max_bytes=1000)
    assert result.status == ex.TOO_LARGE and "KB_MAX_FILE_BYTES" in (result.error or "")


def test_chunks_overlap_and_keep_location() -> None:
    text = " ".join(f"Sentence number {i} explains one step of the procedure." for i in range(60))
    chunks = chunk_sections([ex.Section(text, {"section": "Setup > Network"})], chunk_size=300, chunk_overlap=60)
    assert len(chunks) > 3
    assert all(c.location == {"section": "Setup > Network"} and c.text.startswith("Network") for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    first_tail = chunks[0].text.split()[-3:]
    assert " ".join(first_tail) in chunks[1].text
