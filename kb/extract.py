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
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from kb.titles import clean_title, heading_line, markdown_title, meaningful_title, readable_name

if TYPE_CHECKING:
    from bs4 import BeautifulSoup

log = logging.getLogger(__name__)

OK = "ok"
EMPTY = "empty"
ENCRYPTED = "encrypted"
CORRUPT = "corrupt"
TOO_LARGE = "too_large"
UNSUPPORTED = "unsupported"
OCR_UNAVAILABLE = "ocr_unavailable"
TOO_COMPLEX = "too_complex"
"""The file needs more time, memory, nesting or text than it may have to be read safely (kb/sandbox.py)."""

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
TINY_POINTS = 4.0
"""Text smaller than this (in points, or CSS pixels) is not meant to be read."""


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
    """Extract one file; any failure becomes a status on the result, so a batch keeps going. Only a MemoryError is
    raised: the memory limit of the process reading the file (kb/sandbox.py) reports it."""
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
    except MemoryError:
        raise  # not a damaged file: the reader's memory limit (kb/sandbox.py) says what happened
    except Exception as error:  # every parser has its own exception zoo; a damaged file must not stop the batch
        if isinstance(error, RecursionError) or "Excessive depth" in str(error):
            result.status, result.error = TOO_COMPLEX, f"{filename}: too complex to read safely: nested too deeply"
            return result
        result.status, result.error = (
            CORRUPT,
            f"{filename}: could not read the {kind} file ({error.__class__.__name__}: {error})",
        )
        return result
    result.sections = [Section(_tidy(s.text), s.location) for s in result.sections if s.text.strip()]
    result.title = _shown_title(clean_title(title), result) or result.title
    if not result.sections:
        result.status, result.error = (
            EMPTY,
            f"{filename}: no text found" + (" (a scanned PDF without a text layer?)" if kind == "pdf" else ""),
        )
    return result


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())


def _shown_title(title: str, result: Extraction) -> str:
    """The title when a reader sees its words in the document; a title property nobody sees (a lure in the
    metadata) is hidden text: it becomes a hidden section, a warning, and the first visible heading titles instead."""
    if not title:
        return ""
    shown = set(_words("\n".join(s.text for s in result.sections if HIDDEN not in s.location)))
    if all(word in shown for word in _words(title)):
        return title
    why = "document title property not shown in the document"
    result.sections.append(Section(title, {HIDDEN: why}))
    result.warnings.append(f"its {why}: not used as its title")
    return _first_heading(result.sections)


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
    """The pages' text as a reader sees it, and a title: the metadata title when someone wrote one, else a first
    line that reads as a heading."""
    import pypdfium2
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            unlocked = reader.decrypt("")
        except Exception as error:
            raise ExtractionError(ENCRYPTED, f"the PDF is encrypted and cannot be opened ({error})") from None
        if not unlocked:
            raise ExtractionError(ENCRYPTED, "the PDF is password-protected; upload an unprotected copy")
    metadata = reader.metadata
    document = pypdfium2.PdfDocument(data, password="" if reader.is_encrypted else None)
    try:
        sections = [s for number, page in enumerate(document, 1) for s in _pdf_page(page, number)]
    finally:
        document.close()
    return sections, meaningful_title(metadata.title if metadata else None) or _first_heading(sections)


def _first_heading(sections: list[Section]) -> str:
    """The first visible line of the text when it reads as a heading; hidden text never names a document."""
    first = next((s.text.strip() for s in sections if HIDDEN not in s.location and s.text.strip()), "")
    return heading_line(first.split("\n", 1)[0])


NEAR_COLOUR = 24
"""Text whose colour is within this much (0-255, on every channel) of what lies behind it cannot be read."""
WHITE = (255, 255, 255)


@dataclass(frozen=True)
class _Paint:
    """A filled shape or image on a PDF page: where it lies, in drawing order, and its colour (None: an image)."""

    order: int
    box: tuple[float, float, float, float]
    colour: tuple[int, int, int] | None


