"""What a piece of text points people to or asks of them: links, addresses, numbers, bank and wallet details,
requests for secrets, spreadsheet formulas.

Small pure functions, shared by the knowledge-base hygiene scan (kb/indexer.py) and the outgoing-message
policy: each finds one kind of thing and returns what it found, normalised so that two texts can be
compared; `content_reasons` turns the findings into the reasons a person reads. Defanged forms
(`hxxp://`, `example[.]com`) count as the real thing: whoever wrote them wanted them followed.

Links are read as a browser reads them: every target (plain, markdown, HTML attribute) goes through Ada, a
WHATWG URL parser, so backslashes, protocol-relative `//host`, userinfo, percent-encoding and IDN end on the host
a browser would open. Phone numbers and e-mail addresses are allowed only when they are the desk's own contact
points (`DeskPolicy.contact_points`), whatever text carries them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass

import ada_url
import phonenumbers
from publicsuffixlist import PublicSuffixList

FILE_EXTENSIONS = frozenset(
    {
        "md",
        "txt",
        "log",
        "csv",
        "tsv",
        "json",
        "yaml",
        "yml",
        "xml",
        "ini",
        "cfg",
        "conf",
        "toml",
        "html",
        "htm",
        "css",
        "js",
        "ts",
        "java",
        "py",
        "sh",
        "bat",
        "cmd",
        "exe",
        "msi",
        "dll",
        "sys",
        "pdf",
        "doc",
        "docx",
        "dot",
        "xls",
        "xlsx",
        "xlsm",
        "ppt",
        "pptx",
        "odt",
        "ods",
        "rtf",
        "eml",
        "msg",
        "pst",
        "ost",
        "ics",
        "vsdx",
        "drawio",
        "png",
        "jpg",
        "jpeg",
        "gif",
        "bmp",
        "svg",
        "tif",
        "tiff",
        "ico",
        "webp",
        "zip",
        "rar",
        "gz",
        "tgz",
        "tar",
        "xz",
        "iso",
        "img",
        "dmg",
        "pkg",
        "deb",
        "rpm",
        "apk",
        "jar",
        "mov",
        "avi",
        "mkv",
        "wav",
        "pem",
        "crt",
        "cer",
        "key",
        "pfx",
        "der",
        "csr",
        "lnk",
        "url",
        "bak",
        "tmp",
        "old",
        "db",
        "sqlite",
        "vhd",
        "vhdx",
        "ova",
        "vmdk",
    }
)
"""File extensions: `name.ext` with one of these is a file name, not a domain (`README.md`, `setup.zip`); with a
third label (`help.portal.zip`), a scheme, `www.`, an `@` or as a link target it is a domain."""
PUBLIC_SUFFIXES = PublicSuffixList(only_icann=True, accept_unknown=False)
"""The Public Suffix List as the `publicsuffixlist` release ships it (no download): every delegated TLD, new gTLDs
(`.zip`, `.mov`, `.support`) and IDN ones included, so `report.completed` or `req.body` is not a domain."""
SPECIAL_USE_TLDS = frozenset({"example", "test", "invalid", "localhost", "local", "onion", "internal", "alt"})
"""Names reserved for documentation, tests and private networks (RFC 2606, 6761, 6762, 7686, 9476): not on the
public list, but a host there is still a host."""
WEB_SCHEMES = frozenset({"http", "https"})
CONTACT_SCHEMES = frozenset({"mailto", "tel"})
"""Link schemes whose target is an address or a number, judged by the contact-point list instead."""
RELATIVE_BASE = "https://relative.invalid/"
"""A link without a scheme is resolved against this base: ending on its host means it names no host at all."""
REFANG = (
    (re.compile(r"\bhxxp(s?)(?=\[?:\]?//)", re.IGNORECASE), r"http\1"),
    (re.compile(r"\[:\]"), ":"),
    (re.compile(r"\[\.\]|\(\.\)|\{\.\}|\[dot\]|\(dot\)", re.IGNORECASE), "."),
    (re.compile(r"\[@\]|\[at\]|\(at\)", re.IGNORECASE), "@"),
)
LABEL = r"[^\W_][\w-]*+"
TOP_LABEL = r"(?:xn--[a-z0-9-]{2,59}|[^\W\d_]{2,63})"
"""An alphabetic last label or a punycode one; whether it is a TLD the Public Suffix List says."""
URL = re.compile(
    r"\b(?:https?|ftp)s?:[/\\]*[^\s<>\"'`)\]*]+|\bwww\.[^\s<>\"'`)\]*]+"
    r"|\b(?:java|vb|live)script:[^\s<>\"'`]+|\bdata:[\w.+-]+/[\w.+-]+[;,][^\s<>\"'`]*|\bfile:[/\\][^\s<>\"'`]*",
    re.IGNORECASE,
)
"""A link ends where markdown emphasis (`**https://x.example**`) or a bracket begins; `https:\\\\host` and `https:host`
are links to a browser too. Script, data and file targets count wherever they appear."""
LINK_TARGET = re.compile(
    r"\]\(\s*<?([^()\s<>]+(?:\([^()\s]*\)[^()\s<>]*)*)"
    r"|^\s{0,3}\[[^\]\n]+\]:\s*<?([^\s>]+)"
    r"|<([a-z][a-z0-9+.-]{1,31}:[^\s<>]+)>"
    r"|\b(?:href|src|action|formaction|xlink:href|background|poster)\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]+)",
    re.IGNORECASE | re.MULTILINE,
)
"""Link targets a reader's client follows: markdown inline and reference links, autolinks, HTML attributes."""
BARE_DOMAIN = re.compile(rf"(?<![\w.@/-])((?:{LABEL}\.)+({TOP_LABEL}))(?![\w-]|\.\w)", re.IGNORECASE)
IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}(?:/\d{1,2})?")
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


