"""Transactional outbox: every outgoing message is written with its cause and delivered exactly once.

Rows move pending → sending → sent (or failed / suppressed). A worker claims rows with a lease; a
crash leaves a `sending` row whose lease expires, and reconciliation asks the transport whether it
already has that Message-ID. If the transport cannot tell (plain SMTP), the row becomes `uncertain`
and waits for a person rather than risk sending the customer the same message twice.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from connectors import registry
from connectors.base import ConfigurationError, DeliveryError, MailTransport, OutgoingAttachment, OutgoingEmail
from engine.core.blobs import store_blob
from engine.core.db import is_postgres, transaction
from engine.core.desk_policy import current_policy
from engine.core.enums import MessageKind, OutboxState
from engine.core.models import Action, Analysis, Blob, EmailInteraction, OutboxMessage, Ticket, utcnow
from engine.core.settings import Settings
from engine.core.templates import (
    GAP_QUESTIONS,
    EmailContent,
    safe_name,
    template_texts,
)
from engine.core.timeline import record_event
from engine.ops.failpoints import failpoint
from engine.ops.observability import observe_delivery
from engine.trust.mailguard import automated_sent_last_hour, outgoing_headers, undeliverable_reason
from engine.trust.provenance import RenderedMessage, UntrustedTextError, cited_texts, untrusted_text

log = logging.getLogger(__name__)
MAX_BACKOFF_SECONDS = 6 * 3600
SHOWN_COPIES = 3
"""Copies a timeline title names; the rest are counted, so the title stays whole (it is kept to 300 characters)."""


def enqueue_email(
    session: Session,
    settings: Settings,
    ticket: Ticket,
    kind: MessageKind,
    content: EmailContent,
    *,
    dedupe_key: str,
    action: Action | None = None,
    automated: bool = True,
    own_text: Sequence[str] = (),
    cc: Sequence[str] = (),
    files: Sequence[OutgoingAttachment] = (),
) -> OutboxMessage:
    """Queue one message in the caller's transaction; the same `dedupe_key` never queues twice.

    Every message reaches the outbox here, so an automated one cannot skip the final check: each word of it must
    come from a text we trust (engine/trust/provenance.py), else `UntrustedTextError` is raised before anything is
    written and a person decides. `own_text` is text the caller's code wrote for this message (the confirmation
    links). A message a person wrote or approved (`automated=False`) is vouched for by that person.
    Automated messages also pass the mail-loop guard: never to automatic mailboxes or ourselves, and at most
    MAX_AUTOMATED_EMAILS_PER_HOUR per address. A message the guard stops is kept as `suppressed`.
    Copies (`cc`) and `files` are a person's choice: an automated message carrying either is refused. The files'
    bytes are kept as blobs in the same transaction, so the message and its files are delivered together.
    """
    if automated and (cc or files):
        raise ValueError("an automated message never carries copies or files: only a person's reply may")
    existing = session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key))
    if existing is not None:
        return existing
    headers = outgoing_headers(settings.from_address) if automated else {"X-Loop": settings.from_address}
    if settings.SUPPORT_REPLY_TO:
        headers["Reply-To"] = settings.SUPPORT_REPLY_TO
    if automated:
        rendered = RenderedMessage(
            content.subject, content.body_text, content.body_html, (settings.SUPPORT_FROM_NAME, *headers.values())
        )
        trusted = trusted_texts(session, settings, ticket, action, [*own_text, *headers.values()])
        if reasons := untrusted_text(rendered, trusted):
            raise UntrustedTextError(reasons)
    blocked = undeliverable_reason(ticket.email, settings.from_address)
    is_ack = kind == MessageKind.ACKNOWLEDGEMENT
    if (
        automated
        and blocked is None
        and automated_sent_last_hour(session, ticket.email, acknowledgements=is_ack)
        >= settings.MAX_AUTOMATED_EMAILS_PER_HOUR
    ):
        counted = "acknowledgements" if is_ack else "automated answers"
        blocked = (
            f"{settings.MAX_AUTOMATED_EMAILS_PER_HOUR} {counted} to {ticket.email} in the last hour "
            "(MAX_AUTOMATED_EMAILS_PER_HOUR, the mail-loop guard); a person may reply by hand"
        )
    domain = settings.from_address.rsplit("@", 1)[-1]
    in_reply_to = session.scalar(
        select(EmailInteraction.message_id)
        .where(EmailInteraction.ticket_id == ticket.id, EmailInteraction.message_id.is_not(None))
        .order_by(EmailInteraction.id.desc())
        .limit(1)
    )
    message = OutboxMessage(
        ticket_id=ticket.id,
        action_id=action.id if action else None,
        dedupe_key=dedupe_key,
        kind=kind,
        automated=automated,
        to_address=ticket.email,
        from_address=settings.from_address,
        subject=content.subject,
        body_text=content.body_text,
        body_html=content.body_html,
        headers=headers,
        cc_addresses=list(cc),
        attachments=[
            {
                "filename": f.filename,
                "content_type": f.content_type,
                "size": len(f.data),
                "sha256": store_blob(session, f.data),
            }
            for f in files
        ],
        message_id=f"<{uuid.uuid4().hex}.{ticket.reference.lower()}@{domain}>",
        in_reply_to=in_reply_to,
        state=OutboxState.SUPPRESSED if blocked else OutboxState.PENDING,
        last_error=blocked,
    )
    session.add(message)
    session.flush()
    if blocked:
        ticket.action_required = True
        record_event(session, ticket, "email_suppressed", f"{kind} not sent: {blocked}", outbox_id=message.id)
    else:
        record_event(session, ticket, "email_queued", f"{kind} queued for {addressees(message)}", outbox_id=message.id)
    return message


def addressees(message: OutboxMessage) -> str:
    """Who a message goes to and what it carries, as the timeline says it: "a@x, cc b@y, with 2 attachments"."""
    text = message.to_address
    if copies := message.cc_addresses:
        named = ", ".join(copies[:SHOWN_COPIES])
        more = len(copies) - SHOWN_COPIES
        text += f", cc {named}" + (f" and {more} other{'s' if more > 1 else ''}" if more > 0 else "")
    if count := len(message.attachments):
        text += f", with {count} attachment{'s' if count > 1 else ''}"
    return text


def trusted_texts(
    session: Session, settings: Settings, ticket: Ticket, action: Action | None, own_text: Sequence[str]
) -> list[str]:
    """What an automated message may be built from: our templates and settings, the ticket reference, a name the
    source's directory vouches for, the questions we ask, and the knowledge its analysis cited."""
    texts = [
        *template_texts(current_policy(session, settings).templates),
        settings.SUPPORT_SIGNATURE,
        settings.SUPPORT_FROM_NAME,
        ticket.reference,
        safe_name(ticket.directory_name),
        *GAP_QUESTIONS.values(),
        *own_text,
    ]
    analysis = session.get(Analysis, action.analysis_id) if action and action.analysis_id else None
    return texts + (cited_texts(analysis.evidence) if analysis else [])