def _object_address(handle: Any) -> int:
    import ctypes

    return int(ctypes.cast(handle, ctypes.c_void_p).value or 0)


def _pdf_paints(page: Any) -> tuple[dict[int, int], list[_Paint]]:
    """The drawing order of the page's objects by address, and its opaque fills and images (what may cover text)."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    order: dict[int, int] = {}
    paints: list[_Paint] = []
    for index, item in enumerate(page.get_objects(max_depth=3)):
        order[_object_address(item.raw)] = index
        if item.type == pdfium_c.FPDF_PAGEOBJ_IMAGE:
            paints.append(_Paint(index, tuple(item.get_bounds()), None))
        elif item.type == pdfium_c.FPDF_PAGEOBJ_PATH:
            fill, stroke = ctypes.c_int(), ctypes.c_int()
            red, green, blue, alpha = (ctypes.c_uint() for _ in range(4))
            pdfium_c.FPDFPath_GetDrawMode(item.raw, ctypes.byref(fill), ctypes.byref(stroke))
            pdfium_c.FPDFPageObj_GetFillColor(
                item.raw, ctypes.byref(red), ctypes.byref(green), ctypes.byref(blue), ctypes.byref(alpha)
            )
            if fill.value and alpha.value == 255:
                paints.append(_Paint(index, tuple(item.get_bounds()), (red.value, green.value, blue.value)))
    return order, paints


def _inside(inner: tuple[float, ...], outer: tuple[float, ...], slack: float = 1.0) -> bool:
    return (
        inner[0] >= outer[0] - slack
        and inner[1] >= outer[1] - slack
        and inner[2] <= outer[2] + slack
        and inner[3] <= outer[3] + slack
    )


class _PdfChars:
    """Why each character of a PDF page is hidden from a reader, decided once per text object where possible."""

    def __init__(self, page: Any, textpage: Any) -> None:
        import pypdfium2.raw as pdfium_c

        self.c = pdfium_c
        self.textpage = textpage
        left, bottom, right, top = page.get_cropbox()
        self.page_box = (left, bottom, right, top)
        self.order, self.paints = _pdf_paints(page)
        self._objects: dict[int, tuple[str | None, int, tuple[int, int, int], list[_Paint]]] = {}

    def _object(self, index: int, handle: Any) -> tuple[str | None, int, tuple[int, int, int], list[_Paint]]:
        """For a text object: a reason that hides all of it, its drawing order and colour, the fills drawn after it."""
        import ctypes
        import math

        address = _object_address(handle)
        if address not in self._objects:
            c = self.c
            order = self.order.get(address, -1)
            red, green, blue, alpha = (ctypes.c_uint() for _ in range(4))
            c.FPDFText_GetFillColor(
                self.textpage.raw,
                index,
                ctypes.byref(red),
                ctypes.byref(green),
                ctypes.byref(blue),
                ctypes.byref(alpha),
            )
            size = ctypes.c_float()
            c.FPDFTextObj_GetFontSize(handle, ctypes.byref(size))
            matrix = c.FS_MATRIX()
            c.FPDFPageObj_GetMatrix(handle, ctypes.byref(matrix))
            points = size.value * math.hypot(matrix.c, matrix.d)
            mode = c.FPDFTextObj_GetTextRenderMode(handle)
            reason = None
            if mode in (c.FPDF_TEXTRENDERMODE_INVISIBLE, c.FPDF_TEXTRENDERMODE_CLIP):
                reason = "invisible PDF text (render mode 3)"
            elif alpha.value == 0:
                reason = "transparent PDF text"
            elif points < TINY_POINTS:
                reason = f"PDF text smaller than {TINY_POINTS:g} pt"
            colour = (red.value, green.value, blue.value)
            self._objects[address] = (
                reason,
                order,
                colour,
                [paint for paint in self.paints if paint.order > order >= 0],
            )
        return self._objects[address]

    def reason(self, index: int) -> str | None:
        """Why character `index` cannot be seen, or None when a reader sees it."""
        c = self.c
        handle = c.FPDFText_GetTextObject(self.textpage.raw, index)
        if not handle:
            return None
        whole, order, colour, later = self._object(index, handle)
        if whole:
            return whole
        box = self.textpage.get_charbox(index)
        if (
            box[2] < self.page_box[0]
            or box[0] > self.page_box[2]
            or box[3] < self.page_box[1]
            or box[1] > self.page_box[3]
        ):
            return "PDF text outside the page"
        if any(_inside(box, paint.box) for paint in later):
            return "PDF text covered by a shape drawn over it"
        behind = [p for p in self.paints if p.order < order and p.colour is not None and _inside(box, p.box)]
        background = behind[-1].colour if behind else WHITE
        if max(abs(a - b) for a, b in zip(colour, background, strict=True)) <= NEAR_COLOUR:
            return "white PDF text" if colour == background == WHITE else "PDF text in the colour of its background"
        return None


def _pdf_page(page: Any, number: int) -> list[Section]:
    """The page's visible text, and its hidden text (off the page, covered, invisible, tiny, background-coloured)
    as a section of its own; spaces and line breaks go to both."""
    textpage = page.get_textpage()
    try:
        chars = _PdfChars(page, textpage)
        lines: list[tuple[list[str], list[str]]] = [([], [])]
        reasons: set[str] = set()
        for index in range(textpage.count_chars()):
            char = chr(chars.c.FPDFText_GetUnicode(textpage.raw, index))
            if char in "\r\n":
                if char == "\n":
                    lines.append(([], []))
                continue
            visible, hidden = lines[-1]
            why = None if char.isspace() else chars.reason(index)
            if why:
                reasons.add(why)
            (hidden if why else visible).append(char)
            if char.isspace():
                hidden.append(char)
    finally:
        textpage.close()
    visible_text = "\n".join(text for seen, _ in lines if (text := "".join(seen).strip()))
    if not reasons:
        return [Section(visible_text, {"page": number})]
    hidden_text = "\n".join(text for _, unseen in lines if (text := " ".join("".join(unseen).split())))
    return [
        Section(visible_text, {"page": number}),
        Section(hidden_text, {"page": number, HIDDEN: ", ".join(sorted(reasons))}),
    ]


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

    styles = _WordStyles(document)
    for paragraph in document.paragraphs:
        style_id = paragraph._p.pPr.find(f"{W}pStyle") if paragraph._p.pPr is not None else None
        style = styles.names.get(style_id.get(f"{W}val") if style_id is not None else styles.default_paragraph, "")
        text = _docx_visible_text(paragraph, hidden, styles)
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
        sections.append(Section("\n".join(_docx_table_rows(table._tbl, hidden, styles)), {"table": number}))
    sections.extend(Section("\n".join(texts), {HIDDEN: why}) for why, texts in hidden.items())
    styled = next((text for style, text in headings if style == "Title"), "")
    return sections, title or styled or (headings[0][1] if headings else _first_heading(sections))


def _docx_table_rows(table: Any, hidden: dict[str, list[str]], styles: _WordStyles) -> list[str]:
    """Each row as `cell | cell`, read from the XML in one pass. As python-docx's `row.cells`: a cell merged down
    from above repeats the text of the cell that starts the merge, a cell spanning columns repeats once per column;
    unlike it, without walking back up the table for every merged cell (quadratic, and recursive)."""
    from docx.text.paragraph import Paragraph

    above: dict[int, str] = {}
    rows = []
    for row in table.tr_lst:
        column, cells = row.grid_before, []
        for cell in row.tc_lst:
            span = cell.grid_span
            if cell.vMerge == "continue":
                text = above.get(column, "")
            else:
                paragraphs = (Paragraph(p, None) for p in cell.p_lst)
                text = "\n".join(_docx_visible_text(p, hidden, styles) for p in paragraphs).strip()
            for offset in range(span):
                above[column + offset] = text
            cells.extend([text] * span)
            column += span
        rows.append(" | ".join(cells))
    return rows


W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@dataclass
class _WordFont:
    """The run properties that decide whether Word shows text: vanish, colour, size (half-points), highlight."""

    vanish: bool | None = None
    colour: str | None = None
    half_points: int | None = None
    highlight: str | None = None

    def over(self, base: _WordFont) -> _WordFont:
        """These properties where set, else `base`'s."""
        return _WordFont(
            *(
                mine if mine is not None else theirs
                for mine, theirs in zip(vars(self).values(), vars(base).values(), strict=True)
            )
        )


