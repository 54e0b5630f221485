"""Text out of the files support leads drop in, with where each piece came from (page, section, slide).

The type is read from the bytes, not trusted from the name: a PDF renamed `.txt` is still a PDF.
A bad file never raises: it comes back with a status and a message a person can act on.
Text a reader of the file would not see (hidden Word runs, white or tiny text, CSS-hidden HTML, comments,
invisible PDF text, hidden slides and shapes) comes back in sections of its own, located `{"hidden": why}`,
never mixed into the visible text: a person must see it before it can become evidence.
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import logging
import re
import shutil
import subprocess
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import PurePath
from typing import Any

from bs4 import BeautifulSoup

from kb.titles import clean_title, heading_line, markdown_title, meaningful_title, readable_name

log = logging.getLogger(__name__)

OK = "ok"
EMPTY = "empty"
ENCRYPTED = "encrypted"
CORRUPT = "corrupt"
TOO_LARGE = "too_large"
UNSUPPORTED = "unsupported"
OCR_UNAVAILABLE = "ocr_unavailable"

CONTENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "html": "text/html",
    "markdown": "text/markdown",
    "text": "text/plain",
    "csv": "text/csv",
    "eml": "message/rfc822",
    "png": "image/png",
    "jpeg": "image/jpeg",
}
CSV_ROWS_PER_SECTION = 20
OCR_TIMEOUT_SECONDS = 120
MAX_ATTACHMENT_DEPTH = 3
MAX_UNPACKED_BYTES = 100 * 1024 * 1024
"""An Office file may unpack to at most this much: a few kilobytes can otherwise hold gigabytes of XML."""
HIDDEN = "hidden"
"""Location key of a section the source hides from its reader; the value says how it was hidden."""
TINY_POINTS = 2.0
"""Text this small or smaller (in points) is not meant to be read."""


@dataclass
class Section:
    """One located piece of text: `location` says where (page, section, slide, rows, attachment)."""

    text: str
    location: dict[str, Any] = field(default_factory=dict)


@dataclass
class Extraction:
    """What came out of one file: the detected kind, its sections, or a status saying why not."""

    kind: str
    status: str = OK
    error: str | None = None
    title: str | None = None
    sections: list[Section] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.kind, "application/octet-stream")

    @property
    def text(self) -> str:
        return "\n\n".join(section.text for section in self.sections)


class ExtractionError(Exception):
    """Raised inside one extractor to end that file with a status; never escapes `extract`."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


def detect_kind(filename: str, data: bytes) -> str:
    """The file's real kind from its first bytes; the extension only picks among text formats."""
    head = data[:2048]
    suffix = PurePath(filename).suffix.lower()
    if head.startswith(b"%PDF-") or b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"PK\x03\x04"):
        return _office_kind(data)
    if head.startswith((b"\xd0\xcf\x11\xe0", b"GIF8", b"\x1f\x8b", b"Rar!", b"7z\xbc\xaf")) or b"\x00" in head:
        return "binary"
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    lowered = text[:512].lower()
    if lowered.startswith(("<!doctype html", "<html")) or re.search(r"<(body|head|div|p|h1)[\s>]", lowered):
        return "html"
    if _looks_like_email(text) or suffix == ".eml":
        return "eml"
    if suffix in {".md", ".markdown"}:
        return "markdown"
    if suffix in {".csv", ".tsv"}:
        return "csv"
    return "text"


def _office_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        return "corrupt-zip"
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    return "zip"


def _looks_like_email(text: str) -> bool:
    headers = re.findall(r"^([A-Za-z-]+):", text[:2048], flags=re.MULTILINE)
    known = {name.lower() for name in headers} & {"from", "to", "subject", "date", "message-id", "mime-version"}
    return len(known) >= 3