@dataclass
class DeliveryReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    reconciled: int = 0
    uncertain: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def deliver_outbox(
    factory: sessionmaker[Session], settings: Settings, transport: MailTransport, *, batch: int = 50
) -> DeliveryReport:
    """One run of the delivery job: settle crashed sends, then claim and send what is due."""
    report = DeliveryReport()
    _reconcile_expired_claims(factory, settings, transport, report)
    for outbox_id, token in _claim_due(factory, settings, transport.name, batch):
        _deliver_one(factory, settings, transport, outbox_id, token, report)
    observe_delivery(report.as_dict())
    return report


def _claim_due(factory: sessionmaker[Session], settings: Settings, transport: str, batch: int) -> list[tuple[int, str]]:
    """Lease a batch of due rows to this worker; each becomes `sending` only just before its own send."""
    now = utcnow()
    with transaction(factory) as session:
        query = (
            select(OutboxMessage)
            .where(
                OutboxMessage.state == OutboxState.PENDING,
                OutboxMessage.next_attempt_at <= now,
                or_(OutboxMessage.claim_expires.is_(None), OutboxMessage.claim_expires < now),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(batch)
        )
        if is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        claimed = []
        for message in session.scalars(query):
            message.claim_token = uuid.uuid4().hex
            message.claim_expires = now + timedelta(seconds=settings.CLAIM_LEASE_SECONDS)
            message.transport = transport
            claimed.append((message.id, message.claim_token))
    return claimed


def _start_sending(
    factory: sessionmaker[Session], settings: Settings, outbox_id: int, token: str
) -> OutboxMessage | None:
    """Mark one leased row `sending`, if the lease still holds: from here on a crash makes it uncertain.

    The lease restarts with the send, so a long batch never hands its last rows to reconciliation mid-send.
    """
    with transaction(factory) as session:
        started = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == outbox_id,
                OutboxMessage.claim_token == token,
                OutboxMessage.state == OutboxState.PENDING,
            )
            .values(
                state=OutboxState.SENDING,
                attempts=OutboxMessage.attempts + 1,
                claim_expires=utcnow() + timedelta(seconds=settings.CLAIM_LEASE_SECONDS),
            )
        ).rowcount
        return session.get(OutboxMessage, outbox_id) if started else None