HIGHLIGHTS = {"white": "FFFFFF", "black": "000000", "yellow": "FFFF00", "lightGray": "C0C0C0", "darkGray": "808080"}


def _word_font(properties: Any) -> _WordFont:
    """The visibility-deciding run properties of one `w:rPr` element (None: not set here)."""
    if properties is None:
        return _WordFont()
    font = _WordFont()
    if (vanish := properties.find(f"{W}vanish")) is not None:
        font.vanish = vanish.get(f"{W}val", "true") not in ("0", "false", "off")
    if (colour := properties.find(f"{W}color")) is not None:
        value = colour.get(f"{W}val", "auto")
        font.colour = "FFFFFF" if colour.get(f"{W}themeColor") in ("background1", "light1") else value.upper()
    if (size := properties.find(f"{W}sz")) is not None and str(size.get(f"{W}val", "")).isdigit():
        font.half_points = int(size.get(f"{W}val"))
    if (highlight := properties.find(f"{W}highlight")) is not None:
        font.highlight = HIGHLIGHTS.get(highlight.get(f"{W}val", ""), "")
    if (shading := properties.find(f"{W}shd")) is not None and shading.get(f"{W}fill", "auto") != "auto":
        font.highlight = font.highlight or str(shading.get(f"{W}fill")).upper()
    return font


