"""Any IMAP mailbox as a source, for teams not on Microsoft 365: UID-based polling, no IDLE needed.

The cursor is `UIDVALIDITY:last UID:start of the window`. The window starts at IMAP_START_AT, else at the first
poll: mail that arrived before it (by INTERNALDATE) is skipped and counted, never taken in, so connecting a
mailbox with years of read mail opens no tickets for it. A changed UIDVALIDITY (the server renumbered the
folder) starts over inside the same window, and ingest's Message-ID keys make that harmless. Messages are
fetched with BODY.PEEK and flagged \\Seen only after their page is committed.
"""

from __future__ import annotations

import email
import email.parser
import email.policy
import hashlib
import imaplib
import logging
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError

from connectors.base import (
    AttachmentIn,
    ConnectorSettings,
    DeliveryReportIn,
    OpenBacklog,
    PolledPage,
    RejectedItem,
    Required,
    TicketIn,
    message_id_key,
    require_configured,
    setting_problems,
    timestamp_check,
)
from connectors.html_text import HiddenText, hidden_text_info, html_text
from connectors.http import (
    AuthenticationError,
    ConnectorError,
    UnreachableError,
    breaker_from_settings,
    tls_context,
    tls_problem,
)

log = logging.getLogger(__name__)
NAME = "imap"
KEPT_HEADERS = (
    "Authentication-Results",
    "Auto-Submitted",
    "Precedence",
    "X-Autoreply",
    "X-Auto-Response-Suppress",
    "List-Id",
    "X-Loop",
    "Return-Path",
    "X-Autorespond",
)
UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
INTERNALDATE = re.compile(rb'UID (\d+) INTERNALDATE "([^"]+)"|INTERNALDATE "([^"]+)" UID (\d+)')
START_FORMAT = "%Y-%m-%d %H:%M:%S"
CURSOR_START_FORMAT = "%Y%m%dT%H%M%SZ"


class ImapSettings(ConnectorSettings):
    """Any IMAP mailbox: server, login and the folder to read."""

    IMAP_HOST: Annotated[str, Required()] = ""
    IMAP_PORT: int = Field(default=993, ge=1, le=65535)
    IMAP_SECURITY: Literal["none", "starttls", "ssl"] = "ssl"
    IMAP_USERNAME: Annotated[str, Required()] = ""
    IMAP_PASSWORD: Annotated[SecretStr, Required()] = SecretStr("")
    IMAP_FOLDER: str = "INBOX"
    IMAP_START_AT: str = ""
    """Mail that arrived before this (`2026-01-31 23:59:59`, UTC) is not taken in; empty: from the first poll."""
    IMAP_POLL_INTERVAL_SECONDS: float = Field(default=30.0, gt=0)
    IMAP_CA_BUNDLE: str = ""
    """A private CA's PEM file, added to the system trust store for this connector only (CONNECTOR_CA_BUNDLE, by
    contrast, replaces the store for every connector)."""


def configuration_problems(settings: ImapSettings) -> list[str]:
    return setting_problems(
        settings, ImapSettings, IMAP_START_AT=timestamp_check(START_FORMAT, "2026-01-31 23:59:59 (UTC)")
    )


def is_configured(settings: ImapSettings) -> bool:
    return bool(settings.IMAP_HOST)


