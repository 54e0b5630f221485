"""E-mail addresses compared as senders: one normal form, so a reply binds to its ticket however it is spelled."""

from __future__ import annotations

from contextlib import suppress
from email.utils import parseaddr


def normalise_address(value: str) -> str:
    """The bare address, case-folded, its domain in ASCII (IDNA): "Rita <Rita@Bücher.example>" is
    "rita@xn--bcher-kva.example". An unreadable value is ""."""
    address = parseaddr(value or "")[1].strip().casefold()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return ""
    with suppress(UnicodeError):  # not a valid international name: compared as written
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


def same_address(first: str, second: str) -> bool:
    """Whether two values name the same mailbox; an unreadable value matches nothing."""
    normal = normalise_address(first)
    return bool(normal) and normal == normalise_address(second)