@dataclass(frozen=True)
class Link:
    """One link target as a browser resolves it."""

    target: str
    scheme: str
    """Lower case, without the colon; "" for a relative link."""
    host: str
    """ASCII (punycode) host without a trailing dot, "" when the link names none; IPv6 literals keep brackets."""


def parse_link(target: str) -> Link:
    """Resolve `target` as a browser would: an absolute URL on its own, `//host` and `\\\\host` against https, anything
    else as relative (no host). A target Ada cannot parse keeps scheme "invalid": a browser would not open it, but
    a person should see why."""
    target = refang(target.strip())
    absolute = "http://" + target if target.lower().startswith("www.") else target
    try:
        url = ada_url.URL(absolute)
    except ValueError:
        try:
            url = ada_url.URL(absolute, RELATIVE_BASE)
        except ValueError:
            return Link(target, "invalid", "")
    if url.href.startswith(RELATIVE_BASE):
        return Link(target, "", "")
    return Link(target, url.protocol.rstrip(":").lower(), normalise_domain(url.hostname))


def normalise_domain(domain: str) -> str:
    """ASCII (punycode) lower case, no trailing dot, no leading `@`/`.`: the form allow-lists hold and compare."""
    domain = domain.strip().strip(".").lstrip("@").lower()
    if not domain or domain.isascii() or domain.startswith("["):
        return domain
    try:
        return ada_url.URL(f"http://{domain}/").hostname.strip(".")
    except ValueError:
        return domain


def urls(text: str) -> list[str]:
    """Links with a scheme or `www.`, refanged, in order of appearance (trailing punctuation dropped)."""
    return [_balanced(match.group(0).rstrip(".,;:!?")) for match in URL.finditer(refang(text))]


def _balanced(link: str) -> str:
    """Without the closing brackets that close the text around the link (`(see javascript:x())` keeps `x()`)."""
    while link.endswith(")") and link.count(")") > link.count("("):
        link = link[:-1].rstrip(".,;:!?")
    return link


