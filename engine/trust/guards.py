"""Guards that keep a message from going out on its own: ticket text is data, never instructions.

Each check returns human-readable reasons; any reason holds the draft for a person (OWASP LLM01
prompt injection, LLM02 sensitive information disclosure, LLM09 misinformation via unsupported claims).
Injection and social-engineering checks share one path, `detect`: every view of the text (engine.trust.deobfuscate)
read by the family rules (engine.trust.threat_rules) and the shipped classifier (engine.trust.injection_model).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.trust import injection_model
from engine.trust.deobfuscate import hidden_text_reasons, views
from engine.trust.threat_rules import (
    FAMILY_LABELS,
    SOCIAL_ENGINEERING,
    families,
    is_how_to,
    sentence_around,
)

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE = re.compile(r"(?<!\w)\+?\d[\d ()/-]{7,}\d(?!\w)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")
CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
WORD = re.compile(r"[a-z0-9]{3,}")
CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|6(?:011|5)")
"""Visa, Mastercard, American Express and Discover: other Luhn-valid numbers (IMEIs, order numbers) are not cards."""
CRYPTO_ADDRESS = re.compile(
    r"(?<![\w/])(?:bc1[02-9ac-hj-np-z]{25,59}|(?=\w*[A-Za-z])(?=\w*\d)[13][1-9A-HJ-NP-Za-km-z]{25,34}|0x[0-9a-fA-F]{40}|T[1-9A-HJ-NP-Za-km-z]{33})"
    r"(?![\w/])"
)
"""Bitcoin (bech32 and legacy), Ethereum-style and Tron addresses, read on the raw text (case matters)."""


MAX_READ = 200_000  # characters read per text: a longer text is held for a person, not read to the end
RECENT_SIZE = 256


@dataclass(frozen=True)
class Detection:
    """What one text holds: each threat family found with the snippet that showed it, and the classifier's score."""

    families: dict[str, str] = field(default_factory=dict)
    injection_score: float = 0.0
    injection_threshold: float = 1.0
    hidden: tuple[str, ...] = ()
    """Why part of the text is hidden from a reader (smuggled characters, letter-spacing...): never absent."""

    @property
    def injection(self) -> bool:
        return "injection" in self.families or self.injection_score >= self.injection_threshold

    @property
    def sensitive(self) -> list[str]:
        return [family for family in self.families if family != "injection"]


_RECENT: OrderedDict[bytes, Detection] = OrderedDict()  # keyed by digest, so no ticket text is kept
_RECENT_LOCK = threading.Lock()


def detect(text: str) -> Detection:
    """`scan`, remembered for the last few texts: one ticket is checked by several guards in a row."""
    key = hashlib.blake2b((text or "").encode("utf-8", "surrogatepass"), digest_size=16).digest()
    with _RECENT_LOCK:
        if (hit := _RECENT.get(key)) is not None:
            _RECENT.move_to_end(key)
            return hit
    found = scan(text)
    with _RECENT_LOCK:
        _RECENT[key] = found
        if len(_RECENT) > RECENT_SIZE:
            _RECENT.popitem(last=False)
    return found


