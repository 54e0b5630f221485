"""What a ticket asks, sentence by sentence, and in which language: an automatic answer must answer all of it.

A ticket is split into its requests: every sentence that asks something or asks for something (a question, an
imperative, "I need", "please", and their equivalents in other languages), read after deobfuscation, plus every
sentence written in a language the desk cannot read (it cannot tell what such a sentence asks, so it never treats
it as absent) and every sentence smuggled in Unicode tag characters (decoded, flagged as hidden). Pure functions:
the knowledge base's languages and the coverage test are the caller's (engine/trust/decision.py).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass
from functools import lru_cache

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

from engine.trust.deobfuscate import fold, views

UNIT = re.compile(r"(?<=[.!?])\s+|(?<=[。！？؟।])|\n+")
"""Sentence ends: Latin punctuation before a space, CJK, Arabic and Devanagari stops, and line breaks."""
QUESTION_MARKS = "?？؟\u037e՞"
ASKING = re.compile(
    r"^(?:how|what|where|why|which|when|who|can|could|is|are|do|does|did|should|would|will|may|any)\b"
    r"|\b(?:i need|we need|i want|we want|i'?d like|we'?d like|i would like|we would like|please|pls|kindly"
    r"|looking for|trying to|want to|how to|how do)\b"
    # German, French, Spanish, Italian, Portuguese, Dutch, Polish, Czech, Turkish, Hungarian, Scandinavian, Russian
    r"|\b(?:bitte|ich (?:brauche|mochte|will)|wir (?:brauchen|mochten)|s'?il (?:vous|te) plait|svp|je (?:voudrais|veux)"
    r"|j'ai besoin|por favor|necesito|quiero|quisiera|per favore|vorrei|ho bisogno|gostaria|preciso|ik wil|graag"
    r"|alstublieft|a\.u\.b|prosze|potrzebuje|chce|chcialbym|chcialabym|prosim|potrebuji|lutfen|istiyorum|kerem"
    r"|szeretnem|vanligen|venligst)\b"
    r"|пожалуйста|будь ласка|请|請|ください|下さい|お願い|주세요|부탁|من فضلك|الرجاء|يرجى|أريد|कृपया|चाहिए",
    re.IGNORECASE,
)
"""Words that make a sentence ask or ask for something."""
VERBS = (
    r"add|allow|approve|assign|book|call|cancel|change|check|close|confirm|contact|create|delete|disable|email|e-mail"
    r"|enable|fix|forward|give|grant|install|let|lift|make|move|open|order|pay|phone|provide|put|raise|refund"
    r"|register|remove|rename|replace|reset|restore|ring|send|set|share|ship|show|sign|switch|tell|text|transfer"
    r"|turn|unlock|update|upgrade|use|verify|wire|write"
)
IMPERATIVE = re.compile(
    rf"^(?:(?:also|and|then|now|just|so|but|pls|please|kindly|urgently|asap)[,:]?\s+)*(?:{VERBS})\b", re.IGNORECASE
)
"""English imperatives ("Change my refund IBAN to ...", "Also call me back on ..."): the verbs a request starts with."""
SCENE = re.compile(
    r"^when\s+(?:i|we|i'?m|we'?re|i'?ve|we'?ve|my|our|it|the|they|he|she|this|that|there)\b", re.IGNORECASE
)
SCENE_ASKS = re.compile(
    rf"\b(?:{VERBS}|need|needs|want|wants|would like|must|have to|has to|should|you|your)\b"
    r"|@|https?:|www\.|\d[\d ()/.-]{6,}\d",
    re.IGNORECASE,
)
"""A sentence that opens with "When I …", "When we …", "When the …" sets the scene ("When I connect from home I
get:", "When we export to PDF, columns are cut off"): story, not a request, as long as nothing in it could ask for
something: a verb a request is made with anywhere in it ("When I pay, send the receipt to …"), a need or a wish,
the desk addressed, a link, an address or a number. Otherwise it stays a request, as every "when" sentence was."""
ADDRESSED = re.compile(
    r"\b(?:please|pls|kindly|(?:can|could|would|will|won'?t|must|should) (?:you|u|someone|somebody|your team)"
    r"|(?:i|we) (?:need|want|would like|'?d like|expect|ask) (?:you|someone|somebody|your team|it|this|that|my|our"
    r"|the|a|an|access|admin|all)|make sure|have (?:someone|somebody))\b",
    re.IGNORECASE,
)
"""A sentence that asks the desk to do something ("please ...", "could you ...", "I need you to ...", "I need access
to ..."): an article can explain how, but only a person can do it."""
SEEKING = re.compile(
    r"^(?:(?:also|and|so|but|then|one more thing)[,:]?\s+)*(?:how|what|where|which|why|who)\b"
    r"|\b(?:how (?:do|does|can|should|to)|(?:i|we) (?:need|want|would like|'?d like) to (?:know|find out|understand"
    r"|learn|\w+)|(?:can|may|should|do) (?:i|we)|is there|are there)\b",
    re.IGNORECASE,
)
"""A sentence that seeks information ("How do I ...", "Where do I ...", "Can I ...", "I need to print ..."): what
an article answers."""
SALUTATION = re.compile(
    r"^(?:hi|hello|hey|dear|good (?:morning|afternoon)|thanks?|thank you|many thanks|regards|best|cheers|kind regards"
    r"|br|sent from)\b[^.!?]{0,30}[.!?]?$",
    re.IGNORECASE,
)
TAG_RUN = re.compile("[\U000e0020-\U000e007e]+")
WORD = re.compile(r"\w{3,}")
LEET = str.maketrans("@!013457$", "aioleasts")
"""The look-alike digits and signs the deobfuscated views read as letters ("invoices@" is "invoicesa" there)."""
UNSEEN_WORDS = 2
"""A sentence of a deobfuscated view is hidden text when this many of its words appear nowhere in the visible
text: a look-alike spelling of what the reader sees is not."""
"""Unicode tag characters: invisible, read by models as ASCII. Decoded, never deleted."""

LANGUAGES = (
    *(Language.ENGLISH, Language.GERMAN, Language.FRENCH, Language.SPANISH, Language.ITALIAN, Language.PORTUGUESE),
    *(Language.DUTCH, Language.POLISH, Language.TURKISH, Language.SWEDISH),
    *(Language.RUSSIAN, Language.UKRAINIAN, Language.GREEK, Language.HEBREW, Language.ARABIC, Language.HINDI),
    *(Language.THAI, Language.JAPANESE, Language.KOREAN, Language.CHINESE),
)
"""The languages told apart: the common ones of customers' mail. Each Latin-script language adds to the detector's
first use (measured: 9 Latin languages 7.6 s, 18 of them 17 s, on 2 busy cores; then about 1 ms a sentence), so
there are ten; a language outside the set scores low in all of them and is judged by coverage alone (its words are
in no passage). Other scripts load in milliseconds."""
LANGUAGE_NAMES = frozenset(language.name.title() for language in LANGUAGES)
LANGUAGE_CONFIDENCE = 0.8
"""Lingua's confidence from which a sentence counts as written in a language. English sentences of a few words stay
below it (0.15-0.75: "Can you reset it?", "Printer on 3rd floor jammed"); a sentence in Polish, Dutch, Turkish or
a non-Latin script scores 0.87-1.0."""
MIN_LETTERS = 12
"""Fewer letters are a name, a code or a word or two: no language can be told from them."""
FOREIGN_SHARE = 0.05
"""Below this combined confidence of the knowledge base's languages a sentence is not in them, even when the detector
cannot tell which other language it is in (Spanish 0.77 / Portuguese 0.23); short English lines score 0.15 and up."""
FOREIGN_MIN_LETTERS = 30
QUOTE_CHARS = 160


@dataclass(frozen=True)
class Request:
    """One thing the ticket asks: the sentence as written, what comes before it (its context when it says too little
    alone, `context_of`), the language it is written in when that is certain, and
    whether it was hidden from view."""

    text: str
    context: str = ""
    language: str | None = None
    hidden: bool = False

    @property
    def quoted(self) -> str:
        text = " ".join(self.text.split())
        return f'"{text[:QUOTE_CHARS]}{"…" if len(text) > QUOTE_CHARS else ""}"'


@lru_cache(maxsize=1)
def detector() -> LanguageDetector:
    """Built once, on first use; lingua ships its models, so nothing is downloaded."""
    return LanguageDetectorBuilder.from_languages(*LANGUAGES).build()


NAMES = re.compile(r"(?<![.!?:\n]\s)(?<!^)\b[A-Z][\w-]*|\b\w*\d\w*\b|\b[A-Z]{2,}\b", re.MULTILINE)
"""Product and brand names (capitalised words not starting a sentence, acronyms) and codes: the same in every
language, so an Italian question about "Northwind Cloud" is read without them."""


def wording(text: str) -> str:
    """The text as a language detector should read it: as a reader sees it, without names and codes."""
    return " ".join(NAMES.sub(" ", readable(text)).split())


def language_of(text: str) -> str | None:
    """The language `text` is written in ("Polish"), or None when too short or not certain."""
    text = wording(text)
    if sum(char.isalpha() for char in text) < MIN_LETTERS:
        return None
    best = detector().compute_language_confidence_values(text)[0]
    return best.language.name.title() if best.value >= LANGUAGE_CONFIDENCE else None


def language_outside(text: str, languages: Collection[str]) -> str | None:
    """The language of `text` when the given languages together are unlikely for it (a Spanish sentence the
    detector splits between Spanish and Portuguese is still not English); None when it may read as one of them,
    is too short to tell, or no languages are given."""
    text = wording(text)
    if not languages or sum(char.isalpha() for char in text) < FOREIGN_MIN_LETTERS:
        return None
    values = detector().compute_language_confidence_values(text)
    if sum(value.value for value in values if value.language.name.title() in languages) >= FOREIGN_SHARE:
        return None
    return values[0].language.name.title()


def readable(text: str) -> str:
    """The text as a reader sees it, tag characters decoded (NFKC, so full-width and styled letters are plain)."""
    return unicodedata.normalize("NFKC", TAG_RUN.sub(lambda run: _untag(run.group(0)), text))


def _untag(run: str) -> str:
    return "".join(chr(ord(char) - 0xE0000) for char in run)


def units(text: str) -> list[str]:
    """The sentences and lines of a text, greetings and sign-offs left out."""
    found = (unit.strip() for unit in UNIT.split(text))
    return [unit for unit in found if unit and not SALUTATION.match(unit)]


def asks(unit: str) -> bool:
    """True for a sentence that asks something or asks for something, read in its deobfuscated form."""
    folded = fold(unit)
    if any(mark in unit for mark in QUESTION_MARKS) or IMPERATIVE.search(folded):
        return True
    if SCENE.match(folded):
        rest = folded.split(None, 1)[1]  # the sentence without its opening "when"
        return bool(ASKING.search(rest) or SCENE_ASKS.search(folded) or SCENE_ASKS.search(unit))
    return bool(ASKING.search(folded) or ASKING.search(unit))


def seeks_information(request: Request) -> bool:
    """True for a readable, visible request that asks to know something rather than for something to be done: only
    such a request may be judged answered by meaning (engine/analysers/confidence.py); one that asks the desk to act
    is answered only by a passage that names what it asks for."""
    if request.hidden or request.language not in (None, *LANGUAGE_NAMES):
        return False
    return asks_to_know(request.text)


def asks_to_know(sentence: str) -> bool:
    """A sentence that asks to know something, not for something to be done (a question, "how do I ...")."""
    folded = fold(sentence)
    if IMPERATIVE.search(folded) or ADDRESSED.search(folded):
        return False
    return any(mark in sentence for mark in QUESTION_MARKS) or bool(SEEKING.search(folded))


def context_of(sentences: list[str], index: int) -> str:
    """What a sentence that says too little alone is about: the sentence before it, and for a question that asks to
    know ("What setting is this?", "Is that a bug?") also the ticket's first line, its subject, which names the
    problem. A request to act ("Please send it to them.") keeps the sentence before alone: a subject's words would
    make any action look answered by the article the subject asks about."""
    if not index:
        return ""
    before = sentences[index - 1]
    return " ".join(dict.fromkeys([sentences[0], before])) if asks_to_know(sentences[index]) else before


def requests_of(text: str, readable_languages: Collection[str]) -> list[Request]:
    """Every request in `text`: asking sentences, sentences in a language outside `readable_languages` (what they
    ask cannot be told, so they count), and asking text hidden in tag characters or encoded runs (views(text))."""
    found: dict[str, Request] = {}

    def consider(unit: str, before: str, hidden: bool) -> None:
        language = language_of(unit) or language_outside(unit, readable_languages)
        foreign = language is not None and language not in readable_languages
        if (foreign or asks(unit)) and fold(unit) not in found:
            found[fold(unit)] = Request(unit, before, language, hidden)

    visible = TAG_RUN.sub(" ", text)
    shown = units(visible)
    for index, unit in enumerate(shown):
        consider(unit, context_of(shown, index), hidden=False)
    seen = set(WORD.findall(fold(visible))) | set(WORD.findall(fold(visible).translate(LEET)))
    for piece in [*(_untag(run) for run in TAG_RUN.findall(text)), *views(visible)[1:]]:
        for unit in units(piece):
            if sum(word not in seen for word in WORD.findall(fold(unit))) >= UNSEEN_WORDS:
                consider(unit, "", hidden=True)
    return list(found.values())