def extract(
    filename: str,
    data: bytes,
    *,
    max_bytes: int,
    tesseract_cmd: str = "tesseract",
    ocr_languages: str = "eng",
    depth: int = 0,
) -> Extraction:
    """Extract one file; any failure becomes a status on the result, so a batch keeps going."""
    if len(data) > max_bytes:
        return Extraction(
            "unknown", TOO_LARGE, f"{filename} is {len(data):,} bytes; the limit is {max_bytes:,} (KB_MAX_FILE_BYTES)"
        )
    if not data.strip():
        return Extraction("unknown", EMPTY, f"{filename} is empty")
    kind = detect_kind(filename, data)
    name = PurePath(filename).name or filename
    result = Extraction(kind, title=readable_name(name))
    title: str | None = None
    try:
        if kind == "pdf":
            result.sections, title = _pdf(data)
        elif kind == "docx":
            result.sections, title = _docx(data)
        elif kind == "pptx":
            result.sections, title = _pptx(data)
        elif kind == "html":
            result.sections, title = _html(_decode(data))
        elif kind == "markdown":
            text = _decode(data)
            result.sections, title = _markdown(text), markdown_title(text)
        elif kind == "csv":
            result.sections = _csv(_decode(data))
        elif kind == "text":
            text = _decode(data).strip()
            result.sections, title = [Section(text, {})], heading_line(text.split("\n", 1)[0])
        elif kind == "eml":
            result.sections, title, result.warnings = _eml(
                data, max_bytes=max_bytes, tesseract_cmd=tesseract_cmd, ocr_languages=ocr_languages, depth=depth
            )
        elif kind in {"png", "jpeg"}:
            result.sections = _ocr(data, tesseract_cmd, ocr_languages)
        elif kind == "corrupt-zip":
            raise ExtractionError(CORRUPT, f"{filename} looks like an Office file but the archive is damaged")
        else:
            raise ExtractionError(
                UNSUPPORTED,
                f"{filename}: unsupported file type ({kind}); supported: PDF, DOCX, "
                "PPTX, HTML, Markdown, text, CSV, .eml, PNG, JPEG",
            )
    except ExtractionError as failure:
        result.status, result.error = failure.status, str(failure)
        return result
    except Exception as error:  # every parser has its own exception zoo; a damaged file must not stop the batch
        result.status, result.error = (
            CORRUPT,
            f"{filename}: could not read the {kind} file ({error.__class__.__name__}: {error})",
        )
        return result
    result.title = clean_title(title) or result.title
    result.sections = [Section(_tidy(s.text), s.location) for s in result.sections if s.text.strip()]
    if not result.sections:
        result.status, result.error = (
            EMPTY,
            f"{filename}: no text found" + (" (a scanned PDF without a text layer?)" if kind == "pdf" else ""),
        )
    return result


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t\u00a0]+", " ", text)
    return re.sub(r"\n\s*\n\s*\n+", "\n\n", text).strip()


def _pdf(data: bytes) -> tuple[list[Section], str]:
    """The pages' text, and a title: the metadata title when someone wrote one, else a first line that reads as
    a heading."""
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            unlocked = reader.decrypt("")
        except Exception as error:
            raise ExtractionError(ENCRYPTED, f"the PDF is encrypted and cannot be opened ({error})") from None
        if not unlocked:
            raise ExtractionError(ENCRYPTED, "the PDF is password-protected; upload an unprotected copy")
    try:
        sections = [s for number, page in enumerate(reader.pages, 1) for s in _pdf_page(reader, page, number)]
    except FileNotDecryptedError:
        raise ExtractionError(ENCRYPTED, "the PDF is password-protected; upload an unprotected copy") from None
    metadata = reader.metadata
    return sections, meaningful_title(metadata.title if metadata else None) or _first_heading(sections)


def _first_heading(sections: list[Section]) -> str:
    """The first visible line of the text when it reads as a heading; hidden text never names a document."""
    first = next((s.text.strip() for s in sections if HIDDEN not in s.location and s.text.strip()), "")
    return heading_line(first.split("\n", 1)[0])


TEXT_SHOWING = {b"Tj", b"TJ", b"'", b'"'}


@dataclass
class _PdfTextState:
    """The part of the PDF graphics state that decides whether text can be seen."""

    fill: tuple[float, ...] = (0.0,)
    fill_space: str = "gray"
    render_mode: int = 0
    font_size: float = 12.0
    text_scale: float = 1.0
    matrix_scale: float = 1.0

    def hidden_reason(self) -> str | None:
        if self.render_mode in (3, 7):
            return "invisible PDF text (render mode 3)"
        white = {"gray": (1.0,), "rgb": (1.0, 1.0, 1.0), "cmyk": (0.0, 0.0, 0.0, 0.0)}[self.fill_space]
        if tuple(round(value, 3) for value in self.fill) == white:
            return "white PDF text"
        if abs(self.font_size * self.text_scale * self.matrix_scale) <= TINY_POINTS:
            return f"PDF text of {TINY_POINTS:g} pt or less"
        return None


