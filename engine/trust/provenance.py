"""The last check before an automatic message leaves the desk: every word in it comes from a text we trust.

The check does not ask where an attacker's text might hide (a display name, a subject, a cited title, a model's
answer); it asks the opposite question of the finished message. Its subject, plain text, the HTML's text and the
header values are cut into words and symbols (after NFKC folding; invisible characters count as symbols, so smuggled
text is seen, never dropped), and each word must sit in a run of `RUN` consecutive words that one trusted text holds
in the same order, or be the whole of a trusted text shorter than that (a reference, a name, a heading). Trusted
texts are what the message was built from: the templates, the desk's settings, the ticket reference, the cited
knowledge passages and their titles, learned answers a person gave (operator text, never the question they
answered), and text our own code wrote for it. Anything else holds the message.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.trust.decision import TRUSTED_KINDS

RUN = 3
"""Words in a row that must appear together in one trusted text: a single common word proves nothing, three in the
same order tie the passage to its source, and template seams (template text around a value) still line up."""
TOKEN = re.compile(r"\w+|[^\w\s!-/:-@\[-`{-~]")
"""A word, or any single character that is neither a word character, a space nor ASCII punctuation: emoji, symbols,
invisible format characters (zero-width, Unicode tags) each count and must come from somewhere trusted."""
OUR_MARKS = re.compile(r"^[ \t]*\d{1,3}\.[ \t]+|\[\d{1,3}(?:,\s*\d{1,3})*\]", re.MULTILINE)
"""What the renderer adds around trusted text: step numbers ("2. ") and evidence markers ("[1, 3]")."""
SHOWN_ATTRIBUTES = ("href", "src", "alt", "title")
LOCATION_PARTS = re.compile(r"\s*(?:,|>|\(|\))\s*")


class UntrustedTextError(ValueError):
    """An automatic message carries text from nowhere trusted: it is not queued, and a person decides."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class RenderedMessage:
    """Everything of a message a recipient can see: subject, plain text, HTML and the header values we set."""

    subject: str
    body_text: str
    body_html: str = ""
    headers: tuple[str, ...] = ()

    def parts(self) -> list[str]:
        return [self.subject, self.body_text, html_text(self.body_html), *self.headers]


def html_text(markup: str) -> str:
    """An HTML body's text as a reader follows it (comments included), then the attributes a reader sees or follows."""
    if not markup:
        return ""
    from bs4 import BeautifulSoup, Doctype  # 0.1 s to import, and only mail with HTML needs it

    soup = BeautifulSoup(markup, "html.parser")
    strings = [str(text) for text in soup.find_all(string=True) if not isinstance(text, Doctype)]
    attributes = [str(tag.get(name)) for tag in soup.find_all(True) for name in SHOWN_ATTRIBUTES if tag.get(name)]
    return "\n".join(strings + attributes)


def words(text: str) -> list[str]:
    return TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


def location_texts(location: str) -> list[str]:
    """A citation's location ("section Install > Linux, page 3") as the pieces a citation may rearrange."""
    pieces = [piece for piece in LOCATION_PARTS.split(location) if piece.strip()]
    return pieces + [part for piece in pieces for part in piece.split(" ", 1)]


def cited_texts(evidence: Iterable[dict[str, object]]) -> list[str]:
    """The cited knowledge an analysis may quote: text, title and location of each cited passage that passed
    hygiene (or that a lead approved), and the visible rest of its section (kb/ledger.py's `section_text`). Web
    results and quarantined passages teach a message nothing."""
    texts = []
    for item in evidence:
        if not item.get("cited") or item.get("source_kind") not in TRUSTED_KINDS:
            continue
        if item.get("quarantine") and not item.get("approved_by"):
            continue
        texts += [str(item.get("text") or ""), str(item.get("passage") or ""), str(item.get("title") or "")]
        texts += location_texts(str(item.get("location") or ""))
    return texts


class TrustedWording:
    """The runs of words a message may be made of."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.runs: set[tuple[str, ...]] = set()
        self.short: set[tuple[str, ...]] = set()
        for text in texts:
            tokens = tuple(words(text))
            if len(tokens) < RUN:
                self.short.add(tokens)
            self.runs.update(tokens[index : index + RUN] for index in range(len(tokens) - RUN + 1))
        self.short.discard(())
        self.lengths = sorted({len(run) for run in self.short}, reverse=True)

    def foreign_runs(self, text: str) -> list[str]:
        """The runs of `text`'s words that no trusted text accounts for, in order."""
        tokens = words(OUR_MARKS.sub(" ", text))
        covered = [False] * len(tokens)
        for start in range(len(tokens)):
            if tuple(tokens[start : start + RUN]) in self.runs:
                covered[start : start + RUN] = [True] * RUN
            for length in self.lengths:
                if tuple(tokens[start : start + length]) in self.short:
                    covered[start : start + length] = [True] * length
        runs: list[list[str]] = []
        for index, token in enumerate(tokens):
            if covered[index]:
                continue
            if index and not covered[index - 1] and runs:
                runs[-1].append(token)
            else:
                runs.append([token])
        return [" ".join(run) for run in runs]


def untrusted_text(message: RenderedMessage, trusted: Sequence[str]) -> list[str]:
    """Why the message may not go out on its own: each run of words in it that comes from no trusted text."""
    wording = TrustedWording(trusted)
    found = dict.fromkeys(run for part in message.parts() for run in wording.foreign_runs(part))
    return [f"the message carries text from no trusted source ({run[:80]!r})" for run in found]