def _deliver_one(
    factory: sessionmaker[Session],
    settings: Settings,
    transport: MailTransport,
    outbox_id: int,
    token: str,
    report: DeliveryReport,
) -> None:
    message = _start_sending(factory, settings, outbox_id, token)
    if message is None:
        return
    try:
        with factory() as session:
            files = attached_files(session, message)
            email = _as_email(message, settings, thread_references(session, message), files)
        failpoint("outbox.after_claim")
        provider_id = transport.send(email)
    except DeliveryError as error:
        _record_failure(factory, settings, outbox_id, token, error, report)
        return
    failpoint("outbox.after_send")
    with transaction(factory) as session:
        if _mark_sent(session, outbox_id, token, provider_id):
            report.sent += 1
    failpoint("outbox.after_mark_sent")


MAX_REFERENCES = 20
"""A long thread's References keeps its first id and the latest ones (RFC 5322 3.6.4 allows trimming)."""


def thread_references(session: Session, message: OutboxMessage) -> tuple[str, ...]:
    """The References chain of a reply (RFC 5322 3.6.4): the parent's References, or else its In-Reply-To,
    followed by the parent's Message-ID."""
    if not message.in_reply_to:
        return ()
    parent = session.scalar(
        select(EmailInteraction)
        .where(EmailInteraction.ticket_id == message.ticket_id, EmailInteraction.message_id == message.in_reply_to)
        .order_by(EmailInteraction.id.desc())
        .limit(1)
    )
    earlier = (parent.references or parent.in_reply_to or "").split() if parent is not None else []
    chain = [*dict.fromkeys(value for value in earlier if value != message.in_reply_to), message.in_reply_to]
    return tuple(chain if len(chain) <= MAX_REFERENCES else [chain[0], *chain[-(MAX_REFERENCES - 1) :]])


def attached_files(session: Session, message: OutboxMessage) -> tuple[OutgoingAttachment, ...]:
    """The message's files with their bytes, read from the blobs they were kept in."""
    files = []
    for file in message.attachments:
        blob = session.get(Blob, file["sha256"])
        if blob is None:
            raise DeliveryError(f"the attached file {file['filename']} is no longer stored", permanent=True)
        files.append(OutgoingAttachment(file["filename"], file["content_type"], blob.data))
    return tuple(files)


def _as_email(
    message: OutboxMessage,
    settings: Settings,
    references: tuple[str, ...] = (),
    files: tuple[OutgoingAttachment, ...] = (),
) -> OutgoingEmail:
    return OutgoingEmail(
        message_id=message.message_id,
        from_address=message.from_address,
        from_name=settings.SUPPORT_FROM_NAME,
        to_address=message.to_address,
        subject=message.subject,
        body_text=message.body_text,
        body_html=message.body_html,
        in_reply_to=message.in_reply_to,
        references=references or ((message.in_reply_to,) if message.in_reply_to else ()),
        headers=dict(message.headers),
        cc=tuple(message.cc_addresses),
        attachments=files,
    )