def _scale(operands: list[Any]) -> float:
    """The vertical scale of a matrix `a b c d e f`."""
    return (float(operands[2]) ** 2 + float(operands[3]) ** 2) ** 0.5


def _pdf_hidden_marks(operations: list[tuple[list[Any], bytes]]) -> list[str | None]:
    """For each operation, why the text it shows is hidden (None when visible or not text).

    Follows q/Q, fill colour (g, rg, k), render mode (Tr), font size (Tf), Tm and cm scaling in the page's own
    content stream; text in form XObjects, colours set through colour spaces (sc/scn), text under a white
    rectangle or off the page are not detected.
    """
    state, stack, marks = _PdfTextState(), [], []
    for operands, operator in operations:
        mark = None
        if operator == b"q":
            stack.append(_PdfTextState(**vars(state)))
        elif operator == b"Q" and stack:
            state = stack.pop()
        elif operator in (b"g", b"rg", b"k") and operands:
            state.fill = tuple(float(value) for value in operands)
            state.fill_space = {b"g": "gray", b"rg": "rgb", b"k": "cmyk"}[operator]
        elif operator == b"Tr" and operands:
            state.render_mode = int(operands[0])
        elif operator == b"Tf" and len(operands) == 2:
            state.font_size = float(operands[1])
        elif operator == b"Tm" and len(operands) == 6:
            state.text_scale = _scale(operands)
        elif operator == b"BT":
            state.text_scale = 1.0
        elif operator == b"cm" and len(operands) == 6:
            state.matrix_scale *= _scale(operands)
        elif operator in TEXT_SHOWING:
            mark = state.hidden_reason()
        marks.append(mark)
    return marks


def _blank(operands: list[Any], operator: bytes) -> list[Any]:
    """The same text-showing operation with nothing to show (`"` keeps its spacing operands)."""
    from pypdf.generic import ArrayObject, ByteStringObject

    if operator == b"TJ":
        return [ArrayObject()]
    return [*operands[:-1], ByteStringObject(b"")]


def _pdf_page(reader: Any, page: Any, number: int) -> list[Section]:
    """The page's visible text, and its hidden text (white, tiny, invisible) as a section of its own."""
    from pypdf.generic import ContentStream, NameObject

    contents = page.get_contents()
    if contents is None:
        return [Section(page.extract_text() or "", {"page": number})]
    stream = ContentStream(contents, reader)
    operations = list(stream.operations)
    marks = _pdf_hidden_marks(operations)
    reasons = sorted({mark for mark in marks if mark})
    if not reasons:
        return [Section(page.extract_text() or "", {"page": number})]

    def text_where(keep: Callable[[str | None], bool]) -> str:
        edited = ContentStream(None, reader)
        edited.operations = [
            (operands if operator not in TEXT_SHOWING or keep(mark) else _blank(operands, operator), operator)
            for (operands, operator), mark in zip(operations, marks, strict=True)
        ]
        page[NameObject("/Contents")] = edited
        return page.extract_text() or ""

    visible = text_where(lambda mark: mark is None)
    hidden = text_where(lambda mark: mark is not None)
    return [Section(visible, {"page": number}), Section(hidden, {"page": number, HIDDEN: ", ".join(reasons)})]