class ImapSource:
    name = NAME

    def __init__(self, settings: ImapSettings) -> None:
        require_configured("IMAP", configuration_problems(settings))
        self.settings = settings
        self.page_size = settings.CONNECTOR_PAGE_SIZE
        self.breaker = breaker_from_settings(NAME, settings)
        self.timeout = settings.CONNECTOR_READ_TIMEOUT_SECONDS
        self.start_at = (
            datetime.strptime(settings.IMAP_START_AT, START_FORMAT).replace(tzinfo=UTC)
            if settings.IMAP_START_AT
            else None
        )

    def _connect(self) -> imaplib.IMAP4:
        s = self.settings
        try:
            if s.IMAP_SECURITY == "ssl":
                client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                    s.IMAP_HOST, s.IMAP_PORT, ssl_context=self._tls(), timeout=self.timeout
                )
            else:
                client = imaplib.IMAP4(s.IMAP_HOST, s.IMAP_PORT, timeout=self.timeout)
                if s.IMAP_SECURITY == "starttls":
                    client.starttls(ssl_context=self._tls())
        except ssl.SSLError as error:
            raise UnreachableError(NAME, f"{s.IMAP_HOST}:{s.IMAP_PORT}: {tls_problem(error)}", retryable=True) from None
        except (OSError, imaplib.IMAP4.error) as error:
            raise UnreachableError(
                NAME, f"{s.IMAP_HOST}:{s.IMAP_PORT} unreachable ({type(error).__name__})", retryable=True
            ) from None
        try:
            client.login(s.IMAP_USERNAME, s.IMAP_PASSWORD.get_secret_value())
        except imaplib.IMAP4.error as error:
            if "[UNAVAILABLE]" in str(error):  # RFC 5530: a subsystem is down (a restarting server), not a bad login
                raise UnreachableError(
                    NAME, f"{s.IMAP_HOST}:{s.IMAP_PORT} unreachable for logins right now (UNAVAILABLE)", retryable=True
                ) from None
            raise AuthenticationError(
                NAME, f"login to {s.IMAP_HOST} refused: check IMAP_USERNAME/IMAP_PASSWORD", status=401
            ) from None
        return client

    def _tls(self) -> ssl.SSLContext:
        return tls_context(self.settings, self.settings.IMAP_CA_BUNDLE)

    def poll(self, cursor: str | None) -> Iterator[PolledPage]:
        with self._session(readonly=False) as client:
            yield from self._poll(client, cursor)

    def _poll(self, client: imaplib.IMAP4, cursor: str | None) -> Iterator[PolledPage]:
        validity = _uidvalidity(client)
        known_validity, last, window = [*(cursor or "").split(":"), "", ""][:3]
        if not cursor:
            window = self._window(None).strftime(CURSOR_START_FORMAT)
        if cursor and known_validity != validity:
            log.warning(
                "%s %s folder %r: UIDVALIDITY changed from %s to %s (the folder was recreated or renumbered); "
                "reading it again from the start of the window, messages already taken in are recognised by their "
                "Message-ID",
                NAME,
                self.settings.IMAP_HOST,
                self.settings.IMAP_FOLDER,
                known_validity,
                validity,
            )
        after = int(last) if known_validity == validity and last.isdigit() else 0
        _, found = client.uid("SEARCH", f"UID {after + 1}:*")
        uids = sorted(int(uid) for uid in (found[0] or b"").split() if int(uid) > after)
        newest = uids[-1] if uids else after
        suffix = f":{window}" if window else ""
        if after == 0 and window and uids:
            uids = self._inside_window(client, uids, datetime.strptime(window, CURSOR_START_FORMAT).replace(tzinfo=UTC))
        if not uids:
            if not cursor or known_validity != validity or newest > after:
                yield PolledPage(items=[], cursor=f"{validity}:{newest}{suffix}")
            return
        for start in range(0, len(uids), self.page_size):
            batch = uids[start : start + self.page_size]
            last_uid = newest if start + self.page_size >= len(uids) else batch[-1]
            items, rejected, fetched = self._page(client, batch, validity)
            yield PolledPage(items=items, cursor=f"{validity}:{last_uid}{suffix}", rejected=rejected)
            if fetched:
                client.uid("STORE", ",".join(str(uid) for uid in fetched), "+FLAGS", "(\\Seen)")

    def _inside_window(self, client: imaplib.IMAP4, uids: list[int], start: datetime) -> list[int]:
        """The UIDs that arrived at or after `start` (by INTERNALDATE); the others are counted and left untouched."""
        arrived = self._arrivals(client, f"UID {uids[0]}:* SINCE {(start - timedelta(days=1)):%d-%b-%Y}", set(uids))
        inside = sorted(uid for uid, at in arrived.items() if at >= start)
        if skipped := len(uids) - len(inside):
            log.warning(
                "%s %s folder %r: %d message(s) arrived before the start window %s UTC and are not taken in "
                "(set IMAP_START_AT earlier to take them)",
                NAME,
                self.settings.IMAP_HOST,
                self.settings.IMAP_FOLDER,
                skipped,
                start.strftime(START_FORMAT),
            )
        return inside

    def _arrivals(self, client: imaplib.IMAP4, search: str, among: set[int] | None = None) -> dict[int, datetime]:
        """When each message that `search` finds (narrowed to `among`) arrived, by INTERNALDATE: SEARCH works in
        whole days, INTERNALDATE decides to the second."""
        status, found = client.uid("SEARCH", search)
        if status == "OK":
            candidates = {int(uid) for uid in (found[0] or b"").split()}
            candidates = sorted(candidates & among if among is not None else candidates)
        elif among is not None:  # a server that cannot narrow: every candidate's INTERNALDATE decides
            candidates = sorted(among)
        else:
            raise ConnectorError(NAME, f"SEARCH {search} refused: {found!r}"[:300])
        arrived: dict[int, datetime] = {}
        for begin in range(0, len(candidates), self.page_size):
            batch = candidates[begin : begin + self.page_size]
            status, data = client.uid("FETCH", ",".join(str(uid) for uid in batch), "(UID INTERNALDATE)")
            if status != "OK":
                raise ConnectorError(NAME, f"FETCH INTERNALDATE refused: {data!r}"[:300])
            for line in data:
                match = INTERNALDATE.search(line[0] if isinstance(line, tuple) else line or b"")
                if match:
                    stamp = (match.group(2) or match.group(3)).decode().strip()
                    arrived[int(match.group(1) or match.group(4))] = datetime.strptime(stamp, "%d-%b-%Y %H:%M:%S %z")
        return arrived

    def _window(self, cursor: str | None) -> datetime:
        """The start of the window `cursor` holds; without one, IMAP_START_AT or now (what the first poll takes)."""
        stored = [*(cursor or "").split(":"), "", ""][2]
        if stored:
            return datetime.strptime(stored, CURSOR_START_FORMAT).replace(tzinfo=UTC)
        return self.start_at or datetime.now(UTC)

    def window_start(self, cursor: str | None) -> str:
        """The start of the window, UTC, as IMAP_START_AT is written."""
        return self._window(cursor).strftime(START_FORMAT)

    def moved_window(self, cursor: str | None, start: datetime) -> str:
        """A cursor whose window starts at `start` and that reads the folder again from its first message: mail
        inside the new window not yet taken in is taken in as new (as IMAP_START_AT would have), the rest is
        recognised by its Message-ID or fingerprint."""
        validity = [*(cursor or "").split(":"), ""][0]
        return f"{validity}:0:{start.astimezone(UTC):{CURSOR_START_FORMAT}}"

    def _unread_before(self, client: imaplib.IMAP4, start: datetime) -> list[int]:
        """Unread messages that arrived before `start`: the mailbox's open work the window leaves out."""
        arrived = self._arrivals(client, f"UNSEEN BEFORE {(start + timedelta(days=1)):%d-%b-%Y}")
        return sorted(uid for uid, at in arrived.items() if at < start)

    def open_before_window(self, cursor: str | None) -> OpenBacklog:
        """Unread messages that arrived before the window: polls never read them."""
        start = self._window(cursor)
        with self._session(readonly=True) as client:
            count = len(self._unread_before(client, start))
        return OpenBacklog(
            count=count, window_start=start.strftime(START_FORMAT), noun="unread message", since="that arrived"
        )

    def open_backlog(self, cursor: str | None) -> Iterator[PolledPage]:
        """Those unread messages as backlog tickets, oldest first, each page flagged \\Seen once handed over;
        the pages carry no cursor."""
        start = self._window(cursor)
        with self._session(readonly=False) as client:
            uids = self._unread_before(client, start)
            validity = _uidvalidity(client)
            for begin in range(0, len(uids), self.page_size):
                items, rejected, fetched = self._page(client, uids[begin : begin + self.page_size], validity)
                marked = [
                    item.model_copy(update={"additional_info": {**item.additional_info, "backlog": True}})
                    for item in items
                ]
                yield PolledPage(items=marked, cursor=None, rejected=rejected)
                if fetched:
                    client.uid("STORE", ",".join(str(uid) for uid in fetched), "+FLAGS", "(\\Seen)")

    @contextmanager
    def _session(self, *, readonly: bool) -> Iterator[imaplib.IMAP4]:
        """A logged-in connection with the folder selected, through the breaker, logged out on leaving."""
        self.breaker.before_call()
        try:
            client = self._connect()
        except ConnectorError as error:
            self.breaker.record_failure(str(error))
            raise
        try:
            status, _ = client.select(_quote(self.settings.IMAP_FOLDER), readonly=readonly)
            if status != "OK":
                raise ConnectorError(NAME, f"folder {self.settings.IMAP_FOLDER!r} cannot be opened (IMAP_FOLDER)")
            yield client
            self.breaker.record_success()
        except (OSError, imaplib.IMAP4.error) as error:
            failure = UnreachableError(NAME, f"{self.settings.IMAP_HOST}: {type(error).__name__}", retryable=True)
            self.breaker.record_failure(str(failure))
            raise failure from None
        finally:
            try:
                client.logout()
            except (OSError, imaplib.IMAP4.error):
                log.debug("IMAP logout failed")

    def _page(
        self, client: imaplib.IMAP4, uids: list[int], validity: str
    ) -> tuple[list[TicketIn], list[RejectedItem], list[int]]:
        """Fetch `uids` and read each as a ticket; one that cannot be read is rejected whole."""
        items, rejected, fetched = [], [], []
        for uid, raw in self._fetch(client, uids):
            fetched.append(uid)
            try:
                items.append(to_ticket_in(raw, f"{validity}:{uid}", self.settings.MAX_ATTACHMENT_BYTES))
            except (ValueError, ValidationError, TypeError, LookupError) as error:
                rejected.append(
                    RejectedItem(
                        f"{validity}:{uid}",
                        f"{NAME} UID {uid}: {error}"[:2000],
                        raw[:100_000].decode("utf-8", errors="replace"),
                    )
                )
        return items, rejected, fetched

    def _fetch(self, client: imaplib.IMAP4, uids: list[int]) -> list[tuple[int, bytes]]:
        status, data = client.uid("FETCH", ",".join(str(uid) for uid in uids), "(UID BODY.PEEK[])")
        if status != "OK":
            raise ConnectorError(NAME, f"FETCH refused: {data!r}"[:300])
        messages = []
        for part in data:
            if isinstance(part, tuple) and (match := re.search(rb"UID (\d+)", part[0])):
                messages.append((int(match.group(1)), part[1]))
        return messages

    def ping(self) -> None:
        client = self._connect()
        try:
            client.select(_quote(self.settings.IMAP_FOLDER), readonly=True)
        finally:
            client.logout()