class _WordStyles:
    """Every style's effective run properties, resolved once per document (with `w:basedOn`) into a dict by id:
    python-docx's `run.style` scans every style on each call, which crawls on files with thousands of styles."""

    def __init__(self, document: Any) -> None:
        from docx.styles import BabelFish

        own: dict[str, tuple[_WordFont, str | None]] = {}
        self.names: dict[str, str] = {}
        """Style id to the name Word shows ("Heading 1", "Title"), as python-docx's `style.name` gives it."""
        self.default_paragraph = ""
        self.base = _WordFont()
        part = document.part._styles_part if document.part._styles_part is not None else None
        root = part.element if part is not None else None
        if root is not None:
            defaults = root.find(f"{W}docDefaults/{W}rPrDefault/{W}rPr")
            self.base = _word_font(defaults)
            for style in root.findall(f"{W}style"):
                style_id = style.get(f"{W}styleId", "")
                based = style.find(f"{W}basedOn")
                own[style_id] = (_word_font(style.find(f"{W}rPr")), based.get(f"{W}val") if based is not None else None)
                name = style.find(f"{W}name")
                self.names[style_id] = BabelFish.internal2ui(name.get(f"{W}val", "")) if name is not None else ""
                if style.get(f"{W}type") == "paragraph" and style.get(f"{W}default") in ("1", "true"):
                    self.default_paragraph = style_id
        self._own = own
        self._resolved: dict[str, _WordFont] = {}

    def font(self, style_id: str | None) -> _WordFont:
        """The style's properties over those of the styles it is based on (a loop or a missing style ends it).

        Every style on the way is resolved and kept too, so a chain of n styles costs n steps once, not n per style
        (20,000 styles each based on the one before took minutes)."""
        if not style_id or style_id not in self._own:
            return _WordFont()
        chain: list[str] = []
        on_chain: set[str] = set()
        current: str | None = style_id
        while current and current in self._own and current not in self._resolved and current not in on_chain:
            on_chain.add(current)
            chain.append(current)
            current = self._own[current][1]
        resolved = self._resolved.get(current or "", _WordFont())
        for name in reversed(chain):
            resolved = self._own[name][0].over(resolved)
            self._resolved[name] = resolved
        return self._resolved[style_id]