def _refuse_zip_bomb(data: bytes) -> None:
    """Refuse an archive whose members add up to more than MAX_UNPACKED_BYTES, before anything is inflated.

    The declared sizes bound what is read: `zipfile` stops at a member's declared size (and checks its CRC).
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        unpacked = sum(member.file_size for member in archive.infolist())
    if unpacked > MAX_UNPACKED_BYTES:
        raise ExtractionError(
            TOO_LARGE,
            f"the file unpacks to {unpacked:,} bytes; the limit is {MAX_UNPACKED_BYTES:,} (a zip bomb?)",
        )


def _docx(data: bytes) -> tuple[list[Section], str]:
    """Sections by heading, tables, hidden runs apart; the title: the file's title property, else its first
    Title-styled paragraph, else its first heading."""
    from docx import Document

    _refuse_zip_bomb(data)
    document = Document(io.BytesIO(data))
    sections: list[Section] = []
    hidden: dict[str, list[str]] = {}
    path: list[str] = []
    lines: list[str] = []
    title = meaningful_title(document.core_properties.title)
    headings: list[tuple[str, str]] = []

    def flush() -> None:
        if lines:
            sections.append(Section("\n".join(lines), {"section": " > ".join(path)} if path else {}))
            lines.clear()

    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        text = _docx_visible_text(paragraph, hidden)
        level = _heading_level(style)
        if level and text:
            flush()
            path[:] = [*path[: level - 1], text]
            headings.append((style, text))
            lines.append(text)
        elif text:
            lines.append(text)
    flush()
    for number, table in enumerate(document.tables, 1):
        rows = [
            " | ".join("\n".join(_docx_visible_text(p, hidden) for p in cell.paragraphs).strip() for cell in row.cells)
            for row in table.rows
        ]
        sections.append(Section("\n".join(rows), {"table": number}))
    sections.extend(Section("\n".join(texts), {HIDDEN: why}) for why, texts in hidden.items())
    styled = next((text for style, text in headings if style == "Title"), "")
    return sections, title or styled or (headings[0][1] if headings else _first_heading(sections))


def _docx_visible_text(paragraph: Any, hidden: dict[str, list[str]]) -> str:
    """The paragraph's visible text; its hidden runs go to `hidden`, grouped by how they were hidden."""
    from docx.text.run import Run

    runs = [Run(element, paragraph) for element in paragraph._p.xpath(".//w:r")]
    reasons = [_docx_hidden_reason(run, paragraph) for run in runs]
    if not any(reasons):
        return paragraph.text.strip()
    for run, why in zip(runs, reasons, strict=True):
        if why and run.text.strip():
            hidden.setdefault(why, []).append(run.text.strip())
    return "".join(run.text for run, why in zip(runs, reasons, strict=True) if not why).strip()


def _docx_hidden_reason(run: Any, paragraph: Any) -> str | None:
    """Why Word would not show this run to a reader: w:vanish (directly or by style), white, or ≤ 2 pt."""
    from docx.enum.dml import MSO_THEME_COLOR
    from docx.shared import Pt, RGBColor

    fonts = [run.font]
    if run.style is not None:
        fonts.append(run.style.font)
    if paragraph.style is not None:
        fonts.append(paragraph.style.font)
    if any(font.hidden for font in fonts):
        return "hidden text in Word (w:vanish)"
    color = run.font.color
    if color.type is not None and (
        color.rgb == RGBColor(0xFF, 0xFF, 0xFF) or color.theme_color == MSO_THEME_COLOR.BACKGROUND_1
    ):
        return "white text in Word"
    size = next((font.size for font in fonts if font.size is not None), None)
    if size is not None and size <= Pt(TINY_POINTS):
        return f"Word text of {TINY_POINTS:g} pt or less"
    return None


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return int(match.group(1)) if match else 0


def _pptx(data: bytes) -> tuple[list[Section], str]:
    """One section per slide (hidden slides and shapes apart); the title is the first shown slide's title."""
    from pptx import Presentation

    _refuse_zip_bomb(data)
    sections = []
    for number, slide in enumerate(Presentation(io.BytesIO(data)).slides, 1):
        texts: list[str] = []
        hidden: list[str] = []
        title = ""
        for shape in slide.shapes:
            shown = hidden if shape._element.xpath("./*[1]/p:cNvPr[@hidden='1' or @hidden='true']") else texts
            if shape.has_text_frame and shape.text_frame.text.strip():
                shown.append(shape.text_frame.text.strip())
                if shape == slide.shapes.title:
                    title = shape.text_frame.text.strip()
            if getattr(shape, "has_table", False) and shape.has_table:
                shown.extend(" | ".join(cell.text for cell in row.cells) for row in shape.table.rows)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            texts.append(slide.notes_slide.notes_text_frame.text)
        location: dict[str, Any] = {"slide": number}
        if title:
            location["title"] = title
        if slide._element.get("show") in ("0", "false"):
            sections.append(Section("\n".join(texts + hidden), {**location, HIDDEN: "hidden slide"}))
            continue
        sections.append(Section("\n".join(texts), location))
        if hidden:
            sections.append(Section("\n".join(hidden), {**location, HIDDEN: "hidden shape on the slide"}))
    titles = [str(s.location["title"]) for s in sections if "title" in s.location and HIDDEN not in s.location]
    return sections, titles[0] if titles else _first_heading(sections)


