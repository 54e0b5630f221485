"""Structure-aware chunks: never across a page, section or slide, with overlap inside one.

Each chunk starts with its section heading when it has one, so both retrievers see the topic even
when the chunk's own words do not repeat it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kb.extract import HIDDEN, Section

if TYPE_CHECKING:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

SEPARATORS = ["\n\n", "\n", ". ", "; ", ", ", " ", ""]


@dataclass(frozen=True)
class Chunk:
    """One retrievable piece of text and where it sits in its source."""

    index: int
    text: str
    location: dict[str, Any]

    @property
    def content_hash(self) -> str:
        return content_hash(self.text, self.location)


def content_hash(text: str, location: dict[str, Any]) -> str:
    """Identifies a chunk's content, so an unchanged chunk is never re-embedded."""
    return hashlib.sha256(f"{sorted(location.items())!r}\x00{text}".encode()).hexdigest()


def make_splitter(chunk_size: int, chunk_overlap: int) -> RecursiveCharacterTextSplitter:
    """Imported here: LangChain's splitters cost a quarter of a second to import, and the server's first page (which
    builds the analyser, and so imports this module) splits nothing."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=min(chunk_overlap, chunk_size // 2),
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )


def chunk_sections(sections: list[Section], *, chunk_size: int = 400, chunk_overlap: int = 80) -> list[Chunk]:
    """Split every section on its own; the heading (section/slide title) leads each of its chunks. A piece that is
    the heading alone (split off before a long list or table) is no chunk of its own: it leads the next ones, and
    alone it would be found and quoted as if it were an answer."""
    splitter = make_splitter(chunk_size, chunk_overlap)
    chunks: list[Chunk] = []
    for section in sections:
        heading = _heading(section.location)
        pieces = splitter.split_text(section.text)
        for piece in pieces:
            if len(pieces) > 1 and heading and piece.strip() == heading:
                continue
            text = piece if not heading or piece.startswith(heading) else f"{heading}\n{piece}"
            chunks.append(Chunk(len(chunks), text, dict(section.location)))
    return chunks


def _heading(location: dict[str, Any]) -> str:
    path = location.get("section") or location.get("title") or ""
    return str(path).rsplit(" > ", 1)[-1]


def describe_location(location: dict[str, Any]) -> str:
    """A person-readable citation: 'page 3', 'slide 2 (Setup)', 'section Install > Linux'."""
    parts = []
    if "attachment" in location:
        parts.append(f"attachment {location['attachment']}")
    if "part" in location and location["part"] != "body":
        parts.append(str(location["part"]))
    for key in ("page", "slide", "section", "table", "rows"):
        if key in location and location[key] not in (None, ""):
            parts.append(f"{key} {location[key]}")
    if "title" in location and "slide" in location:
        parts[-1] += f" ({location['title']})"
    if HIDDEN in location:
        parts.append(f"hidden ({location[HIDDEN]})")
    return ", ".join(parts)