def _docx_visible_text(paragraph: Any, hidden: dict[str, list[str]], styles: _WordStyles) -> str:
    """The paragraph's visible text; its hidden runs go to `hidden`, grouped by how they were hidden."""
    from docx.text.run import Run

    properties = paragraph._p.pPr
    style_id = (
        properties.find(f"{W}pStyle").get(f"{W}val")
        if properties is not None and properties.find(f"{W}pStyle") is not None
        else styles.default_paragraph
    )
    paragraph_font = styles.font(style_id).over(styles.base)
    mark = _word_font(properties.find(f"{W}rPr") if properties is not None else None)
    if mark.vanish:
        paragraph_font = _WordFont(vanish=True).over(paragraph_font)
    runs = [Run(element, paragraph) for element in paragraph._p.xpath(".//w:r")]
    reasons = [_docx_hidden_reason(run._r, paragraph_font, styles) for run in runs]
    if not any(reasons):
        return paragraph.text.strip()
    for run, why in zip(runs, reasons, strict=True):
        if why and run.text.strip():
            hidden.setdefault(why, []).append(run.text.strip())
    return "".join(run.text for run, why in zip(runs, reasons, strict=True) if not why).strip()


def _near_white(colour: str | None, background: str) -> bool:
    if not colour or not re.fullmatch(r"[0-9A-F]{6}", colour) or not re.fullmatch(r"[0-9A-F]{6}", background):
        return False
    return max(abs(int(colour[i : i + 2], 16) - int(background[i : i + 2], 16)) for i in (0, 2, 4)) <= NEAR_COLOUR


def _docx_hidden_reason(run: Any, paragraph_font: _WordFont, styles: _WordStyles) -> str | None:
    """Why Word would not show this run to a reader: w:vanish (directly or by style), a colour at or near its
    background (white on the page, or the run's own highlight), or under TINY_POINTS."""
    properties = run.find(f"{W}rPr")
    character_style = properties.find(f"{W}rStyle") if properties is not None else None
    font = (
        _word_font(properties)
        .over(styles.font(character_style.get(f"{W}val") if character_style is not None else None))
        .over(paragraph_font)
    )
    if font.vanish:
        return "hidden text in Word (w:vanish)"
    if font.colour == "FFFFFF" and not font.highlight:
        return "white text in Word"
    if _near_white(font.colour, font.highlight or "FFFFFF"):
        return "Word text in the colour of its background"
    if font.half_points is not None and font.half_points < 2 * TINY_POINTS:
        return f"Word text smaller than {TINY_POINTS:g} pt"
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
        title_shape = slide.shapes.title  # found once: looking it up per shape is quadratic in the slide's shapes
        for shape in slide.shapes:
            shown = hidden if shape._element.xpath("./*[1]/p:cNvPr[@hidden='1' or @hidden='true']") else texts
            if shape.has_text_frame and shape.text_frame.text.strip():
                shown.append(shape.text_frame.text.strip())
                if shape == title_shape:
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


OFF_PAGE_PIXELS = 1000
"""An element pushed further than this beyond the top or left edge is off the page."""
INHERITED = ("color", "font-size", "visibility")


def _declarations(css: str) -> dict[str, list[Any]]:
    """A declaration block parsed by a CSS parser: property name to its value tokens (later wins)."""
    import tinycss2

    return {
        item.lower_name: [token for token in item.value if token.type not in ("whitespace", "comment")]
        for item in tinycss2.parse_blocks_contents(css, skip_whitespace=True, skip_comments=True)
        if item.type == "declaration"
    }