def _mark_sent(session: Session, outbox_id: int, token: str | None, provider_id: str) -> bool:
    """Record delivery, if our claim still holds (a reclaimed row belongs to someone else now)."""
    now = utcnow()
    condition = OutboxMessage.claim_token == token if token else OutboxMessage.state == OutboxState.SENDING
    done = session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == outbox_id, condition)
        .values(
            state=OutboxState.SENT,
            sent_at=now,
            transport_message_id=provider_id,
            claim_token=None,
            claim_expires=None,
            last_error=None,
        )
    ).rowcount
    if not done:
        return False
    message = session.get(OutboxMessage, outbox_id)
    assert message is not None
    session.refresh(message)
    ticket = session.get(Ticket, message.ticket_id)
    assert ticket is not None
    session.add(
        EmailInteraction(
            ticket_id=ticket.id,
            direction="outbound",
            email_type=message.kind,
            source="outbox",
            external_id=message.message_id,
            message_id=message.message_id,
            in_reply_to=message.in_reply_to,
            references=" ".join(thread_references(session, message)) or None,
            from_address=message.from_address,
            to_address=message.to_address,
            subject=message.subject,
            body=message.body_text,
            headers={**message.headers, **({"Cc": ", ".join(message.cc_addresses)} if message.cc_addresses else {})},
        )
    )
    if message.kind == MessageKind.ACKNOWLEDGEMENT:
        ticket.acknowledged_at = ticket.acknowledged_at or now
    elif ticket.first_response_at is None:
        ticket.first_response_at = now
    record_event(
        session,
        ticket,
        "email_sent",
        f"{message.kind} sent to {addressees(message)} via {message.transport}",
        outbox_id=message.id,
        message_id=message.message_id,
        provider_id=provider_id,
    )
    return True


def _record_failure(
    factory: sessionmaker[Session],
    settings: Settings,
    outbox_id: int,
    token: str,
    error: DeliveryError,
    report: DeliveryReport,
) -> None:
    with transaction(factory) as session:
        message = session.get(OutboxMessage, outbox_id)
        if message is None or message.claim_token != token:
            return
        ticket = session.get(Ticket, message.ticket_id)
        assert ticket is not None
        message.last_error = str(error)[:2000]
        message.claim_token = None
        message.claim_expires = None
        if error.deferred:
            message.attempts -= 1
        delay = error.retry_after or min(
            settings.OUTBOX_BACKOFF_SECONDS * 2 ** max(message.attempts - 1, 0), MAX_BACKOFF_SECONDS
        )
        if error.uncertain and not error.permanent:
            message.claim_expires = utcnow() + timedelta(seconds=delay)
            record_event(
                session,
                ticket,
                "email_unconfirmed",
                f"{message.kind} to {message.to_address}: {error}. It may have gone out: the transport is asked "
                "before anything is sent again.",
                outbox_id=message.id,
            )
            log.warning("delivery unconfirmed, will reconcile: %s", error, extra={"ticket": ticket.reference})
            report.retried += 1
            return
        if error.permanent or message.attempts >= settings.OUTBOX_MAX_ATTEMPTS:
            message.state = OutboxState.FAILED
            ticket.action_required = True
            record_event(
                session,
                ticket,
                "email_failed",
                f"{message.kind} to {message.to_address} failed: {error}",
                outbox_id=message.id,
                attempts=message.attempts,
            )
            log.error("delivery failed for good: %s", error, extra={"ticket": ticket.reference})
            report.failed += 1
            return
        message.state = OutboxState.PENDING
        message.next_attempt_at = utcnow() + timedelta(seconds=delay)
        log.warning(
            "delivery attempt %s failed, retry in %.0fs: %s",
            message.attempts,
            delay,
            error,
            extra={"ticket": ticket.reference},
        )
        report.retried += 1


