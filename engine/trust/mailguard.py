"""Mail-loop guard and sender check: tell automatic mail from people's mail, mark ours, cap automated mail per
address, and believe a From address only as far as the receiving mail server verified it.

An auto-responder answering our auto-reply answering it is the classic help-desk storm. RFC 3834 and the
de-facto headers below let us see automatic mail; a per-address hourly cap stops what slips through.

A From header is whatever the sender typed. The receiving server checks SPF, DKIM and DMARC and says what it found in
an Authentication-Results header (RFC 8601) under its own name, removing any such header with its name that came
from outside; with MAIL_AUTHSERV_ID naming that server, a message it did not verify is not its sender's word.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import timedelta

import authres
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.core.enums import MessageKind, OutboxState
from engine.core.models import OutboxMessage, utcnow
from engine.trust.content_policy import PUBLIC_SUFFIXES

log = logging.getLogger(__name__)

AUTOMATIC_SENDER = re.compile(
    r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|donotreply|bounces?|auto-?reply|autoresponder)([+.\-_@]|$)",
    re.IGNORECASE,
)
BOUNCE_SUBJECT = re.compile(
    r"^(undeliverable|undelivered mail|delivery status notification|mail delivery (failed|failure)|returned mail)",
    re.IGNORECASE,
)
BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})


def outgoing_headers(our_address: str) -> dict[str, str]:
    """Headers on every message we send, so well-behaved responders never answer us (RFC 3834 §5)."""
    return {"Auto-Submitted": "auto-replied", "X-Loop": our_address, "X-Auto-Response-Suppress": "All"}


def automatic_reason(headers: Mapping[str, str], sender: str, subject: str, our_address: str) -> str | None:
    """Why this message was sent by a machine rather than a person, or None for a person's mail."""
    lower = {key.lower(): str(value).strip() for key, value in headers.items()}
    auto_submitted = lower.get("auto-submitted", "no").lower()
    if auto_submitted and auto_submitted != "no":
        return f"Auto-Submitted: {auto_submitted}"
    if our_address and our_address.lower() in lower.get("x-loop", "").lower():
        return "X-Loop names this desk"
    if lower.get("precedence", "").lower() in BULK_PRECEDENCE:
        return f"Precedence: {lower['precedence'].lower()}"
    for header in ("x-autoreply", "x-autorespond"):
        if header in lower:
            return f"{header} header"
    if lower.get("return-path", "").strip() == "<>":
        return "empty Return-Path (bounce)"
    if "report-type=delivery-status" in lower.get("content-type", "").lower():
        return "delivery status report (bounce)"
    local_part = sender.rsplit("<", 1)[-1].strip(">").strip()
    if AUTOMATIC_SENDER.match(local_part):
        return f"automatic sender {local_part}"
    if our_address and local_part.lower() == our_address.lower():
        return "sent by this desk"
    if BOUNCE_SUBJECT.match(subject.strip()):
        return "bounce subject"
    return None


def undeliverable_reason(address: str, our_address: str) -> str | None:
    """Why we must never send an automated message to `address`, or None."""
    if not address or "@" not in address:
        return f"no valid recipient address ({address!r})"
    if AUTOMATIC_SENDER.match(address):
        return f"{address} is an automatic mailbox"
    if our_address and address.lower() == our_address.lower():
        return "recipient is this desk itself"
    return None


def automated_sent_last_hour(session: Session, address: str, *, acknowledgements: bool | None = None) -> int:
    """Automated messages queued or sent to `address` in the last hour (suppressed ones do not count); only
    acknowledgements (True) or only the others (False) when asked, since the hourly cap counts them apart."""
    since = utcnow() - timedelta(hours=1)
    query = (
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            func.lower(OutboxMessage.to_address) == address.lower(),
            OutboxMessage.automated.is_(True),
            OutboxMessage.created_at >= since,
            OutboxMessage.state != OutboxState.SUPPRESSED,
        )
    )
    if acknowledgements is not None:
        is_ack = OutboxMessage.kind == MessageKind.ACKNOWLEDGEMENT
        query = query.where(is_ack if acknowledgements else ~is_ack)
    return session.scalar(query) or 0


def unverified_sender(headers: Mapping[str, str], sender: str, authserv_id: str) -> str | None:
    """Why the From address of a message cannot be taken as its sender's, or None when it can: always when no
    `authserv_id` is configured (the mail server is trusted as it delivers); otherwise only when that server's
    Authentication-Results header says DMARC passed or, without a DMARC result, DKIM or SPF passed for the From
    address's organisational domain (RFC 7489 relaxed alignment)."""
    if not authserv_id:
        return None
    value = next((str(v) for k, v in headers.items() if k.lower() == "authentication-results"), None)
    if value is None:
        return f"the sender {sender} is not verified: no Authentication-Results from {authserv_id}"
    try:
        parsed = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {value}")
    except Exception as error:  # authres raises its own syntax errors; any of them means unverified
        log.warning("an Authentication-Results header could not be read: %s", type(error).__name__)
        return f"the sender {sender} is not verified: its Authentication-Results header could not be read"
    if str(parsed.authserv_id).lower() != authserv_id.lower():
        return f"the sender {sender} is not verified: no Authentication-Results from {authserv_id}"
    found = {str(result.method).lower(): result for result in parsed.results}
    domain = _organisation(sender.rsplit("@", 1)[-1])
    if "dmarc" in found:
        verified = _passed(found["dmarc"])
    else:
        verified = any(
            _passed(found.get(method)) and _organisation(_property(found[method], name)) == domain
            for method, name in (("dkim", "d"), ("spf", "mailfrom"))
        )
    if verified:
        return None
    said = ", ".join(f"{method}={result.result}" for method, result in found.items()) or "no results"
    return f"the sender {sender} is not verified by {authserv_id} ({said})"


def _passed(result: object) -> bool:
    return result is not None and str(getattr(result, "result", "")).lower() == "pass"


def _property(result: object, name: str) -> str:
    value = next((str(p.value) for p in getattr(result, "properties", []) if str(p.name).lower() == name), "")
    return value.rsplit("@", 1)[-1]


def _organisation(domain: str) -> str:
    """The registrable domain (example.co.uk for mail.example.co.uk); its last two labels under a name the list does
    not hold (customer.example for mail.customer.example)."""
    domain = domain.strip().strip(".").lower()
    return PUBLIC_SUFFIXES.privatesuffix(domain) or ".".join(domain.split(".")[-2:])
