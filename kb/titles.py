"""A document's title as its readers know it: its own heading, not the name of the file it came in.

Titles are document text, so untrusted: markup is stripped, whitespace collapsed and the length bounded before a
title reaches a citation, a page or a draft. A document without a usable heading is called by its file name made
readable ("plans-billing-invoices.md" reads "Plans billing invoices").
"""

from __future__ import annotations

import re
import unicodedata

TITLE_MAX = 120
"""A title longer than this is cut at a word and ends with an ellipsis."""
HEADING_MAX_WORDS = 16
"""A first line with more words than this is a sentence, not a heading."""
FILE_EXTENSION = re.compile(r"\.(pdf|docx|pptx|md|markdown|txt|html?|csv|tsv|eml|png|jpe?g|tiff?)$", re.IGNORECASE)
_TAG = re.compile(r"<[^>]{0,200}>")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|`|~~)")
_ATX = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_SETEXT = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_FRONT_MATTER_TITLE = re.compile(r"^title\s*:\s*(.+)$", re.IGNORECASE)
_NOT_A_TITLE = re.compile(
    r"^(untitled.*|document\d*|presentation\d*|slide \d+|microsoft (word|powerpoint) - .*|.*\.[a-z]{2,4})$",
    re.IGNORECASE,
)
"""What office tools write into a file's title property when nobody gave it one."""


def clean_title(text: str | None) -> str:
    """`text` as a title: no markup or control characters, single spaces, at most TITLE_MAX characters."""
    text = _LINK.sub(r"\1", _TAG.sub(" ", text or ""))
    text = _EMPHASIS.sub("", text)
    text = "".join(char if char.isprintable() else " " for char in text)
    text = " ".join(text.split()).strip(" #>|-")
    if len(text) <= TITLE_MAX:
        return text
    cut = text[: TITLE_MAX - 1].rsplit(" ", 1)[0] or text[: TITLE_MAX - 1]
    return cut.rstrip(" ,;:-") + "…"


FILENAME_MAX = 500
"""kb_documents.filename is VARCHAR(500): PostgreSQL refuses a longer value (SQLite would keep it silently)."""
EXTENSION_MAX = 16
UNSEEN = {"Cc", "Cf", "Cs", "Co", "Cn"}
"""Control, format (zero-width, bidi overrides that make `invoice\u202efdp.exe` read as an innocent name), unpaired
surrogate (a file name that is not UTF-8 on disk), private-use and unassigned characters: none belongs in a name."""


def knowledge_filename(raw: str) -> tuple[str, str]:
    """The name a knowledge file is kept under, and what was changed to get it ("" when nothing): characters
    nobody can see (NUL and the other UNSEEN ones) removed, and at most FILENAME_MAX characters with the extension
    kept, so the file is stored whatever it was called instead of failing on PostgreSQL."""
    changes = []
    name = "".join(char for char in raw if unicodedata.category(char) not in UNSEEN).strip()
    if name != raw.strip():
        changes.append("control or invisible characters removed")
    if not name:
        name = "document"
        changes.append("no name left, called 'document'")
    if len(name) > FILENAME_MAX:
        stem, dot, extension = name.rpartition(".")
        extension = f"{dot}{extension}" if stem and len(extension) < EXTENSION_MAX else ""
        name = name[: FILENAME_MAX - len(extension)].rstrip() + extension
        changes.append(f"shortened to {FILENAME_MAX} characters" + (f", keeping {extension}" if extension else ""))
    return name, "; ".join(changes)


def readable_name(filename: str) -> str:
    """A file name as words: extension dropped, dashes and underscores as spaces, first letter capital."""
    text = " ".join(FILE_EXTENSION.sub("", filename.strip()).replace("_", " ").replace("-", " ").split())
    return clean_title(text[:1].upper() + text[1:]) or "Untitled"


def heading_line(line: str) -> str:
    """The line as a title when it reads as a heading (short, not a sentence that ends in a period); else ""."""
    text = clean_title(line)
    if not text or text.endswith((".", ",", ";", ":", "…")) or len(text.split()) > HEADING_MAX_WORDS:
        return ""
    return text if any(char.isalpha() for char in text) else ""


def markdown_title(text: str) -> str:
    """The first level-1 heading (`# Title` or a setext `Title` over `===`), a front-matter `title:`, or else the
    first line when it is a heading of any level or reads as one; "" when none."""
    lines = text.splitlines()
    start = 0
    if lines and lines[0].strip() == "---":
        end = next((index for index in range(1, len(lines)) if lines[index].strip() in ("---", "...")), 0)
        for line in lines[1:end]:
            match = _FRONT_MATTER_TITLE.match(line.strip())
            if match and (title := clean_title(match.group(1).strip("'\""))):
                return title
        start = end + 1
    first = ""
    in_fence = False
    previous = ""
    for line in lines[start:]:
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
            previous = ""
            continue
        if in_fence:
            continue
        atx = _ATX.match(line)
        if atx and len(atx.group(1)) == 1 and (title := clean_title(atx.group(2))):
            return title
        setext = _SETEXT.match(line)
        if setext and previous.strip() and setext.group(1).startswith("=") and (title := clean_title(previous)):
            return title
        if not first and line.strip():
            first = clean_title(atx.group(2)) if atx else heading_line(line)
            first = first or "\0"
        previous = line
    return first.strip("\0")


def meaningful_title(title: str | None) -> str:
    """A title property worth showing ("" for "Untitled", "Document1", "Microsoft Word - x.docx", a file name)."""
    text = clean_title(title)
    return "" if _NOT_A_TITLE.match(text) else text
