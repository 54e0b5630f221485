"""Undo the disguises attackers put on text before any rule or model reads it.

Instructions hidden from a person but not from a model (homoglyphs, invisible characters, full-width letters,
leetspeak, HTML comments, base64/hex/ROT13/URL/quoted-printable runs) are turned back into plain text.
`views(text)` returns the normalised text first, then one extra "view" per decoded or extracted piece.
Text a reader cannot see is never dropped unread: Unicode tag characters and variation-selector runs are decoded into
a view, blank look-alikes become spaces, letter-spaced words are joined, and `hidden_text_reasons` names each trick.
Every step is bounded so a 2 MB ticket costs milliseconds, not seconds.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
import re
import unicodedata
from urllib.parse import unquote

MAX_DEPTH = 2  # a decoded run is decoded again once (base64 inside base64), no further
MAX_RUNS = 20  # encoded runs decoded per text
MAX_DECODED = 64_000  # characters of decoded text kept per text
MIN_RUN = 16  # shorter runs are ordinary words and IDs

INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufe00-\ufe0f\ufeff\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
BLANKS = re.compile("[\u115f\u1160\u1680\u180e\u2800\u3164\uffa0]")
"""Characters that show as blank space (Braille blank, Hangul fillers): read as spaces, never deleted."""
EMOJI_TAG_SEQUENCE = re.compile("\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{1,7}\U000e007f")
"""A flag emoji (Scotland, Wales...) is written with tag characters: the one legitimate use, left alone."""
TAG_RUN = re.compile("[\U000e0001\U000e0020-\U000e007f]+")
SELECTOR_RUN = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]{4,}")
"""Four or more variation selectors in a row carry bytes (one per selector), not an emoji's presentation."""
MARK_PILE = re.compile("[\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]{3,}")
"""Three or more combining marks on one letter: no language stacks them (Vietnamese has two at most)."""
MIN_MARK_PILES = 2
LETTER_SPACED = re.compile(r"(?<!\S)(?:[^\W\d_] {1,3}){4,}[^\W\d_](?!\S)")
"""Five or more single letters with spaces between them ("i g n o r e  p r e v i o u s")."""
MIN_SPACED_LETTERS = 6
# Cyrillic, Greek and Latin-extension letters that look like ASCII ones (after NFKC, which already folds
# full-width and mathematical letters). Unicode's confusables list is larger; these are the ones used in attacks.
CONFUSABLES = str.maketrans(
    dict(
        (  # noqa: SIM905  look-alike, then the ASCII letter it imitates
            "аa ᴀa ɑa αa вb сc ϲc еe єe ёe ԑe ҽe εe һh іi їi ıi ɩi ιi јj κk кk ⅼl ӏl мm ոn οo оo рp ρp ԛq ѕs "
            "тt τt υu սu νv ѵv ԝw ѡw хx χx уy үy γy ᴢz ɡg АA ВB ΒB СC ЕE ΕE НH ΗH ІI ΙI ЈJ КK ΚK МM ΜM ΝN "
            "ОO ΟO РP ΡP ЅS ТT ΤT ХX ΧX УY ΥY ΖZ"
        ).split()
    )
)
LEET = str.maketrans("013457@$|!", "oieastasii")
# Words written with leet digits ("1gn0r3", "$ystem"); digits no letter hides behind (2, 6, 8, 9) never count.
LEET_WORD = re.compile(r"(?<![\w@$|!])[a-z013457@$|!]*[013457@$|!][a-z013457@$|!]*(?![\w@$|!])")
MIXED_LEET_WORD = re.compile(r"(?<![\w@$|!])(?=[a-z013457@$|!]*[a-z])[a-z013457@$|!]*[013457@$|!][a-z013457@$|!]*")
MIN_LEET_WORDS = 2  # a text with fewer mixed words is ordinary (a "Win10" or "v3" here and there)
COMMON_LETTERS = frozenset("etaoinsrh")
PLAIN_WORD = re.compile(r"\b[a-z]{2,20}\b")  # the most frequent letters of English and its European neighbours
STRIP_ACCENTS = re.compile(r"[\u0300-\u036f]")
SPACE = re.compile(r"[ \t\u00a0]+")

