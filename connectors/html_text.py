"""The text of an HTML e-mail as its reader sees it: inline elements stay inside their sentence, blocks start
lines, and text the mail hides from its reader (CSS display:none and the like) is taken out and kept apart.

Hidden text in a mail is either a preheader or someone talking to a machine behind the reader's back: it must not
read as what the customer wrote, so the operator sees it separately, marked as hidden.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "hr", "figure"}
)
LINE_TAGS = frozenset(
    {
        "div",
        "li",
        "tr",
        "dt",
        "dd",
        "section",
        "article",
        "header",
        "footer",
        "nav",
        "aside",
        "main",
        "address",
        "form",
        "fieldset",
        "caption",
        "center",
        "tbody",
        "thead",
        "tfoot",
        "body",
    }
)
DROPPED_TAGS = ("script", "style", "head", "title", "template", "noscript", "svg", "object", "iframe")
SPACES = re.compile(r"[ \t\r\n\f\v\u00a0]+")
LINE, PARAGRAPH = "\x1e", "\x1d"
"""Block boundaries while rendering; adjacent ones merge into the larger (nested blocks give one break)."""
BOUNDARIES = re.compile(r"[ \t]*[\x1d\x1e][\x1d\x1e \t]*")
ZERO = re.compile(r"^[+-]?0*\.?0+(px|pt|em|rem|%|)$")


@dataclass(frozen=True)
class HiddenText:
    """Text the HTML hides from its reader, and how it hides it."""

    text: str
    how: str


def hidden_text_info(hidden: list[HiddenText]) -> dict[str, object]:
    """Hidden text as a source item keeps it in `additional_info` (ingest holds such a ticket for a person)."""
    return {"hidden_text": [{"how": item.how, "text": item.text[:20_000]} for item in hidden[:50]]} if hidden else {}


def html_to_text(html: str) -> str:
    """The visible text of `html`, as a reader sees it (hidden text left out)."""
    return html_text(html)[0]


def html_text(html: str) -> tuple[str, list[HiddenText]]:
    """The visible text of `html` and, apart, the text it hides from its reader."""
    from bs4 import BeautifulSoup, Comment

    soup = BeautifulSoup(html, "lxml")
    for comment in soup.find_all(string=lambda node: isinstance(node, Comment)):
        comment.extract()
    hidden = _take_hidden(soup)
    for tag in soup(list(DROPPED_TAGS)):
        tag.decompose()
    chunks: list[str] = []
    _render(soup, chunks, preformatted=False)
    return _tidy("".join(chunks)), hidden


def _render(node: Any, chunks: list[str], *, preformatted: bool) -> None:
    from bs4 import NavigableString, Tag

    for child in node.children:
        if isinstance(child, NavigableString):
            if type(child) is NavigableString or child.__class__.__name__ == "CData":
                chunks.append(str(child) if preformatted else SPACES.sub(" ", str(child)))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if name == "br":
            chunks.append("\n")
            continue
        if name == "img":
            if alt := str(child.get("alt") or "").strip():
                chunks.append(f" {alt} ")
            continue
        separator = PARAGRAPH if name in PARAGRAPH_TAGS else LINE if name in LINE_TAGS else ""
        chunks.append(separator)
        if name == "li":
            chunks.append("- ")
        elif name in ("td", "th"):
            chunks.append(" ")
        _render(child, chunks, preformatted=preformatted or name == "pre")
        if name in ("td", "th"):
            chunks.append(" ")
        chunks.append(separator)


def _tidy(text: str) -> str:
    text = BOUNDARIES.sub(lambda run: "\n\n" if PARAGRAPH in run.group(0) else "\n", text)
    lines = [line.strip(" \t") for line in text.split("\n")]
    joined = "\n".join(SPACES.sub(" ", line) if line else "" for line in lines)
    return re.sub(r"\n{3,}", "\n\n", joined).strip()


def _take_hidden(soup: Any) -> list[HiddenText]:
    """Take out every element hidden from the reader (outermost first), returning its text."""
    from bs4 import Tag

    rules = _stylesheet_rules(soup)
    found: list[tuple[Tag, str]] = []
    for tag in soup.find_all(True):
        if tag.name in DROPPED_TAGS:
            continue
        declarations: dict[str, str] = {}
        for matched, rule in rules:
            if id(tag) in matched:
                declarations.update(rule)
        declarations.update(_declarations(str(tag.get("style") or "")))
        how = "HTML hidden attribute" if tag.has_attr("hidden") else _hiding(declarations)
        if how:
            found.append((tag, how))
    marked = {id(tag) for tag, _ in found}
    hidden = []
    for tag, how in found:
        if any(id(parent) in marked for parent in tag.parents):
            continue
        text = _tidy(tag.get_text(" "))
        if text:
            hidden.append(HiddenText(text, how))
        tag.decompose()
    return hidden


def _hiding(style: dict[str, str]) -> str | None:
    """How these declarations hide an element from its reader, if they do."""
    if style.get("display") == "none":
        return "display:none"
    if style.get("visibility") in ("hidden", "collapse"):
        return "visibility:hidden"
    if ZERO.match(style.get("opacity", "1")):
        return "opacity:0"
    if ZERO.match(style.get("font-size", "1")):
        return "font-size:0"
    if any(ZERO.match(style.get(name, "1")) for name in ("max-height", "height")) and style.get("overflow") == "hidden":
        return "zero height"
    return None


def _declarations(css: str) -> dict[str, str]:
    """A CSS declaration block read by a CSS parser: property name to its value, lower case (later wins)."""
    import tinycss2

    return {
        item.lower_name: tinycss2.serialize(item.value).strip().lower().removesuffix("!important").strip()
        for item in tinycss2.parse_blocks_contents(css, skip_whitespace=True, skip_comments=True)
        if item.type == "declaration"
    }


def _stylesheet_rules(soup: Any) -> list[tuple[set[int], dict[str, str]]]:
    """Every `<style>` rule as (the ids of the elements it matches, its declarations), in source order."""
    import tinycss2

    rules = []
    for style in soup.find_all("style"):
        for rule in tinycss2.parse_stylesheet(style.get_text(), skip_whitespace=True, skip_comments=True):
            if rule.type != "qualified-rule":
                continue
            selectors = tinycss2.serialize(rule.prelude).strip()
            try:
                matched = {id(tag) for tag in soup.select(selectors)}
            except Exception as error:  # a selector soupsieve cannot read: inline styles are still checked
                log.info("CSS selector %r not understood, skipped: %s", selectors[:80], error)
                continue
            rules.append((matched, _declarations(tinycss2.serialize(rule.content))))
    return rules
