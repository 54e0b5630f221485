"""Undo the disguises attackers put on text before any rule or model reads it.

Instructions hidden from a person but not from a model (homoglyphs, invisible characters, full-width letters,
leetspeak, HTML comments, base64/hex/ROT13/URL/quoted-printable runs) are turned back into plain text.
`views(text)` returns the normalised text first, then one extra "view" per decoded or extracted piece.
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
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufe00-\ufe0f\ufeff\U000e0000-\U000e007f]"
)
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
    """The form every rule reads: NFKC, no invisible characters, look-alikes as ASCII, no accents, lower case."""
    text = INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).translate(CONFUSABLES)
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


def _views(text: str, depth: int) -> list[str]:
    clean = INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).translate(CONFUSABLES)
    normalised = fold(clean)
    found = [normalised]
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