HTML_COMMENT = re.compile(r"<!--(.*?)(?:-->|$)", re.DOTALL)
HIDDEN_HTML = re.compile(
    r"<(\w+)[^>]*style\s*=\s*[\"'][^\"']*(?:display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|"
    r"opacity\s*:\s*0|color\s*:\s*(?:#fff\b|#ffffff|white))[^\"']*[\"'][^>]*>(.*?)</\1\s*>",
    re.IGNORECASE | re.DOTALL,
)
HTML_TAG = re.compile(r"<[^>]{1,400}>")
BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{%d,}={0,2}" % MIN_RUN)  # noqa: UP031
BASE32_RUN = re.compile(r"(?<![A-Z2-7])[A-Z2-7]{%d,}={0,6}" % MIN_RUN)  # noqa: UP031
HEX_RUN = re.compile(r"(?:(?:\\x|0x)?[0-9a-fA-F]{2}[\s:,-]?){%d,}" % (MIN_RUN // 2))  # noqa: UP031
PERCENT = re.compile(r"%[0-9a-fA-F]{2}")
QP_SEQUENCE = re.compile(r"=[0-9A-F]{2}|=\r?\n")


def fold(text: str) -> str:
    """The form every rule reads: NFKC, blanks as spaces, no invisible characters, look-alikes as ASCII, no accents,
    lower case."""
    text = INVISIBLE.sub("", BLANKS.sub(" ", unicodedata.normalize("NFKC", text))).translate(CONFUSABLES)
    text = STRIP_ACCENTS.sub("", unicodedata.normalize("NFD", text))
    return SPACE.sub(" ", unicodedata.normalize("NFC", text)).casefold()


def _common_letter_share(text: str) -> float:
    """How much `text` reads like a language: share of common letters in word-sized words (hashes left out)."""
    letters = "".join(PLAIN_WORD.findall(text))
    return sum(char in COMMON_LETTERS for char in letters) / len(letters) if letters else 0.0


FUNCTION_WORDS = frozenset(
    PLAIN_WORD.findall(
        "the and you your to of in is it for with on this that are be not from as at or if all any now new my our "
        "ignore reply answer send tell include password"
    )
)
"""Words almost every English sentence has (and a few an attacker needs): ROT13 turns them into gibberish."""


def _function_words(text: str) -> int:
    return sum(word in FUNCTION_WORDS for word in PLAIN_WORD.findall(text))


def _reads_better_rotated(text: str, rotated: str) -> bool:
    """ROT13 hides a sentence when rotating brings back more common words (a whole message, or a run in one),
    or when the letters read more like a language."""
    gained = _function_words(rotated) - _function_words(text)
    return gained >= 3 or _common_letter_share(rotated) > _common_letter_share(text) + 0.15


def _printable_text(raw: bytes) -> str | None:
    """Decoded bytes that are readable text (not a hash, an image or an ID), else None."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    letters = sum(char.isalpha() for char in text)
    printable = sum(char.isprintable() or char in "\n\r\t" for char in text)
    return text if text and printable / len(text) > 0.95 and letters / len(text) > 0.5 and " " in text else None


def _decode_run(run: str, kind: str) -> str | None:
    try:
        if kind == "base64":
            padded = run.rstrip("=") + "=" * (-len(run.rstrip("=")) % 4)
            raw = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
        elif kind == "base32":
            raw = base64.b32decode(run.rstrip("=") + "=" * (-len(run.rstrip("=")) % 8))
        else:
            raw = bytes.fromhex(re.sub(r"\\x|0x|[\s:,-]", "", run))
    except (binascii.Error, ValueError):
        return None
    nested = raw.decode("ascii", "replace")
    return _printable_text(raw) or (nested if BASE64_RUN.fullmatch(nested) or HEX_RUN.fullmatch(nested) else None)


def _decoded_runs(text: str) -> list[str]:
    """Readable text hidden in base64, base32, hex, percent-encoded or quoted-printable runs."""
    found: list[str] = []
    for kind, pattern in (("hex", HEX_RUN), ("base64", BASE64_RUN), ("base32", BASE32_RUN)):
        for match in pattern.finditer(text):
            if len(found) >= MAX_RUNS:
                return found
            if (decoded := _decode_run(match.group(0).strip(), kind)) is not None:
                found.append(decoded)
    if len(PERCENT.findall(text[:MAX_DECODED])) >= 3:
        found.append(unquote(text[:MAX_DECODED]))
    if len(QP_SEQUENCE.findall(text[:MAX_DECODED])) >= 3:
        found.append(quopri.decodestring(text[:MAX_DECODED].encode("utf-8", "replace")).decode("utf-8", "replace"))
    return found


def _hidden_html(text: str) -> list[str]:
    """HTML comments, invisible elements, and the text without its tags (instructions split by markup)."""
    if "<" not in text:
        return []
    found = [m.group(1) for m in HTML_COMMENT.finditer(text)] + [m.group(2) for m in HIDDEN_HTML.finditer(text)]
    if HTML_TAG.search(text):
        found.append(HTML_TAG.sub("", text))
    return found[:MAX_RUNS]


def _decode_tags(run: str) -> str:
    return "".join(chr(ord(char) - 0xE0000) for char in run if ord(char) >= 0xE0020 and ord(char) != 0xE007F)


def _decode_selectors(run: str) -> str:
    """Variation selectors as bytes (VS1-16: 0-15, VS17-256: 16-255), read as UTF-8."""
    values = [ord(char) - 0xFE00 if ord(char) < 0xE0000 else ord(char) - 0xE0100 + 16 for char in run]
    return bytes(values).decode("utf-8", "replace")


def tags_decoded(text: str) -> str:
    """`text` with smuggled tag characters and variation-selector runs in place as the ASCII they encode."""
    text = TAG_RUN.sub(lambda m: _decode_tags(m.group(0)), EMOJI_TAG_SEQUENCE.sub("", text))
    return SELECTOR_RUN.sub(lambda m: " " + _decode_selectors(m.group(0)) + " ", text)


def letter_spacing_joined(text: str) -> str:
    """Letter-spaced runs joined into words: one space between letters goes, a wider gap stays a space."""

    def join(match: re.Match[str]) -> str:
        return re.sub(r" {2,}", "\0", match.group(0)).replace(" ", "").replace("\0", " ")

    return LETTER_SPACED.sub(join, text)


def hidden_text_reasons(text: str) -> list[str]:
    """How `text` hides part of itself from a reader; each trick is named, and what it hid is kept as a view."""
    text = text[: MAX_DECODED * 4]
    reasons = []
    if smuggled := "".join(_decode_tags(run) for run in TAG_RUN.findall(EMOJI_TAG_SEQUENCE.sub("", text))).strip():
        reasons.append(f"smuggled text in invisible Unicode tag characters: {smuggled[:60]!r}")
    if runs := SELECTOR_RUN.findall(text):
        reasons.append(f"smuggled text in Unicode variation selectors: {_decode_selectors(runs[0])[:60]!r}")
    if len(MARK_PILE.findall(text)) >= MIN_MARK_PILES:
        reasons.append("letters buried under piles of combining marks")
    if re.search(r"[^\W\d_]" + BLANKS.pattern + r"+[^\W\d_]", text):
        reasons.append("blank look-alike characters (Braille blank, Hangul filler) used as spaces")
    spaced = [
        run
        for run in LETTER_SPACED.findall(unicodedata.normalize("NFKC", text))
        if len(run.replace(" ", "")) >= MIN_SPACED_LETTERS
    ]
    if spaced:
        reasons.append(f"letter-spaced words: {letter_spacing_joined(spaced[0])[:60]!r}")
    return reasons


def _views(text: str, depth: int) -> list[str]:
    clean = INVISIBLE.sub("", BLANKS.sub(" ", unicodedata.normalize("NFKC", text))).translate(CONFUSABLES)
    normalised = fold(clean)
    found = [normalised]
    if TAG_RUN.search(text) or SELECTOR_RUN.search(text):
        found.append(fold(tags_decoded(unicodedata.normalize("NFKC", text))))
    if MARK_PILE.search(clean):
        found.append(fold(MARK_PILE.sub("", clean)))
    if LETTER_SPACED.search(clean):
        found.append(fold(letter_spacing_joined(clean)))
    if len(MIXED_LEET_WORD.findall(normalised, 0, MAX_DECODED)) >= MIN_LEET_WORDS:
        found.append(LEET_WORD.sub(lambda m: m.group(0).translate(LEET), normalised))
    rotated = codecs.encode(normalised, "rot13")
    if _reads_better_rotated(normalised[:MAX_DECODED], rotated[:MAX_DECODED]):
        found.append(rotated)
    hidden = _hidden_html(clean)
    found += [fold(piece) for piece in hidden]
    if depth <= MAX_DEPTH:
        budget = MAX_DECODED
        for decoded in _decoded_runs(clean):
            budget -= len(decoded)
            if budget < 0:
                break
            found += _views(decoded, depth + 1)
    return found


def views(text: str) -> list[str]:
    """The normalised text, then every decoded or extracted piece of it, each folded like the first."""
    unique: dict[str, None] = dict.fromkeys(view for view in _views(text or "", 1) if view.strip())
    return list(unique) or [""]