def _quote(folder: str) -> str:
    return f'"{folder}"' if " " in folder else folder


def _uidvalidity(client: imaplib.IMAP4) -> str:
    for value in client.response("UIDVALIDITY")[1] or []:
        if value:
            return value.decode() if isinstance(value, bytes) else str(value)
    status, data = client.status("INBOX", "(UIDVALIDITY)")
    match = UIDVALIDITY.search(data[0] or b"") if status == "OK" and data else None
    return match.group(1).decode() if match else "0"


def to_ticket_in(raw: bytes, fallback_id: str, max_attachment_bytes: int) -> TicketIn:
    """An RFC 5322 message as a source item, keyed by its Message-ID (or, without one, by a fingerprint of its
    content) so renumbering cannot duplicate it; `fallback_id` is kept for messages that cannot be parsed."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    name, address = parseaddr(str(message.get("From", "")))
    if not address:
        raise ValueError("message has no From address")
    message_id = message_id_key(str(message.get("Message-ID", ""))) or None
    references = [message_id_key(value) for value in str(message.get("References", "")).split()]
    body_part = message.get_body(preferencelist=("plain", "html"))
    body = _text(body_part) if body_part is not None else ""
    hidden: list[HiddenText] = []
    if body_part is not None and body_part.get_content_subtype() == "html":
        body, hidden = html_text(body)
    attachments = [
        AttachmentIn(filename=_attachment_name(part), content_type=part.get_content_type(), data=data)
        for part in message.iter_attachments()
        if len(data := _attachment_bytes(part)) <= max_attachment_bytes
    ]
    date = message.get("Date")
    try:
        updated = parsedate_to_datetime(str(date)).astimezone(UTC) if date else None
    except (TypeError, ValueError):
        updated = None
    return TicketIn(
        source=NAME,
        external_id=message_id or content_fingerprint(message, raw) or fallback_id,
        kind="email",
        requester_email=address,
        requester_name=name or None,
        subject=str(message.get("Subject", "")),
        body=body,
        updated_at=updated,
        thread_id=(references[0] if references else message_id),
        message_id=message_id,
        in_reply_to=message_id_key(str(message.get("In-Reply-To", ""))) or None,
        references=references,
        headers={key: str(message[key]) for key in KEPT_HEADERS if message.get(key) is not None},
        attachments=attachments,
        additional_info=hidden_text_info(hidden),
        delivery_report=delivery_report(message),
    )


def content_fingerprint(message: EmailMessage, raw: bytes) -> str:
    """The key of a message without a Message-ID: From, Date, Subject and a hash of its body, so the same message
    read again (a changed UIDVALIDITY renumbers every UID) is recognised."""
    _, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    fields = [" ".join(str(message.get(name, "")).split()) for name in ("From", "Date", "Subject")]
    digest = hashlib.sha256("\n".join([*fields, hashlib.sha256(body).hexdigest()]).encode("utf-8", "replace"))
    return f"fingerprint:{digest.hexdigest()}"


def delivery_report(message: EmailMessage) -> DeliveryReportIn | None:
    """What a delivery status notification (multipart/report; report-type=delivery-status, RFC 3464) says about
    the message it returns; None for any other e-mail."""
    if message.get_content_type() != "multipart/report":
        return None
    if str(message.get_param("report-type", "") or "").lower() not in ("delivery-status", "global-delivery-status"):
        return None
    ids: list[str] = []
    recipients: list[EmailMessage] = []
    for part in message.iter_parts():
        kind = part.get_content_type()
        payload = part.get_payload()
        if kind in ("message/delivery-status", "message/global-delivery-status") and isinstance(payload, list):
            for block in payload:
                ids += [str(block[name]) for name in ("Original-Message-ID", "X-Original-Message-ID") if block[name]]
                if block["Action"]:
                    recipients.append(block)
        elif kind in ("message/rfc822", "message/global") and isinstance(payload, list) and payload:
            ids.append(str(payload[0].get("Message-ID", "")))
        elif kind in ("text/rfc822-headers", "message/global-headers"):
            headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(_attachment_bytes(part))
            ids.append(str(headers.get("Message-ID", "")))
    ids += [str(message.get("In-Reply-To", "")), *str(message.get("References", "")).split()]
    worst = next(
        (block for block in recipients if str(block["Action"]).strip().lower() == "failed"),
        next((block for block in recipients if str(block["Action"]).strip().lower() != "delivered"), None),
    ) or (recipients[0] if recipients else None)
    recipient = str(worst.get("Final-Recipient") or worst.get("Original-Recipient") or "") if worst else ""
    return DeliveryReportIn(
        message_ids=list(dict.fromkeys(key for value in ids if (key := message_id_key(value)))),
        action=str(worst["Action"]).strip().lower()[:40] if worst else "",
        recipient=recipient.partition(";")[2].strip()[:320] or None,
        status=str(worst.get("Status", "")).strip()[:40] if worst else "",
        diagnostic=" ".join(str(worst.get("Diagnostic-Code", "")).split())[:2000] if worst else "",
    )


def _attachment_bytes(part: Any) -> bytes:
    """A part's content as bytes. An attached e-mail (message/rfc822, as forwarded or returned in a bounce) and the
    other structured parts (message/delivery-status, a nested multipart) have no decodable payload of their own:
    they are kept as the bytes of what they hold."""
    if not part.is_multipart() and part.get_content_maintype() != "message":
        return part.get_payload(decode=True) or b""
    payload = part.get_payload()
    try:
        if part.get_content_type() == "message/rfc822" and isinstance(payload, list) and payload:
            return payload[0].as_bytes(policy=email.policy.SMTP)
        if part.get_content_maintype() == "message" and isinstance(payload, list):
            return b"".join(block.as_bytes(policy=email.policy.SMTP) for block in payload)
        _, _, body = part.as_bytes(policy=email.policy.SMTP).partition(b"\r\n\r\n")
        return body
    except (LookupError, UnicodeError, ValueError, TypeError):
        raw = part.get_payload(decode=False)
        return raw.encode("utf-8", "replace") if isinstance(raw, str) else b""


def _attachment_name(part: Any) -> str:
    """The part's own file name; an attached e-mail without one is named after its subject, with .eml, so it opens
    as what it is."""
    name = part.get_filename()
    if not name and part.get_content_type() == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        subject = re.sub(r"[\\/:*?\"<>|\x00-\x1f]+", " ", str(inner.get("Subject", "") if inner else "")).strip()
        name = f"{subject[:200] or 'message'}.eml"
    elif not name and part.get_content_maintype() == "message":
        name = part.get_content_subtype()
    return str(name or "attachment")[:500]


def _text(part: Any) -> str:
    """A text part's content, whatever its declared charset; undecodable bytes become U+FFFD."""
    try:
        return str(part.get_content())
    except (LookupError, UnicodeDecodeError):
        payload = part.get_payload(decode=True) or b""
        return (
            payload.decode(part.get_content_charset() or "utf-8", errors="replace")
            if _known(part)
            else payload.decode("utf-8", errors="replace")
        )


def _known(part: Any) -> bool:
    import codecs

    try:
        codecs.lookup(part.get_content_charset() or "utf-8")
    except LookupError:
        return False
    return True