HIDING_CSS = (
    (re.compile(r"display\s*:\s*none", re.IGNORECASE), "display:none"),
    (re.compile(r"visibility\s*:\s*(hidden|collapse)", re.IGNORECASE), "visibility:hidden"),
    (re.compile(r"font-size\s*:\s*0*(\.0+)?\s*(px|pt|em|rem|%)?\s*(;|$|!)", re.IGNORECASE), "font-size:0"),
    (re.compile(r"opacity\s*:\s*0*(\.0+)?\s*(;|$|!)", re.IGNORECASE), "opacity:0"),
    (
        re.compile(r"(^|;|\s)color\s*:\s*(white|#fff\b|#ffffff\b|rgba?\(\s*255\s*,\s*255\s*,\s*255)", re.IGNORECASE),
        "white text",
    ),
    (re.compile(r"(left|top|right|text-indent|margin-left|margin-top)\s*:\s*-\d{3,}", re.IGNORECASE), "off-screen"),
    (re.compile(r"clip\s*:\s*rect\(\s*0", re.IGNORECASE), "clipped away"),
    (re.compile(r"(^|;|\s)(width|height|max-height|max-width)\s*:\s*0*(px)?\s*(;|$|!)", re.IGNORECASE), "zero size"),
)
CSS_RULE = re.compile(r"([^{}@]+)\{([^{}]*)\}")


def _css_hiding(style: str) -> str | None:
    """Which way (if any) a CSS declaration block hides its element from a reader."""
    if re.search(r"background(-color)?\s*:\s*(?!white|#fff\b|#ffffff\b|transparent)", style, re.IGNORECASE):
        checks = [(pattern, why) for pattern, why in HIDING_CSS if why != "white text"]
    else:
        checks = list(HIDING_CSS)
    return next((f"CSS-hidden HTML ({why})" for pattern, why in checks if pattern.search(style)), None)


def _hidden_html(soup: BeautifulSoup) -> list[Section]:
    """Take comments and hidden elements out of `soup`, returning their text as hidden sections."""
    from bs4 import Comment, Tag

    sections = [
        Section(str(comment), {HIDDEN: "HTML comment"})
        for comment in soup.find_all(string=lambda node: isinstance(node, Comment))
    ]
    for comment in soup.find_all(string=lambda node: isinstance(node, Comment)):
        comment.extract()
    marked: list[tuple[Tag, str]] = []
    for style in soup.find_all("style"):
        for selectors, declarations in CSS_RULE.findall(style.get_text()):
            why = _css_hiding(declarations)
            for selector in selectors.split(",") if why else []:
                try:
                    marked.extend((tag, why) for tag in soup.select(selector.strip()))
                except Exception as error:  # a selector soupsieve cannot parse: inline styles are still checked
                    log.info("CSS selector %r not understood, skipped: %s", selector.strip()[:80], error)
    for tag in soup.find_all(True):
        if tag.has_attr("hidden"):
            marked.append((tag, "HTML hidden attribute"))
        elif tag.get("type") == "hidden" and tag.get("value"):
            marked.append((tag, "hidden form field"))
        elif why := _css_hiding(str(tag.get("style", ""))):
            marked.append((tag, why))
    marked_ids = {id(tag) for tag, _ in marked}
    for tag, why in marked:
        if tag.decomposed or any(id(parent) in marked_ids for parent in tag.parents):
            continue
        text = tag.get("value", "") if tag.get("type") == "hidden" else tag.get_text("\n", strip=True)
        if str(text).strip():
            sections.append(Section(str(text), {HIDDEN: why}))
        tag.decompose()
    return sections


def _html(markup: str) -> tuple[list[Section], str]:
    """Scripts and styles dropped; headings become Markdown headings so sections follow them; hidden text apart.

    The title: the page's `<title>`, else its first visible `<h1>` (or a first line that reads as a heading)."""
    soup = BeautifulSoup(markup, "lxml")
    title_tag = soup.find("title")
    title = title_tag.get_text(" ", strip=True) if title_tag else ""
    hidden = _hidden_html(soup)
    for tag in soup(["script", "style", "noscript", "template", "svg", "head"]):
        tag.decompose()
    for level in range(1, 7):
        for heading in soup.find_all(f"h{level}"):
            heading.replace_with(f"\n\n{'#' * level} {heading.get_text(' ', strip=True)}\n\n")
    text = soup.get_text("\n")
    return _markdown(text) + hidden, title or markdown_title(text)