def _colour(tokens: list[Any]) -> tuple[float, float, float, float] | None:
    """An RGBA colour (0-1) from CSS tokens or an HTML colour attribute's text; None when not a colour."""
    from tinycss2.color3 import parse_color

    colour = parse_color(tokens[0]) if len(tokens) == 1 else None
    return tuple(colour) if colour is not None and not isinstance(colour, str) else None  # type: ignore[return-value]


def _pixels(tokens: list[Any], parent: float) -> float | None:
    """A CSS length in pixels (em and % against the parent's font size); None when not a length."""
    if len(tokens) != 1:
        return None
    token = tokens[0]
    if token.type == "number":
        return float(token.value)
    if token.type == "percentage":
        return parent * float(token.value) / 100
    if token.type == "dimension":
        unit = token.lower_unit
        factor = {"px": 1.0, "pt": 4 / 3, "pc": 16.0, "in": 96.0, "cm": 96 / 2.54, "mm": 96 / 25.4}
        if unit in factor:
            return float(token.value) * factor[unit]
        if unit in ("em", "rem", "ex", "ch"):
            return float(token.value) * (16.0 if unit == "rem" else parent) * (0.5 if unit in ("ex", "ch") else 1)
    return None


def _keyword(tokens: list[Any]) -> str:
    return tokens[0].lower_value if len(tokens) >= 1 and tokens[0].type == "ident" else ""


@dataclass
class _Computed:
    """The part of an element's computed style that decides whether its text can be read."""

    colour: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    background: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    font_pixels: float = 16.0
    visibility: str = "visible"


def _css_hiding(style: dict[str, list[Any]], computed: _Computed) -> str | None:
    """Which way (if any) this element's own declarations, or what it inherits, hide it from a reader."""
    if _keyword(style.get("display", [])) == "none":
        return "display:none"
    if computed.visibility in ("hidden", "collapse"):
        return "visibility:hidden"
    opacity = style.get("opacity", [])
    if opacity and opacity[0].type in ("number", "percentage") and float(opacity[0].value) <= 0.05:
        return "opacity:0"
    if computed.font_pixels < TINY_POINTS:
        return "font-size:0" if computed.font_pixels <= 0 else f"font size under {TINY_POINTS:g}px"
    if computed.colour[3] <= 0.05:
        return "transparent text"
    if max(abs(a - b) for a, b in zip(computed.colour[:3], computed.background[:3], strict=True)) * 255 <= NEAR_COLOUR:
        return "white text" if computed.colour[:3] == (1.0, 1.0, 1.0) else "text in the colour of its background"
    if _keyword(style.get("position", [])) in ("absolute", "fixed") or "text-indent" in style:
        for name in ("left", "top", "text-indent", "margin-left", "margin-top"):
            offset = _pixels(style.get(name, []), computed.font_pixels)
            if offset is not None and offset <= -OFF_PAGE_PIXELS:
                return "off-screen"
    clip = style.get("clip", []) + style.get("clip-path", [])
    if clip and clip[0].type == "function" and clip[0].lower_name in ("rect", "inset"):
        numbers = [token for token in clip[0].arguments if token.type in ("number", "dimension", "percentage")]
        if clip[0].lower_name == "rect" and numbers and all(float(token.value) == 0 for token in numbers):
            return "clipped away"
        if clip[0].lower_name == "inset" and numbers and float(numbers[0].value) >= 50:
            return "clipped away"
    if _keyword(style.get("overflow", [])) == "hidden" or "max-height" in style or "max-width" in style:
        for name in ("width", "height", "max-height", "max-width"):
            if _pixels(style.get(name, []), computed.font_pixels) == 0:
                return "zero size"
    return None


