"""What a piece of text points people to or asks of them: links, addresses, numbers, bank and wallet details,
requests for secrets, spreadsheet formulas.

Small pure functions, shared by the knowledge-base hygiene scan (kb/indexer.py) and the outgoing-message
policy: each finds one kind of thing and returns what it found, normalised so that two texts can be
compared; `content_reasons` turns the findings into the reasons a person reads. Defanged forms
(`hxxp://`, `example[.]com`) count as the real thing: whoever wrote them wanted them followed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

COMMON_TLD = re.compile(
    r"com|net|org|edu|gov|mil|int|info|biz|io|co|me|tv|cc|ai|app|dev|xyz|top|online|site|website|store|shop|cloud|"
    r"live|link|click|help|support|login|email|services|tech|today|page|space|fun|club|pro|name|mobi|asia|eu|"
    r"uk|de|fr|nl|be|ch|at|it|es|pt|se|no|dk|fi|pl|cz|sk|hu|ro|bg|gr|ie|lu|is|ee|lv|lt|si|hr|rs|ua|ru|by|kz|tr|il|"
    r"ae|sa|in|cn|jp|kr|tw|hk|sg|my|th|vn|id|ph|au|nz|ca|us|mx|br|ar|cl|pe|za|ng|ke|eg|ma|"
    r"pw|ws|ly|gl|gg|to|su|cam|icu|vip|work|zip|mov",
    re.IGNORECASE,
)
"""Top-level domains that make a bare `word.tld` a domain; file extensions that are also country codes
(`.md`, `.py`, `.sh`, `.pl`, `.rs`) are left out on purpose, so `readme.md` is not a link."""

REFANG = (
    (re.compile(r"\bhxxp(s?)(?=\[?:\]?//)", re.IGNORECASE), r"http\1"),
    (re.compile(r"\[:\]"), ":"),
    (re.compile(r"\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)", re.IGNORECASE), "."),
    (re.compile(r"\[@\]|\[at\]|\(at\)", re.IGNORECASE), "@"),
)
LABEL = r"[^\W_][\w-]*+"
URL = re.compile(r"\b(?:https?|ftp)://[^\s<>\"'`)\]*]+|\bwww\.[^\s<>\"'`)\]*]+", re.IGNORECASE)
"""A link ends where markdown emphasis (`**https://x.example**`) or a bracket begins."""
BARE_DOMAIN = re.compile(rf"(?<![\w.@/-])((?:{LABEL}\.)+([a-z]{{2,24}}))\b(?![\w-]|\.\w)", re.IGNORECASE)
EMAIL_ADDRESS = re.compile(rf"(?<![\w.+-])[\w.+-]+@((?:{LABEL}\.)+[a-z]{{2,24}})\b", re.IGNORECASE)
PHONE_NUMBER = re.compile(r"(?<![\w+])\+?\d[\d ()/.-]{6,}\d(?!\w)")
IBAN_CANDIDATE = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
ACCOUNT_NUMBER = re.compile(
    r"\b(?:account|acct|a/c|konto)\s*(?:number|no\.?|nr\.?|#)?\s*[:#]?\s*(\d[\d -]{5,}\d)"
    r"|\b(?:sort\s*code|routing\s*(?:number|no\.?)|aba|bsb)\s*[:#]?\s*(\d[\d -]{4,}\d)",
    re.IGNORECASE,
)
CRYPTO_WALLET = re.compile(
    r"\b(?:bc1[ac-hj-np-z02-9]{25,87}|[13][1-9A-HJ-NP-Za-km-z]{25,34}|0x[0-9a-fA-F]{40}"
    r"|[LM][1-9A-HJ-NP-Za-km-z]{26,33}|T[1-9A-HJ-NP-Za-km-z]{33})\b"
)
PAYMENT_CHANGE = re.compile(
    r"\b(?:new|updated?|changed?|different|correct(?:ed)?|our)\s+(?:settlement|bank(?:ing)?|payment|beneficiary|"
    r"remittance|wire)\s+(?:account|details|information|info|instructions)"
    r"|\bsettlement\s+account\b|\bbank\s+(?:account\s+)?details\b|\bwire\s+transfer\b|\bbeneficiary\s+account\b"
    r"|\b(?:swift|bic)(?:\s*code)?\s*[:#]|\bgift\s*cards?\b",
    re.IGNORECASE,
)
CONFIDENTIAL_THINGS = (
    r"(?:pass(?:word|code|phrase)s?|pins?|(?:mfa|2fa|otp|one[- ]time|verification|security|authenticat(?:or|ion)|"
    r"sms|login|sign[- ]in)\s+(?:pass)?codes?|otps?|recovery\s+(?:codes?|keys?)|backup\s+codes?|credentials|"
    r"api\s*keys?|secret\s+keys?|private\s+keys?|seed\s+phrase)\b"
)
SECRET_REQUEST = re.compile(
    r"\b(?:send|give|tell|share|e-?mail|forward|provide|disclose|reveal|hand\s+over|read\s+out|text|"
    r"(?:reply|respond|answer|write\s+back)\s+with|include|submit\s+(?:to\s+us|here))\b"
    rf"(?:\W+(?!and\b|or\b)\w+){{0,6}}?\W+{CONFIDENTIAL_THINGS}"
    rf"|\b(?:what\s+is|what's|we\s+(?:need|require))\s+(?:\w+\s+){{0,3}}?{CONFIDENTIAL_THINGS}",
    re.IGNORECASE,
)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n")
"""A request stays inside its sentence: "your e-mail address. 3. Sign in with your password" asks for nothing."""
NEGATION = re.compile(r"\b(never|not|n't|nobody|no\s+one|no\s+need\s+to)\W*(\w+\W+)?$", re.IGNORECASE)
"""Just before a request, it turns the request into a warning: "never share your password"."""
CELL_START = r"(?:^|(?<=[\s,;|:\"']))"
FORMULA_CELL = re.compile(
    CELL_START + r"[=+\-@](?:[\w.\"'$!:+\-*/&^ ]{0,40}?[+\-*/&^(])?[A-Za-z_][\w.]*\s*(?:\(|\|)", re.MULTILINE
)
"""A cell that a spreadsheet runs: `=HYPERLINK(`, `@SUM(`, `-2+3+cmd|` (DDE), `=cmd|' /C calc'!A0`."""


def refang(text: str) -> str:
    """Undo the usual defanging (`hxxp`, `[.]`, `[at]`), so a defanged link is seen as the link it is."""
    for pattern, replacement in REFANG:
        text = pattern.sub(replacement, text)
    return text


def _host(url: str) -> str:
    rest = re.sub(r"^[a-z]+://", "", url, flags=re.IGNORECASE)
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    return normalise_domain(re.sub(r":\d*$", "", host))


def normalise_domain(domain: str) -> str:
    """Lower case, no trailing dot, no leading `@`/`.`: the form allow-lists hold."""
    return domain.strip().strip(".").lstrip("@").lower()


def urls(text: str) -> list[str]:
    """Links with a scheme or `www.`, refanged, in order of appearance (trailing punctuation dropped)."""
    return [match.group(0).rstrip(".,;:!?") for match in URL.finditer(refang(text))]


def email_addresses(text: str) -> list[str]:
    """E-mail addresses, refanged and lower-cased."""
    return [match.group(0).lower() for match in EMAIL_ADDRESS.finditer(refang(text))]


def domains(text: str) -> list[str]:
    """Every domain the text points to: hosts of links, domains of addresses, and bare `name.tld` mentions."""
    plain = refang(text)
    found = [_host(url) for url in urls(plain)]
    found += [address.rsplit("@", 1)[1] for address in email_addresses(plain)]
    without = EMAIL_ADDRESS.sub(" ", URL.sub(" ", plain))
    found += [normalise_domain(m.group(1)) for m in BARE_DOMAIN.finditer(without) if COMMON_TLD.fullmatch(m.group(2))]
    return list(dict.fromkeys(domain for domain in found if "." in domain))


def domain_allowed(domain: str, allowed: Iterable[str]) -> bool:
    """True when `domain` is an allowed domain or a subdomain of one (`portal.example.com` under `example.com`)."""
    domain = normalise_domain(domain)
    return any(domain == entry or domain.endswith("." + entry) for entry in map(normalise_domain, allowed) if entry)


def foreign_domains(text: str, allowed: Iterable[str]) -> list[str]:
    """The domains in `text` that are not on the allow-list."""
    allowed = set(allowed)
    return [domain for domain in domains(text) if not domain_allowed(domain, allowed)]


def phone_numbers(text: str) -> list[str]:
    """Phone numbers as digits (a leading + kept), eight digits or more so dates and versions do not count."""
    numbers = []
    for match in PHONE_NUMBER.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if len(digits) >= 8 and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", match.group(0).strip()):
            numbers.append(("+" if match.group(0).startswith("+") else "") + digits)
    return numbers


def iban_valid(candidate: str) -> bool:
    """The ISO 13616 mod-97 check every real IBAN passes."""
    compact = candidate.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def ibans(text: str) -> list[str]:
    """IBANs (checksum-valid), without spaces."""
    return [m.group(0).replace(" ", "") for m in IBAN_CANDIDATE.finditer(text.upper()) if iban_valid(m.group(0))]


def bank_account_numbers(text: str) -> list[str]:
    """IBANs, and numbers labelled as an account number, sort code or routing number, as digits."""
    labelled = [re.sub(r"\D", "", m.group(1) or m.group(2)) for m in ACCOUNT_NUMBER.finditer(text)]
    return ibans(text) + labelled


def crypto_wallets(text: str) -> list[str]:
    """Bitcoin (legacy and bech32), Ethereum, Litecoin and Tron addresses; legacy ones must mix letters and digits."""
    return [
        match.group(0)
        for match in CRYPTO_WALLET.finditer(text)
        if re.search(r"\d", match.group(0)[1:]) and re.search(r"[A-Za-z]", match.group(0)[1:])
    ]


def payment_requests(text: str) -> list[str]:
    """Talk of changed bank details, settlement accounts, wire transfers, gift cards."""
    return [match.group(0) for match in PAYMENT_CHANGE.finditer(text)]


def secret_requests(text: str) -> list[str]:
    """Asking the reader to hand over a password, MFA or one-time code, recovery codes or keys.

    Telling someone to *enter* their password into a sign-in page, or never to share it, is ordinary help-desk
    text and is not matched; whether that page is the desk's own is `foreign_domains`' question.
    """
    return [
        " ".join(match.group(0).split())
        for sentence in SENTENCE_END.split(text)
        for match in SECRET_REQUEST.finditer(sentence)
        if not NEGATION.search(sentence[max(0, match.start() - 30) : match.start()])
    ]


def formula_cells(text: str) -> list[str]:
    """Cells a spreadsheet would execute on opening: a sign, then a function call or a DDE `cmd|`."""
    return [match.group(0).strip() for match in FORMULA_CELL.finditer(text)]


def _quoted(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(item[:60]) for item in list(dict.fromkeys(items))[:limit])
    return shown + (f" and {len(set(items)) - limit} more" if len(set(items)) > limit else "")


def content_reasons(text: str, allowed_domains: Iterable[str]) -> list[str]:
    """Why a person should read `text` before it reaches a customer: each finding as a readable reason."""
    checks = (
        ("asks for a secret", secret_requests(text)),
        ("bank or payment details", bank_account_numbers(text) + payment_requests(text)),
        ("crypto wallet address", crypto_wallets(text)),
        ("links or addresses outside the allowed domains", foreign_domains(text, allowed_domains)),
        ("spreadsheet formula", formula_cells(text)),
    )
    return [f"{label}: {_quoted(found)}" for label, found in checks if found]


@dataclass(frozen=True)
class ContactItem:
    """One thing an outgoing message points its reader to, normalised so two texts can be compared."""

    kind: str
    """"link", "e-mail address", "phone number", "bank detail" or "wallet"."""
    key: str
    shown: str
    allowed: bool
    """For links and addresses: whether the domain is allowed; the other kinds have no domain and are allowed
    when trusted text carries them."""


def outgoing_items(text: str, allowed_domains: Iterable[str]) -> list[ContactItem]:
    """Every link, address, phone number, bank detail and wallet in `text`, each with whether its domain is
    allowed: what the outgoing-message policy compares against trusted text."""
    allowed = set(allowed_domains)
    links, addresses = urls(text), email_addresses(text)
    items = [ContactItem("link", url.lower(), url, domain_allowed(_host(url), allowed)) for url in links]
    items += [ContactItem("e-mail address", a, a, domain_allowed(a.rsplit("@", 1)[1], allowed)) for a in addresses]
    named = {_host(url) for url in links} | {address.rsplit("@", 1)[1] for address in addresses}
    items += [ContactItem("link", d, d, domain_allowed(d, allowed)) for d in domains(text) if d not in named]
    items += [ContactItem("phone number", number, number, True) for number in phone_numbers(text)]
    items += [ContactItem("bank detail", number, number, True) for number in bank_account_numbers(text)]
    items += [ContactItem("wallet", wallet, wallet, True) for wallet in crypto_wallets(text)]
    return items
