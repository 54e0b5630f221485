"""What a customer's plain-text reply to a resolution says: solved (thanks, it works), still broken, or neither.

Rules, not a model: a reply is `solved` only when it thanks or confirms and says nothing that the problem goes
on or asks anything; every doubt is `unsolved` or `unclear`, and both re-open the ticket, so a wrong guess
costs a person a look, never a customer an unanswered problem. Quoted text (our own message) is ignored.
"""

from __future__ import annotations

import re
from typing import Literal

ReplyVerdict = Literal["solved", "unsolved", "unclear"]

QUOTE_START = re.compile(
    r"^(on .{0,200} wrote:|-{2,}\s*original message\s*-{2,}|from:\s.+|le .{0,200} a écrit\s*:|am .{0,200} schrieb.*:)$",
    re.IGNORECASE,
)
STILL_BROKEN = re.compile(
    r"\b(still|not (?:work|fix|solv|resolv|help)\w*"
    r"|(?:does|did|do|is|was|has|have)n[o']?t (?:work|fix|solv|resolv|help)\w*"
    r"|no luck|same (?:error|problem|issue|message)|(?:error|problem|issue)s? (?:persists?|remains?|is back|came back)"
    r"|again|neither|nothing (?:changed|happens|worked)|unfortunately|however|but|won'?t|can'?t|cannot|unable|fails?"
    r"|failed|broken|wrong|noch immer|funktioniert nicht|ne fonctionne pas|toujours)\b",
    re.IGNORECASE,
)
SOLVED = re.compile(
    r"\b(thanks?|thank you|thx|cheers|solved|fixed|resolved|works?(?: now| again| fine| great)?|working(?: now| again)"
    r"|that did it|did the trick|all good|perfect|great|sorted|danke|merci|gelöst|résolu)\b",
    re.IGNORECASE,
)
MAX_SOLVED_WORDS = 60
"""A long reply is rarely just "thanks": it describes something, so a person reads it."""


def reply_text(body: str) -> str:
    """The customer's own words: lines above the first quote header, without `>` quoted lines."""
    kept = []
    for line in body.splitlines():
        stripped = line.strip()
        if QUOTE_START.match(stripped):
            break
        if not stripped.startswith(">"):
            kept.append(stripped)
    return " ".join(part for part in kept if part)


def classify_reply(body: str) -> ReplyVerdict:
    """`solved` for a short thanks / confirmation, `unsolved` when it says the problem goes on, else `unclear`."""
    text = reply_text(body)
    if STILL_BROKEN.search(text):
        return "unsolved"
    if "?" not in text and SOLVED.search(text) and len(text.split()) <= MAX_SOLVED_WORDS:
        return "solved"
    return "unclear"