def _stylesheet_rules(soup: BeautifulSoup) -> list[tuple[Any, dict[str, list[Any]]]]:
    """Every `<style>` rule as (matched elements, declarations), in source order."""
    import tinycss2

    rules: list[tuple[Any, dict[str, list[Any]]]] = []
    for style in soup.find_all("style"):
        for rule in tinycss2.parse_stylesheet(style.get_text(), skip_whitespace=True, skip_comments=True):
            if rule.type != "qualified-rule":
                continue
            declarations = _declarations(tinycss2.serialize(rule.content))
            selectors = tinycss2.serialize(rule.prelude).strip()
            try:
                rules.append((soup.select(selectors), declarations))
            except Exception as error:  # a selector soupsieve cannot parse: inline styles are still checked
                log.info("CSS selector %r not understood, skipped: %s", selectors[:80], error)
    return rules


def _computed_styles(soup: BeautifulSoup) -> list[tuple[Any, dict[str, list[Any]], _Computed]]:
    """Each element with its declarations (style sheet, then `<font color>`, then inline) and computed style,
    in document order (parents before children)."""
    from bs4 import Tag

    declared: dict[int, dict[str, list[Any]]] = {}
    for tags, declarations in _stylesheet_rules(soup):
        for tag in tags:
            declared.setdefault(id(tag), {}).update(declarations)
    computed: dict[int, _Computed] = {}
    result = []
    for tag in soup.find_all(True):
        style = dict(declared.get(id(tag), {}))
        if tag.name == "font" and tag.get("color"):
            style.setdefault("color", _declarations(f"color: {tag['color']}").get("color", []))
        if tag.get("bgcolor"):
            style.setdefault(
                "background-color", _declarations(f"background-color: {tag['bgcolor']}").get("background-color", [])
            )
        style.update(_declarations(str(tag.get("style", ""))))
        parent = tag.parent if isinstance(tag.parent, Tag) else None
        inherited = computed.get(id(parent), _Computed()) if parent is not None else _Computed()
        own = _Computed(**vars(inherited))
        if (colour := _colour(style.get("color", []))) is not None:
            own.colour = colour
        background = style.get("background-color") or style.get("background", [])[:1]
        if (fill := _colour(background)) is not None and fill[3] >= 0.95:
            own.background = fill
        if (pixels := _pixels(style.get("font-size", []), inherited.font_pixels)) is not None:
            own.font_pixels = pixels
        if visibility := _keyword(style.get("visibility", [])):
            own.visibility = visibility
        computed[id(tag)] = own
        result.append((tag, style, own))
    return result


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
    inside: set[int] = set()
    """Elements hidden themselves or inside a hidden one: known from the parent in document order, so a deep
    document is not walked back up to its root for every hidden element."""
    for tag, style, computed in _computed_styles(soup):
        why = None
        if tag.has_attr("hidden"):
            why = "HTML hidden attribute"
        elif tag.get("type") == "hidden" and tag.get("value"):
            why = "hidden form field"
        elif tag.name not in ("html", "head", "style", "script", "title") and (css := _css_hiding(style, computed)):
            why = f"CSS-hidden HTML ({css})"
        if id(tag.parent) in inside:
            inside.add(id(tag))
        elif why:
            inside.add(id(tag))
            marked.append((tag, why))
    for tag, why in marked:
        if tag.decomposed:
            continue
        text = tag.get("value", "") if tag.get("type") == "hidden" else tag.get_text("\n", strip=True)
        if str(text).strip():
            sections.append(Section(str(text), {HIDDEN: why}))
        tag.decompose()
    return sections


def _html(markup: str) -> tuple[list[Section], str]:
    """Scripts and styles dropped; headings become Markdown headings so sections follow them; hidden text apart.

    The title: the page's `<title>`, else its first visible `<h1>` (or a first line that reads as a heading).
    BeautifulSoup is imported here, as Tag and Comment below: the server's first page loads this module's
    Section type and never parses a page."""
    from bs4 import BeautifulSoup

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
