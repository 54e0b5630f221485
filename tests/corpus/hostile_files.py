"""Hostile files built by code: small files that cost a parser time or memory far beyond their size.

Each builder returns bytes (nothing is committed); `HOSTILE_FILES` names one case per attack and format that
kb/extract.py reads. The readers at the end stand in for kb.extract.extract in kb/sandbox.py's child: one never
returns (so a test proves the kill), one hoards memory, one answers with a malformed extraction.
"""

from __future__ import annotations

import io
import itertools
import os
import signal
import subprocess
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.kb.files import pdf_from_objects, pdf_stream

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
FILLER = "Reset the printer from its control panel and wait for the green light."
_serial = itertools.count()


def _office_zip(parts: dict[str, str | bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return out.getvalue()


def docx_from_xml(body: str, styles: str = "") -> bytes:
    """A minimal DOCX: the given `w:body` content and, when given, a styles part."""
    content_types = (
        f'{XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/word/document.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>'
        + (
            '<Override PartName="/word/styles.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.styles+xml"/>'
            if styles
            else ""
        )
        + "</Types>"
    )
    relationships = (
        f'{XML}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
        'officeDocument" Target="word/document.xml"/></Relationships>'
    )
    document_relationships = (
        f'{XML}<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        + (
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'styles" Target="styles.xml"/>'
            if styles
            else ""
        )
        + "</Relationships>"
    )
    parts: dict[str, str | bytes] = {
        "[Content_Types].xml": content_types,
        "_rels/.rels": relationships,
        "word/_rels/document.xml.rels": document_relationships,
        "word/document.xml": f'{XML}<w:document xmlns:w="{W_NS}"><w:body>{body}</w:body></w:document>',
    }
    if styles:
        parts["word/styles.xml"] = f'{XML}<w:styles xmlns:w="{W_NS}">{styles}</w:styles>'
    return _office_zip(parts)


def docx_style_bomb(styles: int = 20_000, paragraphs: int = 2_000, runs: int = 5) -> bytes:
    """The attacker's file (about 140 KB): `styles` styles, each based on the one before (one long chain), and
    `paragraphs` paragraphs whose runs each name a different style. Reading `paragraph.style`/`run.style` per run
    scans every style each time; resolving `w:basedOn` per style without memoising the chain is quadratic too."""
    definitions = "".join(
        f'<w:style w:type="{"paragraph" if number % 2 else "character"}" w:styleId="S{number}">'
        f'<w:name w:val="Style {number}"/>'
        + (f'<w:basedOn w:val="S{number - 2}"/>' if number >= 2 else "")
        + (f'<w:rPr><w:sz w:val="{20 + number % 7}"/></w:rPr>' if number % 50 == 0 else "")
        + "</w:style>"
        for number in range(styles)
    )
    body = "".join(
        f'<w:p><w:pPr><w:pStyle w:val="S{(2 * number + 1) % styles}"/></w:pPr>'
        + "".join(
            f'<w:r><w:rPr><w:rStyle w:val="S{(2 * (number * runs + run)) % styles}"/></w:rPr>'
            f'<w:t xml:space="preserve">{"Word " if run else ""}{number}.{run} </w:t></w:r>'
            for run in range(runs)
        )
        + "</w:p>"
        for number in range(paragraphs)
    )
    return docx_from_xml(body, definitions)


def docx_nested_tables(depth: int = 200) -> bytes:
    """A table in a cell of a table, `depth` deep (under lxml's default depth limit, so it parses)."""
    inner = f"<w:p><w:r><w:t>{FILLER}</w:t></w:r></w:p>"
    for _ in range(depth):
        inner = f"<w:tbl><w:tr><w:tc>{inner}<w:p/></w:tc></w:tr></w:tbl>"
    return docx_from_xml(inner + f"<w:p><w:r><w:t>{FILLER}</w:t></w:r></w:p>")


def docx_merged_rows(rows: int = 3_000) -> bytes:
    """A table whose one column is a single vertically merged cell over `rows` rows: python-docx's `row.cells`
    walks up to the first row for every row (quadratic, and recursive)."""
    first = f'<w:tr><w:tc><w:tcPr><w:vMerge w:val="restart"/></w:tcPr><w:p><w:r><w:t>{FILLER}</w:t></w:r></w:p></w:tc>'
    cell = "<w:tc><w:p><w:r><w:t>row</w:t></w:r></w:p></w:tc></w:tr>"
    rest = "<w:tr><w:tc><w:tcPr><w:vMerge/></w:tcPr><w:p/></w:tc>" + cell
    grid = "<w:tblGrid><w:gridCol/><w:gridCol/></w:tblGrid>"
    return docx_from_xml(f"<w:tbl>{grid}{first}{cell}{rest * (rows - 1)}</w:tbl>")


def pdf_operation_bomb(operations: int = 300_000) -> bytes:
    """A 20 KB PDF (one compressed content stream) with `operations` text-showing operations on one page, each
    line a little to the right of the one it overwrites, so the page holds millions of distinct characters."""
    cycle = b"(abcdefgh) Tj 0 -7 Td " * 100 + b"0.15 700 Td "
    content = zlib.compress(b"BT /F1 6 Tf 20 750 Td " + cycle * (operations // 100) + b"ET", 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    return pdf_from_objects(objects)


def pdf_nested_forms(depth: int = 2_000) -> bytes:
    """Form XObjects each drawing the next, `depth` deep, the innermost showing text."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /XObject << /X0 5 0 R >> >> "
        b"/Contents 4 0 R >>",
        pdf_stream(b"/X0 Do"),
    ]
    font = 5 + depth
    for level in range(depth):
        number = 5 + level
        if level + 1 < depth:
            resources = b"<< /XObject << /X%d %d 0 R >> >>" % (level + 1, number + 1)
            body = b"/X%d Do" % (level + 1)
        else:
            resources = b"<< /Font << /F1 %d 0 R >> >>" % font
            body = b"BT /F1 12 Tf 72 720 Td (" + FILLER.encode() + b") Tj ET"
        objects.append(
            b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources %s /Length %d >>\nstream\n%s\nendstream"
            % (resources, len(body), body)
        )
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return pdf_from_objects(objects)


def html_deep_nesting(levels: int = 100_000) -> bytes:
    """`levels` nested elements, each carrying a style the computed-style pass has to inherit."""
    return (
        "<html><head><title>Printer</title></head><body>"
        + '<div style="color:#333">' * levels
        + FILLER
        + "</div>" * levels
        + "</body></html>"
    ).encode()


def pptx_nested_groups(depth: int = 200) -> bytes:
    """One slide whose shape is a group in a group ..., `depth` deep."""
    from pptx import Presentation

    presentation = Presentation()
    slide = presentation.slides.add_slide(presentation.slide_layouts[6])
    shapes: Any = slide.shapes
    for _ in range(depth):
        shapes = shapes.add_group_shape().shapes
    shapes.add_textbox(0, 0, 100, 100).text_frame.text = FILLER
    slide.shapes.add_textbox(0, 0, 100, 100).text_frame.text = FILLER
    out = io.BytesIO()
    presentation.save(out)
    return out.getvalue()


def eml_nested_messages(depth: int = 500) -> bytes:
    """An e-mail carrying an e-mail carrying an e-mail ..., `depth` deep, each with a line of text (7-bit, so each
    level adds a few hundred bytes, not a third)."""
    message = f"Subject: innermost\r\nContent-Type: text/plain\r\n\r\n{FILLER}\r\n"
    for level in range(depth):
        message = (
            "From: a@customer.example\r\nTo: support@example.com\r\n"
            f"Subject: level {level}\r\nDate: Mon, 01 Jan 2024 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="m{level}"\r\n\r\n'
            f"--m{level}\r\nContent-Type: text/plain\r\n\r\n{FILLER}\r\n"
            f"--m{level}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: 7bit\r\n"
            f'Content-Disposition: attachment; filename="fwd.eml"\r\n\r\n{message}\r\n--m{level}--\r\n'
        )
    return message.encode()


def eml_deep_multipart(depth: int = 5_000) -> bytes:
    """One message whose MIME tree is `depth` multiparts deep (the parser recurses per level)."""
    head = (
        "From: a@customer.example\r\nTo: support@example.com\r\nSubject: deep\r\n"
        "Date: Mon, 01 Jan 2024 09:00:00 +0000\r\nMIME-Version: 1.0\r\n"
    )
    body = f"Content-Type: text/plain\r\n\r\n{FILLER}\r\n"
    for level in reversed(range(depth)):
        body = f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n{body}\r\n--b{level}--\r\n'
    return (head + body).encode()


def markdown_deep_nesting(levels: int = 20_000) -> bytes:
    """Block quotes and lists nested `levels` deep on one line each."""
    line = b" - " + FILLER.encode() + b"\n"
    return b"# Printer\n\n" + b"".join(b">" * (number % 200) + line for number in range(levels))


def csv_wide(columns: int = 50_000, rows: int = 20) -> bytes:
    """A few rows of `columns` columns each: every row becomes `column: value` pairs."""
    header = ",".join(f"c{n}" for n in range(columns))
    return ("\n".join([header] + [",".join("x" * 8 for _ in range(columns)) for _ in range(rows)])).encode()


def huge_text(characters: int = 12_000_000) -> bytes:
    """Plain text longer than the extraction's text cap (and under the file-size limit)."""
    line = (FILLER + "\n").encode()
    return line * (characters // len(line) + 1)


def png_pixel_bomb(side: int = 30_000) -> bytes:
    """A white PNG of `side` x `side` pixels (900 megapixels) in about 1 MB: OCR would have to decode it all.

    One block of rows is deflated once and repeated (each block ends with a full flush), as in make_corpus.py."""
    rows_per_block = 500
    block = (b"\x00" + b"\xff" * side) * rows_per_block
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    blocks, checksum = side // rows_per_block, 1
    for _ in range(blocks):
        checksum = zlib.adler32(block, checksum)
    stream = b"\x78\xda" + deflated * blocks + compressor.flush(zlib.Z_FINISH) + checksum.to_bytes(4, "big")

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")

    height = blocks * rows_per_block
    header = side.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])  # 8-bit greyscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


HOSTILE_FILES: dict[str, Callable[[], bytes]] = {
    "style-bomb.docx": docx_style_bomb,
    "operation-bomb.pdf": pdf_operation_bomb,
    "nested-forms.pdf": pdf_nested_forms,
    "nested-tables.docx": docx_nested_tables,
    "merged-rows.docx": docx_merged_rows,
    "nested-groups.pptx": pptx_nested_groups,
    "deep.html": html_deep_nesting,
    "nested-messages.eml": eml_nested_messages,
    "deep-multipart.eml": eml_deep_multipart,
    "deep.md": markdown_deep_nesting,
    "wide.csv": csv_wide,
    "huge.txt": huge_text,
    "pixel-bomb.png": png_pixel_bomb,
}
"""Every hostile case by file name (the name picks the text formats' reader)."""

HANG_FILE = "hang.txt"
"""The file name `read_forever` never returns for; the file's bytes are the number of seconds its helper sleeps."""


def read_forever(filename: str, data: bytes, **options: Any) -> Any:
    """A reader that hangs on HANG_FILE and reads anything else as kb.extract does: a stand-in for a parser stuck in
    a loop, with a helper process as OCR has one (`sleep`), so a test proves both are killed, not waited for."""
    from kb.extract import extract

    if filename == HANG_FILE:
        subprocess.run(["sleep", data.decode()], check=False)
        while True:
            signal.pause()  # until the sandbox kills it
    return extract(filename, data, **options)


def sleeping_helpers(seconds: bytes) -> list[int]:
    """The processes running `sleep SECONDS` (the helper of `read_forever` for a HANG_FILE of those bytes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if command.split(b"\0")[:2] == [b"sleep", seconds]:
                found.append(int(entry.name))
    return found


def unique_seconds() -> bytes:
    """A sleep length no other process on the machine is likely to use, as HANG_FILE bytes."""
    return str(36_000 + os.getpid() % 10_000 + next(_serial)).encode()


def read_greedily(filename: str, data: bytes, **options: Any) -> Any:
    """A reader that takes memory 64 MiB at a time, until it has 8 GiB or the limit stops it."""
    hoard = [bytearray(64 << 20) for _ in range(128)]
    raise AssertionError(f"read {len(hoard) * 64} MiB without hitting the memory limit")


def answer_oddly(filename: str, data: bytes, **options: Any) -> Any:
    """A reader whose extraction has a location no honest reader gives (a nested mapping)."""
    from kb.extract import Extraction, Section

    return Extraction("text", sections=[Section("text", {"page": {"nested": 1}})])


def read_environment(filename: str, data: bytes, **options: Any) -> Any:
    """A reader that reports the names of the variables in its environment (what an exploited parser could read)."""
    from kb.extract import Extraction, Section

    return Extraction("text", sections=[Section(" ".join(sorted(os.environ)), {})])
