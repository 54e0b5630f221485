import pydantic
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import AttachmentIn
from engine.core.enums import OutcomeState, TicketStatus
from engine.core.lifecycle import transition
from engine.core.models import Attachment, Blob, EmailInteraction, OutboxMessage, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.intake.ingest import IngestResult, ingest
from engine.pipeline import process_pending
from tests.factories import Proposes, email_in, outcome_of, resolved_automatically, ticket_in


def count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_polling_the_same_items_twice_creates_nothing_twice(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    items = [ticket_in(), ticket_in(), email_in()]
    with session_factory.begin() as session:
        first = [ingest(session, item, settings).outcome for item in items]
    with session_factory.begin() as session:
        second = [ingest(session, item, settings).outcome for item in items]
    assert first == ["created", "created", "created"]
    assert second == ["duplicate", "duplicate", "duplicate"]
    with session_factory() as session:
        assert count(session, Ticket) == 3
        assert count(session, EmailInteraction) == 1
        assert count(session, TimelineEvent) == 3


def test_changed_item_at_the_source_updates_the_ticket(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    original = ticket_in(priority="low")
    with session_factory.begin() as session:
        ticket_id = ingest(session, original, settings).ticket_id
        changed = original.model_copy(update={"priority": "critical", "body": "Now the whole team is blocked."})
        assert ingest(session, changed, settings).outcome == "updated"
        ticket = session.get(Ticket, ticket_id)
        assert (ticket.priority, ticket.description) == ("critical", "Now the whole team is blocked.")
        assert ticket.timeline[-1].data["fields"] == ["description", "priority"]


def test_reply_naming_the_ticket_threads_and_reopens_it(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ingest(session, ticket_in(), settings).ticket_id)
        ticket.pending_since = None
        transition(session, ticket, TicketStatus.AWAITING_CUSTOMER, reason="asked for the error message")
        reply = email_in(
            requester_email=ticket.email,
            subject=f"Re: your request [{ticket.reference}]",
            body="The error is AUTH-401.",
        )
        result = ingest(session, reply, settings)
        assert (result.ticket_id, result.outcome) == (ticket.id, "reply")
        assert ticket.status == TicketStatus.NEW
        assert ticket.pending_since is not None
        assert count(session, Ticket) == 1
        assert session.scalar(select(EmailInteraction.body).where(EmailInteraction.email_type == "reply")) == (
            "The error is AUTH-401."
        )


def test_reply_threads_by_in_reply_to_and_by_conversation(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        rita = "rita@customer.example"
        first = ingest(
            session, email_in(requester_email=rita, thread_id="conv-1", message_id="<a@x.example>"), settings
        )
        by_header = ingest(
            session, email_in(requester_email=rita, subject="Re: no ref", in_reply_to="<a@x.example>"), settings
        )
        by_thread = ingest(
            session, email_in(requester_email=rita, subject="still broken", thread_id="conv-1"), settings
        )
        unrelated = ingest(session, email_in(requester_email=rita, subject="new problem", thread_id="conv-2"), settings)
    assert by_header.ticket_id == by_thread.ticket_id == first.ticket_id
    assert (by_header.outcome, by_thread.outcome, unrelated.outcome) == ("reply", "reply", "created")


def test_reply_to_an_escalated_ticket_flags_people_instead_of_reopening(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ingest(session, ticket_in(), settings).ticket_id)
        ticket.pending_since = None
        transition(session, ticket, TicketStatus.ESCALATED, reason="outage")
        ingest(
            session,
            email_in(requester_email=ticket.email, subject=f"Re: {ticket.reference}", body="any news?"),
            settings,
        )
        assert ticket.status == TicketStatus.ESCALATED
        assert ticket.action_required
        assert ticket.pending_since is None


def test_automatic_reply_is_recorded_but_does_not_reopen(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ingest(session, ticket_in(), settings).ticket_id)
        ticket.pending_since = None
        transition(session, ticket, TicketStatus.AWAITING_CUSTOMER)
        ooo = email_in(
            requester_email=ticket.email,
            subject=f"Out of office: {ticket.reference}",
            headers={"Auto-Submitted": "auto-replied"},
        )
        assert ingest(session, ooo, settings).outcome == "automatic"
        assert ticket.status == TicketStatus.AWAITING_CUSTOMER
        assert ticket.pending_since is None
        assert ticket.timeline[-1].type == "automatic_message"


def test_attachments_are_stored_once_by_content_and_oversized_ones_are_recorded(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings.MAX_ATTACHMENT_BYTES = 1000
    log = AttachmentIn(filename="error.log", content_type="text/plain", data=b"Traceback ...\n" * 10)
    huge = AttachmentIn(filename="dump.bin", content_type="application/octet-stream", data=b"\0" * 1001)
    with session_factory.begin() as session:
        ingest(session, ticket_in(attachments=[log, huge]), settings)
        ingest(session, ticket_in(attachments=[log]), settings)
    with session_factory() as session:
        assert count(session, Blob) == 1
        rows = session.scalars(select(Attachment).order_by(Attachment.id)).all()
        assert [(row.filename, row.status) for row in rows] == [
            ("error.log", "stored"),
            ("dump.bin", "too_large"),
            ("error.log", "stored"),
        ]
        assert "MAX_ATTACHMENT_BYTES" in rows[1].error


def test_malformed_item_is_refused_with_a_clear_message() -> None:
    with pytest.raises(pydantic.ValidationError, match="not an e-mail address"):
        ticket_in(requester_email="nobody")
    with pytest.raises(pydantic.ValidationError, match="external_id"):
        ticket_in(external_id="")


def test_control_characters_are_stripped(settings: Settings, session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ingest(session, ticket_in(subject="hi\x00\x1b[31m there"), settings).ticket_id)
        assert ticket.subject == "hi[31m there"


def test_history_is_stored_closed_with_nothing_to_do(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    resolved = ticket_in(history=True, additional_info={"source_status": "resolved", "resolution": "Reset the token"})
    closed = ticket_in(history=True)
    with session_factory.begin() as session:
        outcomes = [ingest(session, item, settings).outcome for item in (resolved, closed)]
        assert ingest(session, closed, settings).outcome == "duplicate"
    assert outcomes == ["history", "history"]
    with session_factory() as session:
        tickets = session.scalars(select(Ticket).order_by(Ticket.id)).all()
        assert [(t.status, t.pending_since, t.resolution) for t in tickets] == [
            (TicketStatus.RESOLVED, None, "Reset the token"),
            (TicketStatus.CLOSED, None, None),
        ]
        assert [e.type for e in session.scalars(select(TimelineEvent))] == ["received_history"] * 2


def test_history_of_open_work_closes_it_and_never_reopens(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    open_item, analysing_item = ticket_in(), ticket_in()
    with session_factory.begin() as session:
        open_id = ingest(session, open_item, settings).ticket_id
        analysing = session.get(Ticket, ingest(session, analysing_item, settings).ticket_id)
        transition(session, analysing, TicketStatus.ANALYZING)
        closed_at_source = {"history": True, "additional_info": {"resolution": "Fixed by the network team"}}
        assert ingest(session, open_item.model_copy(update=closed_at_source), settings).outcome == "updated"
        assert ingest(session, analysing_item.model_copy(update=closed_at_source), settings).outcome == "duplicate"
        ticket = session.get(Ticket, open_id)
        assert (ticket.status, ticket.pending_since, ticket.resolution) == (
            TicketStatus.CLOSED,
            None,
            "Fixed by the network team",
        )
        assert ticket.timeline[-1].actor == "source:test"
        assert analysing.status == TicketStatus.ANALYZING, "ANALYZING → CLOSED is not a legal move"
        assert ingest(session, open_item.model_copy(update={"body": "Reopened?"}), settings).outcome == "updated"
        assert ticket.status == TicketStatus.CLOSED


def test_source_comment_is_a_reply_once_and_unattached_ones_are_counted(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    parent = ticket_in()
    comment = ticket_in(
        kind="comment", external_id="journal-1", parent_external_id=parent.external_id, body="Still down"
    )
    orphan = ticket_in(kind="comment", external_id="journal-2", parent_external_id="INC-unknown", body="Hello?")
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ingest(session, parent, settings).ticket_id)
        ticket.pending_since = None
        transition(session, ticket, TicketStatus.AWAITING_CUSTOMER, reason="asked for the error")
        outcomes = [ingest(session, item, settings) for item in (comment, comment, orphan)]
        assert [(r.ticket_id, r.outcome) for r in outcomes] == [
            (ticket.id, "reply"),
            (ticket.id, "duplicate"),
            (None, "unattached"),
        ]
        assert ticket.status == TicketStatus.NEW and ticket.pending_since is not None
        [message] = session.scalars(select(EmailInteraction)).all()
        assert (message.ticket_id, message.email_type, message.body) == (ticket.id, "reply", "Still down")


def test_source_comment_on_an_escalated_ticket_flags_a_person(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    parent = ticket_in()
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ingest(session, parent, settings).ticket_id)
        transition(session, ticket, TicketStatus.ESCALATED, reason="needs a network engineer")
        comment = ticket_in(kind="comment", external_id="journal-3", parent_external_id=parent.external_id)
        assert ingest(session, comment, settings).outcome == "reply"
        assert ticket.action_required and ticket.status == TicketStatus.ESCALATED


# Replies bound to their sender (issue 20): naming a ticket is not enough to act on it.

STRANGER = "mallory@attacker.example"


def _names_the_victim(how: str, victim: Ticket, our_message_id: str) -> dict[str, object]:
    """The fields of a stranger's message that point at the victim's ticket in one of the ways a reply can."""
    return {
        "subject": {"subject": f"Re: your request [{victim.reference}]"},
        "in-reply-to": {"subject": "Re: your ticket", "in_reply_to": our_message_id},
        "references": {"subject": "Re: your ticket", "references": ["<other@x.example>", our_message_id]},
        "conversation": {"subject": "Re: your ticket", "thread_id": "conv-victim"},
    }[how]


@pytest.mark.parametrize("how", ["subject", "in-reply-to", "references", "conversation"])
def test_a_strangers_this_did_not_help_on_a_resolved_ticket_is_its_own_linked_ticket(
    session_factory: sessionmaker[Session], settings: Settings, how: str
) -> None:
    """The victim's resolution, status and mailbox are untouched; the stranger's ticket is linked and held."""
    victim_id = resolved_automatically(session_factory, settings)
    with session_factory.begin() as session:
        victim = session.get(Ticket, victim_id)
        victim.thread_key = "conv-victim"
        ours = session.scalars(select(OutboxMessage.message_id).where(OutboxMessage.ticket_id == victim_id)).all()
        sent_before = len(ours)
        attack = email_in(
            requester_email=STRANGER, body="This did not help.", **_names_the_victim(how, victim, ours[-1])
        )
        result = ingest(session, attack, settings)
    assert result.outcome == "created" and result.ticket_id != victim_id
    process_pending(session_factory, settings, Proposes(), worker="w")
    with session_factory() as session:
        victim = session.get(Ticket, victim_id)
        stranger = session.get(Ticket, result.ticket_id)
        assert (victim.status, victim.pending_since, victim.action_required) == (TicketStatus.RESOLVED, None, False)
        assert [
            row.email_type
            for row in session.scalars(select(EmailInteraction).where(EmailInteraction.ticket_id == victim_id))
        ] == []
        to_victim = session.scalars(select(OutboxMessage.kind).where(OutboxMessage.to_address == victim.email)).all()
        assert len(to_victim) == sent_before
        assert stranger.related_ticket_id == victim_id and stranger.email == STRANGER
        assert stranger.status == TicketStatus.AWAITING_APPROVAL, "held for a person: no automatic answer"
        to_stranger = session.scalars(select(OutboxMessage.kind).where(OutboxMessage.to_address == STRANGER)).all()
        assert to_stranger == ["acknowledgement"]
        [warning] = stranger.additional_info["input_warnings"]
        assert f"claims to continue {victim.reference}" in warning
        assert [e.data["related_ticket_id"] for e in victim.timeline if e.type == "related_ticket"] == [stranger.id]
        assert [e.data["related_ticket_id"] for e in stranger.timeline if e.type == "related_ticket"] == [victim_id]
    outcome = outcome_of(session_factory, victim_id)
    assert (outcome.state, outcome.answer, outcome.answered_at) == (OutcomeState.PENDING, None, None)


def test_the_requesters_reply_threads_and_reopens_however_the_address_is_spelled(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    victim_id = resolved_automatically(session_factory, settings)
    with session_factory.begin() as session:
        ticket = session.get(Ticket, victim_id)
        ours = session.scalars(select(OutboxMessage.message_id).where(OutboxMessage.ticket_id == victim_id)).all()
        reply = email_in(
            requester_email=f"{ticket.requester_name} <{ticket.email.upper()}>",
            subject="Re: your ticket",
            in_reply_to=ours[-1],
            body="This did not help.",
        )
        assert ingest(session, reply, settings) == IngestResult(victim_id, "reply")
        assert ticket.status == TicketStatus.NEW and ticket.pending_since is not None
    assert outcome_of(session_factory, victim_id).state == OutcomeState.REOPENED


@pytest.mark.parametrize(
    ("results", "threads"),
    [
        ("mx.desk.example; spf=pass smtp.mailfrom=customer.example; dmarc=pass header.from=customer.example", True),
        ("mx.desk.example; spf=fail smtp.mailfrom=evil.example; dkim=pass header.d=evil.example; dmarc=fail", False),
        ("evil.example; dmarc=pass header.from=customer.example", False),
        (None, False),
    ],
)
def test_a_reply_from_the_requesters_address_threads_only_when_the_mail_server_verified_it(
    session_factory: sessionmaker[Session], settings: Settings, results: str | None, threads: bool
) -> None:
    """With MAIL_AUTHSERV_ID set, a forged From (DMARC failed, no verdict from our server, another server's verdict)
    does not continue the requester's ticket: it is its own ticket, linked and held for a person."""
    settings = settings.model_copy(update={"MAIL_AUTHSERV_ID": "mx.desk.example"})
    victim_id = resolved_automatically(session_factory, settings)
    with session_factory.begin() as session:
        victim = session.get(Ticket, victim_id)
        reply = email_in(
            requester_email=victim.email,
            subject=f"Re: your request [{victim.reference}]",
            body="This did not help.",
            headers={"Authentication-Results": results} if results else {},
        )
        result = ingest(session, reply, settings)
    with session_factory() as session:
        victim = session.get(Ticket, victim_id)
        if threads:
            assert result == IngestResult(victim_id, "reply") and victim.status == TicketStatus.NEW
            return
        assert result.outcome == "created" and victim.status == TicketStatus.RESOLVED
        forged = session.get(Ticket, result.ticket_id)
        assert forged.related_ticket_id == victim_id
        warnings = forged.additional_info["input_warnings"]
        assert any("did not verify" in warning for warning in warnings)
        assert any(f"the sender {victim.email} is not verified" in warning for warning in warnings)
    assert outcome_of(session_factory, victim_id).state == OutcomeState.PENDING


@pytest.mark.parametrize("how", ["written to", "named by the source"])
def test_a_participant_threads_but_only_the_requester_settles_a_resolution(
    session_factory: sessionmaker[Session], settings: Settings, how: str
) -> None:
    """A Cc the desk already wrote to, or a watcher the source reports, continues the ticket; their "thanks" on a
    resolution is not the requester's verdict and goes to a person."""
    colleague = "cc.person@customer.example"
    named = {"additional_info": {"participants": [colleague.upper()]}} if how == "named by the source" else {}
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ingest(session, ticket_in(**named), settings).ticket_id)
        if how == "written to":
            session.add(
                OutboxMessage(
                    ticket_id=ticket.id,
                    dedupe_key="cc",
                    kind="note",
                    to_address=colleague,
                    from_address=settings.from_address,
                    subject=f"Your colleague's ticket {ticket.reference}",
                    body_text="We are on it.",
                    message_id="<cc@desk.example>",
                )
            )
        ticket.pending_since = None
        transition(session, ticket, TicketStatus.AWAITING_CUSTOMER, reason="asked for the error")
        first = email_in(requester_email=colleague, subject=f"Re: {ticket.reference}", body="It says AUTH-401.")
        assert ingest(session, first, settings) == IngestResult(ticket.id, "reply")
        assert ticket.status == TicketStatus.NEW
        ticket.pending_since = None
        transition(session, ticket, TicketStatus.ANALYZING)
        transition(session, ticket, TicketStatus.RESOLVED)
        thanks = email_in(requester_email=colleague, subject=f"Re: {ticket.reference}", body="Thanks, works now!")
        assert ingest(session, thanks, settings) == IngestResult(ticket.id, "reply")
        assert (ticket.status, ticket.action_required) == (TicketStatus.RESOLVED, True)
        assert "not the requester" in ticket.timeline[-1].title


@pytest.mark.parametrize(
    ("source", "parent", "comment_id"),
    [("jira", "HELP-7", "HELP-7#comment-1"), ("servicenow", "incident:abc123", "sys_journal_field:def456")],
)
def test_a_comment_by_the_reporter_or_caller_at_the_source_still_threads(
    session_factory: sessionmaker[Session], settings: Settings, source: str, parent: str, comment_id: str
) -> None:
    """Shaped as connectors/jira.py and connectors/servicenow.py deliver them: the source bound the author."""
    issue = ticket_in(source=source, external_id=parent, requester_email="rita@customer.example")
    with session_factory.begin() as session:
        ticket = session.get(Ticket, ingest(session, issue, settings).ticket_id)
        ticket.pending_since = None
        transition(session, ticket, TicketStatus.AWAITING_CUSTOMER, reason="asked for the error")
        comment = ticket_in(
            source=source,
            kind="comment",
            external_id=comment_id,
            parent_external_id=parent,
            requester_email="Rita@Customer.example",
            body="The error is AUTH-401.",
        )
        assert ingest(session, comment, settings) == IngestResult(ticket.id, "reply")
        assert ticket.status == TicketStatus.NEW and ticket.pending_since is not None
