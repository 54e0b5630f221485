"""Contact details in text: links, e-mail addresses, phone numbers, bank details and wallets.

Phishing and payment fraud work through these, so an automatic message may carry one only when trusted text
carries it too and, for links and addresses, its domain is on the desk's allow-list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

URL = re.compile(r"\b(?:https?|hxxps?|ftp)\[?:\]?//[^\s<>\"')\]]+", re.IGNORECASE)
BARE_DOMAIN = re.compile(
    r"(?<![@\w.-])(?:www\.)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.|\[\.\]))+"
    r"(?:com|net|org|info|biz|io|co|app|dev|xyz|top|site|online|ru|cn|de|fr|uk|nl|es|it|pt|eu|us|me|ly|link|"
    r"click|live|support|help|cloud|services?|tech|shop|store))\b(?!\.\w)",
    re.IGNORECASE,
)
EMAIL = re.compile(r"[\w.+-]+@((?:[\w-]+\.)+[\w-]{2,})", re.UNICODE)
PHONE = re.compile(r"(?<![\w+])\+?\d[\d ()/.-]{6,}\d(?!\w)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
ACCOUNT = re.compile(
    r"\b(?:account|acct|routing|sort code|swift|bic|konto|compte|cuenta|conto|rekening)\b[^\n\d]{0,20}([\d -]{6,})",
    re.IGNORECASE,
)
WALLET = re.compile(r"\b(?:0x[a-fA-F0-9]{40}|(?:bc1|[13])[a-zA-HJ-NP-Z0-9]{25,59}|T[1-9A-HJ-NP-Za-km-z]{33})\b")


@dataclass(frozen=True)
class ContactItem:
    kind: str
    """"link", "e-mail address", "phone number", "bank detail" or "wallet"."""
    key: str
    """Normalised for comparison across texts."""
    shown: str
    allowed: bool
    """For links and addresses: whether the domain is allowed; other kinds have no domain and are allowed when
    trusted text carries them."""


def domain_allowed(domain: str, allowed: set[str]) -> bool:
    """`domain` is an allowed domain or one of its subdomains."""
    domain = domain.lower().strip(".").replace("[.]", ".")
    return any(domain == entry or domain.endswith("." + entry) for entry in allowed)


def _url_domain(url: str) -> str:
    rest = re.sub(r"^[a-z]+\[?:\]?//", "", url, flags=re.IGNORECASE)
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    return host.split(":")[0].replace("[.]", ".").lower()


def outgoing_items(text: str, allowed_domains: set[str]) -> list[ContactItem]:
    """Every contact detail in `text`, each with whether its domain is allowed."""
    items = []
    linked: set[str] = set()
    for match in URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?")
        domain = _url_domain(url)
        linked.add(domain)
        key = url.lower().replace("hxxp", "http").replace("[.]", ".").replace("[:]", ":")
        items.append(ContactItem("link", key, url, domain_allowed(domain, allowed_domains)))
    for match in EMAIL.finditer(text):
        domain = match.group(1).lower()
        linked.add(domain)
        items.append(
            ContactItem(
                "e-mail address", match.group(0).lower(), match.group(0), domain_allowed(domain, allowed_domains)
            )
        )
    for match in BARE_DOMAIN.finditer(text):
        domain = match.group(1).lower().replace("[.]", ".")
        if domain not in linked:
            items.append(ContactItem("link", domain, match.group(0), domain_allowed(domain, allowed_domains)))
    for match in PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        if len(digits) >= 8:
            items.append(ContactItem("phone number", digits, match.group(0).strip(), True))
    for match in IBAN.finditer(text):
        items.append(ContactItem("bank detail", match.group(0).replace(" ", ""), match.group(0), True))
    for match in ACCOUNT.finditer(text):
        digits = re.sub(r"\D", "", match.group(1))
        if len(digits) >= 6:
            items.append(ContactItem("bank detail", digits, match.group(0).strip(), True))
    items.extend(ContactItem("wallet", match.group(0), match.group(0), True) for match in WALLET.finditer(text))
    return items