def link_targets(text: str) -> list[str]:
    """Markdown and HTML link targets (entities decoded), then plain links, in order of appearance."""
    targets = [
        html.unescape(next(group for group in match.groups() if group is not None)).strip("\"'")
        for match in LINK_TARGET.finditer(refang(text))
    ]
    return list(dict.fromkeys([*targets, *urls(text)]))


def links(text: str) -> list[Link]:
    """Every link target in `text`, resolved as a browser would; relative ones (no scheme, no host) left out."""
    return [link for link in map(parse_link, link_targets(text)) if link.scheme or link.host]


def unsafe_links(text: str) -> list[str]:
    """Links a reader must never be sent: any scheme but http(s) (mailto and tel are judged as addresses and
    numbers), each shown with its scheme first."""
    return [
        f"{link.scheme}: {link.target}"
        for link in links(text)
        if link.scheme not in WEB_SCHEMES | CONTACT_SCHEMES and link.scheme
    ]


def email_addresses(text: str) -> list[str]:
    """E-mail addresses, refanged and lower-cased."""
    return [match.group(0).lower() for match in EMAIL_ADDRESS.finditer(refang(text))]


def _bare_domain(match: re.Match[str]) -> bool:
    """A dotted name whose last label is a top-level domain, unless it is `name.ext` with a file extension."""
    top = match.group(2).lower()
    if match.group(1).count(".") == 1 and top in FILE_EXTENSIONS:
        return False
    return top in SPECIAL_USE_TLDS or PUBLIC_SUFFIXES.is_public(top)


def domains(text: str) -> list[str]:
    """Every domain or host the text points to: hosts of links (as a browser resolves them), domains of addresses,
    and bare `name.tld` mentions, link texts included; `name.ext` with a file extension is a file name."""
    plain = html.unescape(refang(text))
    found = [link.host for link in links(plain) if link.host]
    found += [address.rsplit("@", 1)[1] for address in email_addresses(plain)]
    without = EMAIL_ADDRESS.sub(" ", URL.sub(" ", LINK_TARGET.sub(" ", plain)))
    found += [normalise_domain(m.group(1)) for m in BARE_DOMAIN.finditer(without) if _bare_domain(m)]
    return list(dict.fromkeys(domain for domain in found if "." in domain or domain.startswith("[")))


def domain_allowed(domain: str, allowed: Iterable[str]) -> bool:
    """True when `domain` is an allowed domain or a subdomain of one (`portal.example.com` under `example.com`)."""
    domain = normalise_domain(domain)
    return any(domain == entry or domain.endswith("." + entry) for entry in map(normalise_domain, allowed) if entry)


def foreign_domains(text: str, allowed: Iterable[str]) -> list[str]:
    """The domains in `text` that are not on the allow-list."""
    allowed = set(allowed)
    return [domain for domain in domains(text) if not domain_allowed(domain, allowed)]


def _phone_runs(text: str) -> list[str]:
    """Runs of eight digits or more that read as a phone number: not dates, not IPv4 addresses or networks, not the
    digits of an IBAN (a bank detail already)."""
    text = IBAN_CANDIDATE.sub(lambda match: " " if iban_valid(match.group(0)) else match.group(0), text)
    runs = []
    for match in PHONE_NUMBER.finditer(text):
        run = match.group(0).strip()
        if len(re.sub(r"\D", "", run)) >= 8 and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", run) and not IPV4.fullmatch(run):
            runs.append(run)
    return runs


