"""Text out of the files support leads drop in, with where each piece came from (page, section, slide).

The type is read from the bytes, not trusted from the name: a PDF renamed `.txt` is still a PDF.
A bad file never raises: it comes back with a status and a message a person can act on.
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import PurePath
from typing import Any

from bs4 import BeautifulSoup

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
    result = Extraction(kind, title=PurePath(filename).stem or filename)
    try:
        if kind == "pdf":
            result.sections = _pdf(data)
        elif kind == "docx":
            result.sections, title = _docx(data)
            result.title = title or result.title
        elif kind == "pptx":
            result.sections = _pptx(data)
        elif kind == "html":
            result.sections, title = _html(_decode(data))
            result.title = title or result.title
        elif kind == "markdown":
            result.sections = _markdown(_decode(data))
        elif kind == "csv":
            result.sections = _csv(_decode(data))
        elif kind == "text":
            result.sections = [Section(_decode(data).strip(), {})]
        elif kind == "eml":
            result.sections, title, result.warnings = _eml(
                data, max_bytes=max_bytes, tesseract_cmd=tesseract_cmd, ocr_languages=ocr_languages, depth=depth
            )
            result.title = title or result.title
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


def _pdf(data: bytes) -> list[Section]:
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
        return [Section(page.extract_text() or "", {"page": number}) for number, page in enumerate(reader.pages, 1)]
    except FileNotDecryptedError:
        raise ExtractionError(ENCRYPTED, "the PDF is password-protected; upload an unprotected copy") from None


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


def _docx(data: bytes) -> tuple[list[Section], str | None]:
    from docx import Document

    _refuse_zip_bomb(data)
    document = Document(io.BytesIO(data))
    sections: list[Section] = []
    path: list[str] = []
    lines: list[str] = []
    title = document.core_properties.title or None

    def flush() -> None:
        if lines:
            sections.append(Section("\n".join(lines), {"section": " > ".join(path)} if path else {}))
            lines.clear()

    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        text = paragraph.text.strip()
        level = _heading_level(style)
        if level and text:
            flush()
            path[:] = [*path[: level - 1], text]
            title = title or (text if style == "Title" else None)
            lines.append(text)
        elif text:
            lines.append(text)
    flush()
    for number, table in enumerate(document.tables, 1):
        rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows]
        sections.append(Section("\n".join(rows), {"table": number}))
    return sections, title


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return int(match.group(1)) if match else 0


def _pptx(data: bytes) -> list[Section]:
    from pptx import Presentation

    _refuse_zip_bomb(data)
    sections = []
    for number, slide in enumerate(Presentation(io.BytesIO(data)).slides, 1):
        texts: list[str] = []
        title = ""
        for shape in slide.shapes:
            if shape.has_text_frame and shape.text_frame.text.strip():
                texts.append(shape.text_frame.text.strip())
                if shape == slide.shapes.title:
                    title = shape.text_frame.text.strip()
            if getattr(shape, "has_table", False) and shape.has_table:
                texts.extend(" | ".join(cell.text for cell in row.cells) for row in shape.table.rows)
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            texts.append(slide.notes_slide.notes_text_frame.text)
        location: dict[str, Any] = {"slide": number}
        if title:
            location["title"] = title
        sections.append(Section("\n".join(texts), location))
    return sections


def _html(markup: str) -> tuple[list[Section], str | None]:
    """Scripts and styles dropped; headings become Markdown headings so sections follow them."""
    soup = BeautifulSoup(markup, "lxml")
    title_tag = soup.find("title")
    title = title_tag.get_text(strip=True) if title_tag else ""
    for tag in soup(["script", "style", "noscript", "template", "svg", "head"]):
        tag.decompose()
    for level in range(1, 7):
        for heading in soup.find_all(f"h{level}"):
            heading.replace_with(f"\n\n{'#' * level} {heading.get_text(' ', strip=True)}\n\n")
    text = soup.get_text("\n")
    return _markdown(text), title or None


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
        body = _markdown_text_of_html(content) if body_part.get_content_type() == "text/html" else content
        sections.append(Section(body, {"part": "body"}))
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


def _markdown_text_of_html(markup: str) -> str:
    return "\n\n".join(section.text for section in _html(markup)[0])


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