def _reconcile_expired_claims(
    factory: sessionmaker[Session], settings: Settings, transport: MailTransport, report: DeliveryReport
) -> None:
    """Settle rows whose send was cut short (the sender died, or the provider's answer was lost): the transport
    says whether the message got out; when it cannot tell, a person decides."""
    with transaction(factory) as session:
        query = select(OutboxMessage).where(
            OutboxMessage.state == OutboxState.SENDING, OutboxMessage.claim_expires < utcnow()
        )
        if is_postgres(session):
            query = query.with_for_update(skip_locked=True)
        for message in session.scalars(query).all():
            ticket = session.get(Ticket, message.ticket_id)
            assert ticket is not None
            delivered = transport.was_delivered(message.message_id)
            if delivered:
                _mark_sent(session, message.id, message.claim_token, message.message_id)
                report.reconciled += 1
            elif delivered is None and transport.confirms_delivery and _still_confirmable(message, settings):
                message.claim_token = None
                message.claim_expires = utcnow() + timedelta(seconds=settings.OUTBOX_BACKOFF_SECONDS)
            elif delivered is False:
                message.state = OutboxState.PENDING
                message.claim_token = None
                message.claim_expires = None
                record_event(
                    session,
                    ticket,
                    "email_retry",
                    f"{message.kind} was not delivered: retrying",
                    outbox_id=message.id,
                )
                report.reconciled += 1
            else:
                message.state = OutboxState.UNCERTAIN
                message.claim_token = None
                ticket.action_required = True
                record_event(
                    session,
                    ticket,
                    "email_uncertain",
                    f"{message.kind} to {message.to_address}: the send was cut short and {transport.name} cannot "
                    "confirm delivery. Check the recipient's mailbox, then resend or mark as sent.",
                    outbox_id=message.id,
                )
                report.uncertain += 1


def _still_confirmable(message: OutboxMessage, settings: Settings) -> bool:
    """Within the window in which a provider that can confirm delivery is asked again rather than a person."""
    return utcnow() - message.next_attempt_at < timedelta(seconds=settings.OUTBOX_CONFIRM_WINDOW_SECONDS)


def resolve_uncertain(session: Session, outbox_id: int, *, resend: bool, actor: str) -> OutboxMessage:
    """A person settles an uncertain message: send it again, or record that it did arrive."""
    message = session.get(OutboxMessage, outbox_id)
    if message is None or message.state != OutboxState.UNCERTAIN:
        raise ValueError(f"outbox message {outbox_id} is not waiting for a delivery decision")
    ticket = session.get(Ticket, message.ticket_id)
    assert ticket is not None
    if resend:
        message.state = OutboxState.PENDING
        message.next_attempt_at = utcnow()
        record_event(
            session, ticket, "email_retry", f"{message.kind}: resend requested", actor=actor, outbox_id=message.id
        )
    else:
        message.state = OutboxState.SENDING
        _mark_sent(session, message.id, None, message.message_id)
    return message


class DatabaseTransport:
    """The embedded default: messages are kept in the database as a local mailbox; nothing leaves the machine.

    Delivery is the commit that marks the row sent, so it is exactly-once by construction: a crash
    before that commit means the message was not delivered and is sent again.
    """

    name = "database"
    confirms_delivery = True

    def send(self, email: OutgoingEmail) -> str:
        return f"local:{email.message_id}"

    def was_delivered(self, message_id: str) -> bool | None:
        return False


def make_transport(settings: Settings) -> MailTransport:
    """The transport OUTBOX_TRANSPORT names: the local database mailbox, or a connector that sends mail."""
    if settings.OUTBOX_TRANSPORT == "database":
        return DatabaseTransport()
    build = registry.connector(settings.OUTBOX_TRANSPORT).transport
    if build is None:
        raise ConfigurationError(f"OUTBOX_TRANSPORT: {settings.OUTBOX_TRANSPORT} does not send mail")
    return build(settings)