def scan(text: str) -> Detection:
    """Every view of `text` (normalised, decoded, extracted) read by the family rules and the classifier."""
    found: dict[str, str] = {}
    if len(text or "") > MAX_READ:
        found["oversized"] = f"{len(text)} characters; only the first and last {MAX_READ // 2} were read"
        text = text[: MAX_READ // 2] + "\n" + text[-MAX_READ // 2 :]
    text_views = views(text or "")
    for view in text_views:
        for family, pattern in families().items():
            if family not in found and (match := _first_match(family, pattern, view)):
                found[family] = match.group(0)[:60]
    if "payment_details" not in found and (identifier := payment_identifier(text or "")):
        found["payment_details"] = identifier
    hidden = tuple(hidden_text_reasons(text or ""))
    return Detection(found, injection_model.injection_score(text_views), injection_model.threshold(), hidden)


def _first_match(family: str, pattern: re.Pattern[str], view: str) -> re.Match[str] | None:
    """The family's first match outside a how-to of its own kind (see engine/trust/intents.toml)."""
    for match in pattern.finditer(view):
        if not is_how_to(family, sentence_around(view, *match.span())):
            return match
    return None


def _iban_valid(candidate: str) -> bool:
    """ISO 13616 check digits: the rearranged number, letters as 10-35, is 1 modulo 97."""
    rearranged = candidate[4:] + candidate[:4]
    return len(candidate) >= 15 and int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def payment_identifier(text: str) -> str | None:
    """A valid IBAN, a payment card number or a crypto address in `text` (masked for the hold reason), else None."""
    for match in IBAN.finditer(text.upper()):
        if _iban_valid(match.group(0).replace(" ", "")):
            return "IBAN " + match.group(0)[:4] + "…"
    for match in CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if len(digits) in (15, 16) and CARD_PREFIX.match(digits) and _luhn(digits):
            return "card …" + digits[-4:]
    if match := CRYPTO_ADDRESS.search(text):
        return "crypto address " + match.group(0)[:6] + "…"
    return None


def injection_reasons(*texts: str) -> list[str]:
    """Instructions aimed at the model hidden in a ticket, a reply, an attachment or a KB passage."""
    for text in texts:
        found = detect(text or "")
        if "injection" in found.families:
            return [f"possible prompt injection: {found.families['injection']!r}"]
        if found.injection:
            return [f"possible prompt injection: classifier score {found.injection_score:.2f}"]
    return []


def social_engineering_reasons(*texts: str) -> list[str]:
    """Requests for credentials, access changes for someone else, payments: always a person's call."""
    for text in texts:
        found = detect(text or "").families
        if hit := next((family for family in SOCIAL_ENGINEERING if family in found), None):
            return [f"asks for credentials, verification bypass or payment: {found[hit]!r}"]
    return []


def sensitive_intent_reasons(*texts: str) -> list[str]:
    """One reason per sensitive family, and text hidden from a reader: never automatic, a person decides
    (ordinary password resets included)."""
    found = [detect(text or "") for text in texts]
    families = dict.fromkeys(family for detection in found for family in detection.sensitive)
    hidden = dict.fromkeys(reason for detection in found for reason in detection.hidden)
    return [f"possible social engineering: {FAMILY_LABELS[family]}" for family in families] + list(hidden)


def intent_reasons(sentence: str) -> list[str]:
    """Every reason one request (a sentence or a whole text) keeps a ticket for a person: instructions aimed at the
    assistant or at whoever writes the reply, social engineering, sensitive intents, hidden text."""
    reasons = injection_reasons(sentence) + social_engineering_reasons(sentence) + sensitive_intent_reasons(sentence)
    return list(dict.fromkeys(reasons))


def _luhn(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def personal_data(text: str) -> set[str]:
    """E-mail addresses, phone numbers, IBANs and card numbers in `text`, normalised for comparison."""
    found = {m.group(0).lower() for m in EMAIL.finditer(text)}
    found |= {re.sub(r"\D", "", m.group(0)) for m in PHONE.finditer(text) if len(re.sub(r"\D", "", m.group(0))) >= 8}
    found |= {m.group(0).replace(" ", "") for m in IBAN.finditer(text)}
    found |= {digits for m in CARD.finditer(text) if _luhn(digits := re.sub(r"\D", "", m.group(0)))}
    return found


def leaked_personal_data(draft: str, allowed_sources: Iterable[str]) -> list[str]:
    """Personal data in the draft that neither the ticket nor the cited KB documents contain."""
    allowed = set().union(*(personal_data(text) for text in allowed_sources))
    leaked = sorted(personal_data(draft) - allowed)
    return [f"draft contains personal data not in the ticket: {len(leaked)} item(s)"] if leaked else []


def unsupported_steps(steps: list[str], cited_texts: list[list[str]], *, min_overlap: float = 0.5) -> list[str]:
    """Steps whose content words mostly do not appear in the evidence they cite."""
    reasons = []
    for number, (step, sources) in enumerate(zip(steps, cited_texts, strict=True), 1):
        words = set(WORD.findall(step.lower()))
        if not words:
            continue
        supported = set(WORD.findall(" ".join(sources).lower()))
        if not sources or len(words & supported) / len(words) < min_overlap:
            reasons.append(f"step {number} is not supported by its cited evidence")
    return reasons


def redact_personal_data(text: str) -> str:
    """Replace personal data with placeholders before text leaves for an external model."""
    text = EMAIL.sub("[email]", text)
    text = IBAN.sub("[iban]", text)
    text = CARD.sub(lambda m: "[card]" if _luhn(re.sub(r"\D", "", m.group(0))) else m.group(0), text)
    return PHONE.sub("[phone]", text)


def fence(text: str) -> str:
    """Ticket text inside a prompt, marked as data; fence markers inside it are neutralised."""
    return "<<<TICKET DATA\n" + text.replace("<<<", "‹‹‹").replace(">>>", "›››") + "\nEND TICKET DATA>>>"


DATABASE_COMMANDS = re.compile(
    r"\bunion\s+(all\s+)?select\b|;\s*(drop|delete|truncate|alter|insert|update)\s+\w+"
    r"|['\"]\s*or\s+['\"]*\w*['\"]*\s*=|\bxp_cmdshell\b|\b(pg_)?sleep\s*\(\s*\d+\s*\)|\bbenchmark\s*\(|'\s*--|\)\s*;\s*--",
    re.IGNORECASE,
)
MANY_ADDRESSES = 50


def suspicious_input_reasons(text: str) -> list[str]:
    """Input that looks machine-made or mangled: a person should read it before anything is sent back."""
    reasons = []
    if "\ufffd" in text:
        reasons.append("text has characters that could not be decoded")
    if len(EMAIL.findall(text)) > MANY_ADDRESSES:
        reasons.append(f"text lists more than {MANY_ADDRESSES} e-mail addresses")
    if match := DATABASE_COMMANDS.search(text):
        reasons.append(f"text contains database commands: {match.group(0)[:40]!r}")
    return reasons
