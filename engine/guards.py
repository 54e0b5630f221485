"""Guards that keep a message from going out on its own: ticket text is data, never instructions.

Each check returns human-readable reasons; any reason holds the draft for a person (OWASP LLM01
prompt injection, LLM02 sensitive information disclosure, LLM09 misinformation via unsupported claims).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

INJECTION = re.compile(
    r"(ignore|disregard|forget|override|bypass)\s+(all\s+|any\s+|the\s+|your\s+|my\s+|usual\s+|normal\s+|"
    r"standard\s+|security\s+)*(previous|prior|above|earlier|system|original)?\s*"
    r"(instructions?|prompts?|rules|guidelines|directives|policy|policies)"
    r"|\b(dear|hey|hi|attention|to the|note for the)\s+(ai|bot|assistant|ai assistant|language model|llm|model)\b"
    r"|\bchatgpt\b|\bas an ai\b|language model reading this|\bpretend (that |to be |you are |the )"
    r"|you\s+are\s+now\s+(a|an|the|in)\b"
    r"|(reveal|print|show|repeat|output)\s+(me\s+)?(your|the)\s+(system\s+)?(prompt|instructions)"
    r"|system\s+prompt|developer\s+mode|jailbreak|do\s+anything\s+now|\bDAN\b"
    r"|</?\s*(system|assistant|instructions?)\s*>|\[\s*(system|inst)\s*\]|###\s*(system|instruction)"
    r"|new\s+instructions?\s*:|act\s+as\s+(if\s+you\s+are\s+)?(an?\s+)?(admin|administrator|root|system)"
    r"|ignoriere\s+(alle\s+)?(vorherigen|bisherigen)\s+anweisungen"
    r"|ignore[sz]?\s+(toutes\s+)?les\s+instructions\s+(pr[ée]c[ée]dentes|ant[ée]rieures)"
    r"|ignora\s+(todas\s+)?las\s+instrucciones",
    re.IGNORECASE,
)
CREDENTIAL_OR_PAYMENT = re.compile(
    r"(send|give|tell|share|email|forward|provide)\s+(me\s+|us\s+)?(the\s+|your\s+|his\s+|her\s+|their\s+)?"
    r"(admin\s+|root\s+|master\s+|current\s+)?(password|passcode|credentials?|api\s*key|token|secret|recovery\s+codes?)"
    r"|(disable|remove|reset|turn\s+off)\s+(the\s+)?(mfa|2fa|two[- ]factor)\s+(for|on)\s+"
    r"(another|someone|my\s+(boss|colleague|manager)|this\s+other|the\s+ceo)"
    r"|without\s+(any\s+)?(verification|verifying|checking|approval)"
    r"|no\s+need\s+to\s+(verify|check|confirm|validate)"
    r"|(reset|disable|remove|turn\s+off)\s+(the\s+)?(mfa|2fa|two[- ]factor|authenticator)\s+(for|on)\s+"
    r"(?!me\b|my\s+(own\s+)?(account|phone|laptop)\b)"
    r"|pre-?shared\s+key|\bpsk\b|private\s+key"
    r"|gift\s*cards?|wire\s+(the\s+)?(money|funds|transfer)|change\s+(the\s+)?(bank|payment)\s+(details|account)"
    r"|(bank|iban|routing)\s+(account\s+)?(number|details)|bitcoin|crypto\s*wallet",
    re.IGNORECASE,
)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE = re.compile(r"(?<!\w)\+?\d[\d ()/-]{7,}\d(?!\w)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b")
CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
WORD = re.compile(r"[a-z0-9]{3,}")


def injection_reasons(*texts: str) -> list[str]:
    """Instructions aimed at the model hidden in a ticket, a reply, an attachment or a KB passage."""
    found = [match.group(0) for text in texts for match in [INJECTION.search(text or "")] if match]
    return [f"possible prompt injection: {found[0][:60]!r}"] if found else []


def social_engineering_reasons(*texts: str) -> list[str]:
    """Requests for credentials, MFA changes for someone else, payments: always a person's call."""
    found = [match.group(0) for text in texts for match in [CREDENTIAL_OR_PAYMENT.search(text or "")] if match]
    return [f"asks for credentials, verification bypass or payment: {found[0][:60]!r}"] if found else []


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


SENSITIVE_INTENTS = {
    "access change (password, MFA, phone number, privileges)": re.compile(
        r"\b(password|passcode|mfa|2fa|two[- ]factor|authenticator|temporary access pass|sms number|phone number|"
        r"admin rights|privileges?|group membership)\b",
        re.IGNORECASE,
    ),
    "payment or bank-detail change": re.compile(r"\b(iban|bank (account|details)|payroll|direct deposit)\b", re.I),
    "gift cards, vouchers or crypto": re.compile(r"\b(gift ?cards?|vouchers?|usdt|bitcoin|crypto)\b", re.I),
    "legal threat": re.compile(r"\b(lawyer|attorney|lawsuit|sue you|legal action)\b", re.I),
    "security incident": re.compile(r"\b(phishing|malware|ransomware|breach|compromised|hacked)\b", re.I),
}


def sensitive_intent_reasons(*texts: str) -> list[str]:
    """Intents that are never answered automatically, at any threshold: a person checks who is asking."""
    joined = "\n".join(texts)
    return [f"possible social engineering: {name}" for name, rule in SENSITIVE_INTENTS.items() if rule.search(joined)]