def normalise_phone(run: str) -> str:
    """E.164 (`+442079464357`) for an international number, `+44 (0)20…` and `0044…` included; the digits of a
    national one, which only a region can place."""
    digits = re.sub(r"\D", "", run)
    if run.startswith("00"):
        run, digits = "+" + digits[2:], digits[2:]
    if not run.startswith("+"):
        return digits
    try:
        return phonenumbers.format_number(phonenumbers.parse(run, None), phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        return "+" + digits


def phone_numbers(text: str) -> list[str]:
    """Phone numbers, normalised (`normalise_phone`), eight digits or more so dates and versions do not count."""
    return [normalise_phone(run) for run in _phone_runs(text)]


def phone_listed(run: str, contact_points: Iterable[str]) -> bool:
    """Whether the number written as `run` is one of the contact points (E.164 entries): a national form counts
    when it is the same number in the contact point's own country (`020 7946 4357` for `+44 20 7946 4357`)."""
    number = normalise_phone(run)
    for point in contact_points:
        if not point.startswith("+"):
            continue
        if number == point:
            return True
        if not number.startswith("+"):
            region = phonenumbers.region_code_for_number(phonenumbers.parse(point, None))
            try:
                national = phonenumbers.parse(run, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.format_number(national, phonenumbers.PhoneNumberFormat.E164) == point:
                return True
    return False


def unlisted_contacts(text: str, contact_points: Iterable[str]) -> list[str]:
    """Phone numbers and e-mail addresses in `text` that are not the desk's own contact points."""
    points = set(contact_points)
    found = [normalise_phone(run) for run in _phone_runs(text) if not phone_listed(run, points)]
    return found + [address for address in email_addresses(text) if address not in points]


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


def content_reasons(text: str, allowed_domains: Iterable[str], contact_points: Iterable[str] = ()) -> list[str]:
    """Why a person should read `text` before it reaches a customer: each finding as a readable reason.

    `contact_points` are the desk's own phone numbers (E.164) and e-mail addresses: any other one is a finding,
    so with none listed every number and address is."""
    checks = (
        ("asks for a secret", secret_requests(text)),
        ("bank or payment details", bank_account_numbers(text) + payment_requests(text)),
        ("crypto wallet address", crypto_wallets(text)),
        ("links or addresses outside the allowed domains", foreign_domains(text, allowed_domains)),
        ("link scheme that is never allowed", unsafe_links(text)),
        ("phone number or e-mail address not on the desk's contact points", unlisted_contacts(text, contact_points)),
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
    problem: str = ""
    """Why it may not go out even when trusted text carries it: a domain off the allow-list, a scheme other than
    http(s), a number or address that is not one of the desk's contact points; "" when none."""

    @property
    def allowed(self) -> bool:
        return not self.problem


OUTSIDE = "points outside the allowed domains"
UNLISTED = "is not one of the desk's contact points"


def outgoing_items(text: str, allowed_domains: Iterable[str], contact_points: Iterable[str] = ()) -> list[ContactItem]:
    """Every link, address, phone number, bank detail and wallet in `text`, each with what forbids it (if anything):
    what the outgoing-message policy compares against trusted text."""
    allowed, points = set(allowed_domains), set(contact_points)
    items = []
    for link in links(text):
        if link.scheme in CONTACT_SCHEMES:
            continue
        problem = "" if domain_allowed(link.host, allowed) else OUTSIDE
        if link.scheme not in WEB_SCHEMES:
            problem = f"uses the {link.scheme}: scheme, which is never allowed"
        items.append(ContactItem("link", link.target.lower(), link.target, problem))
    addresses = email_addresses(text)
    items += [ContactItem("e-mail address", a, a, "" if a in points else UNLISTED) for a in addresses]
    named = {link.host for link in links(text)} | {address.rsplit("@", 1)[1] for address in addresses}
    items += [
        ContactItem("link", d, d, "" if domain_allowed(d, allowed) else OUTSIDE)
        for d in domains(text)
        if d not in named
    ]
    items += [
        ContactItem("phone number", normalise_phone(run), run, "" if phone_listed(run, points) else UNLISTED)
        for run in _phone_runs(text)
    ]
    items += [ContactItem("bank detail", number, number) for number in bank_account_numbers(text)]
    items += [ContactItem("wallet", wallet, wallet) for wallet in crypto_wallets(text)]
    return items