def _markdown(text: str) -> list[Section]:
    """Split on ATX headings; each section's location is its heading path (`A > B`)."""
    sections: list[Section] = []
    path: list[str] = []
    lines: list[str] = []

    def flush() -> None:
        if "\n".join(lines).strip():
            sections.append(Section("\n".join(lines), {"section": " > ".join(path)} if path else {}))
        lines.clear()

    in_fence = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else re.match(r"^(#{1,6})\s+(.+?)\s*#*\s*$", line)
        if match:
            flush()
            level = len(match.group(1))
            path[:] = [*path[: level - 1], match.group(2).strip()]
            lines.append(match.group(2).strip())
        else:
            lines.append(line)
    flush()
    return sections


def _csv(text: str) -> list[Section]:
    """Rows as `column: value` lines, a few rows per section, located by row numbers."""
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    if not rows:
        return []
    header, body = rows[0], rows[1:]
    sections = []
    for start in range(0, len(body), CSV_ROWS_PER_SECTION):
        block = body[start : start + CSV_ROWS_PER_SECTION]
        lines = [
            "; ".join(f"{name}: {value}" for name, value in zip(header, row, strict=False) if value) for row in block
        ]
        sections.append(Section("\n".join(lines), {"rows": f"{start + 2}-{start + 1 + len(block)}"}))
    return sections or [Section(", ".join(header), {"rows": "1"})]


def _eml(
    data: bytes, *, max_bytes: int, tesseract_cmd: str, ocr_languages: str, depth: int
) -> tuple[list[Section], str | None, list[str]]:
    """The body, then each attachment extracted in turn; a bad attachment is a warning, not a failure."""
    message = email.message_from_bytes(data, policy=email.policy.default)
    if not isinstance(message, EmailMessage):
        raise ExtractionError(CORRUPT, "not a readable e-mail")
    subject = str(message.get("subject", "") or "")
    header = "\n".join(f"{name}: {message[name]}" for name in ("From", "To", "Date", "Subject") if message[name])
    sections = [Section(header, {"part": "headers"})] if header else []
    body_part = message.get_body(preferencelist=("plain", "html"))
    if body_part is not None:
        content = body_part.get_content()
        if body_part.get_content_type() == "text/html":
            html_sections = _html(content)[0]
            visible = "\n\n".join(section.text for section in html_sections if HIDDEN not in section.location)
            sections.append(Section(visible, {"part": "body"}))
            sections.extend(
                Section(s.text, {"part": "body", **s.location}) for s in html_sections if HIDDEN in s.location
            )
        else:
            sections.append(Section(content, {"part": "body"}))
    warnings: list[str] = []
    for part in message.iter_attachments():
        name = part.get_filename() or "attachment"
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or depth >= MAX_ATTACHMENT_DEPTH:
            continue
        inner = extract(
            name,
            payload,
            max_bytes=max_bytes,
            tesseract_cmd=tesseract_cmd,
            ocr_languages=ocr_languages,
            depth=depth + 1,
        )
        if inner.status != OK:
            warnings.append(f"attachment {name}: {inner.status}: {inner.error}")
            continue
        sections.extend(Section(s.text, {"attachment": name, **s.location}) for s in inner.sections)
    return sections, subject or None, warnings


def tesseract_available(tesseract_cmd: str) -> str | None:
    """The OCR binary's path, or None when it is not installed (Debian package `tesseract-ocr`)."""
    return shutil.which(tesseract_cmd)


def _ocr(data: bytes, tesseract_cmd: str, languages: str) -> list[Section]:
    binary = tesseract_available(tesseract_cmd)
    if binary is None:
        raise ExtractionError(
            OCR_UNAVAILABLE,
            f"OCR unavailable: '{tesseract_cmd}' not found; install the "
            "tesseract-ocr package or set KB_TESSERACT_CMD, then reindex this document",
        )
    try:
        run = subprocess.run(
            [binary, "stdin", "stdout", "-l", languages],
            input=data,
            capture_output=True,
            timeout=OCR_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ExtractionError(CORRUPT, f"OCR took longer than {OCR_TIMEOUT_SECONDS} s") from None
    if run.returncode != 0:
        message = run.stderr.decode("utf-8", errors="replace").strip().splitlines()
        raise ExtractionError(CORRUPT, "OCR could not read the image: " + (message[-1] if message else "unknown"))
    return [Section(run.stdout.decode("utf-8", errors="replace"), {"page": 1, "ocr": True})]
