"""The mail-loop guard, down to two auto-responders answering each other."""

from dataclasses import dataclass

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.analysis import AnalysisResult, TicketSnapshot
from engine.core.desk_policy import DeskPolicy
from engine.core.enums import OutboxState
from engine.core.models import OutboxMessage, Ticket
from engine.core.settings import Settings
from engine.core.templates import GAP_QUESTIONS
from engine.delivery.outbox import DatabaseTransport, deliver_outbox
from engine.intake.ingest import ingest
from engine.pipeline import process_pending
from engine.trust.mailguard import automatic_reason, undeliverable_reason, unverified_sender
from tests.factories import email_in

US = "support@no-touch.localhost"


@pytest.mark.parametrize(
    ("headers", "sender", "subject", "reason"),
    [
        ({"Auto-Submitted": "auto-replied"}, "a@x.example", "Re: hi", "Auto-Submitted: auto-replied"),
        ({"Auto-Submitted": "auto-generated"}, "a@x.example", "report", "Auto-Submitted: auto-generated"),
        ({"X-Loop": US}, "a@x.example", "hi", "X-Loop names this desk"),
        ({"Precedence": "bulk"}, "news@x.example", "Newsletter", "Precedence: bulk"),
        ({"Precedence": "list"}, "list@x.example", "[list] hi", "Precedence: list"),
        ({"X-Autoreply": "yes"}, "a@x.example", "away", "x-autoreply header"),
        ({"X-Autorespond": "1"}, "a@x.example", "away", "x-autorespond header"),
        ({"Return-Path": "<>"}, "a@x.example", "hi", "empty Return-Path (bounce)"),
        ({}, "MAILER-DAEMON@x.example", "failure", "automatic sender MAILER-DAEMON@x.example"),
        ({}, "no-reply@x.example", "receipt", "automatic sender no-reply@x.example"),
        ({}, "Bob <noreply@x.example>", "receipt", "automatic sender noreply@x.example"),
        ({}, "a@x.example", "Undeliverable: TCKT-4", "bounce subject"),
        ({}, US, "hello", "sent by this desk"),
    ],
)
def test_automatic_mail_is_recognised(headers: dict[str, str], sender: str, subject: str, reason: str) -> None:
    assert automatic_reason(headers, sender, subject, US) == reason


@pytest.mark.parametrize(
    ("headers", "sender", "subject"),
    [
        ({"Auto-Submitted": "no"}, "ann@x.example", "VPN broken"),
        ({"Precedence": "first-class"}, "ann@x.example", "VPN broken"),
        ({}, "noreen@x.example", "Re: my reply"),
        ({"X-Auto-Response-Suppress": "All"}, "ann@x.example", "Outlook adds this to people's mail"),
    ],
)
def test_peoples_mail_is_not_automatic(headers: dict[str, str], sender: str, subject: str) -> None:
    assert automatic_reason(headers, sender, subject, US) is None


def test_never_send_to_automatic_mailboxes_or_ourselves() -> None:
    assert undeliverable_reason("no-reply@shop.example", US)
    assert undeliverable_reason(US.upper(), US)
    assert undeliverable_reason("not-an-address", US)
    assert undeliverable_reason("ann@x.example", US) is None


@dataclass
class AlwaysAsks:
    """A desk whose analyser always asks for more information: the worst case for a mail loop."""

    name: str = "always-asks"

    def analyse(self, ticket: TicketSnapshot, policy: DeskPolicy | None = None) -> AnalysisResult:
        return AnalysisResult(
            analyser=self.name,
            decision="ask",
            reason="need details",
            confidence=1.0,
            draft_subject=f"Re: your request [{ticket.reference}]",
            draft_body=GAP_QUESTIONS["error"],
            evidence=[{"source": "test"}],
        )


def _converse(
    factory: sessionmaker[Session], settings: Settings, responder: str, headers: dict[str, str], rounds: int
) -> list[OutboxMessage]:
    """Run the desk and an auto-responder at `responder` against each other for `rounds` exchanges."""
    answered: set[int] = set()
    with factory.begin() as session:
        ingest(session, email_in(requester_email=responder, subject="Printer on fire"), settings)
    for _ in range(rounds):
        process_pending(factory, settings, AlwaysAsks(), worker="w")
        deliver_outbox(factory, settings, DatabaseTransport())
        with factory.begin() as session:
            sent = session.scalars(
                select(OutboxMessage).where(OutboxMessage.state == OutboxState.SENT, OutboxMessage.id.not_in(answered))
            ).all()
            for message in sent:
                answered.add(message.id)
                auto_reply = email_in(
                    requester_email=responder,
                    subject=f"Re: {message.subject}",
                    in_reply_to=message.message_id,
                    body="Thank you for your message. This mailbox replies automatically.",
                    headers=headers,
                )
                ingest(session, auto_reply, settings)
    with factory() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def test_two_auto_responders_well_behaved_one_stops_at_once(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings.AUTOPILOT_ENABLED = True
    messages = _converse(session_factory, settings, "robot@x.example", {"Auto-Submitted": "auto-replied"}, rounds=10)
    assert [(m.kind, m.state) for m in messages] == [("acknowledgement", "sent"), ("request_info", "sent")]
    assert all(m.headers["Auto-Submitted"] == "auto-replied" and m.headers["X-Loop"] == US for m in messages)


def test_two_auto_responders_naive_one_is_capped_per_hour(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings.AUTOPILOT_ENABLED = True
    settings.MAX_AUTOMATED_EMAILS_PER_HOUR = 3
    messages = _converse(session_factory, settings, "naive-bot@x.example", {}, rounds=10)
    sent = [m for m in messages if m.state == OutboxState.SENT]
    suppressed = [m for m in messages if m.state == OutboxState.SUPPRESSED]
    assert [m.kind for m in sent].count("acknowledgement") == 1, "acknowledgements are capped apart from answers"
    assert len(sent) == 4 and len(suppressed) == 1
    assert "3 automated answers to naive-bot@x.example in the last hour" in suppressed[0].last_error
    with session_factory() as session:
        ticket = session.scalar(select(Ticket))
        assert [e.type for e in ticket.timeline].count("email_suppressed") == 1


def test_a_customer_with_several_tickets_keeps_acknowledgements_and_sees_a_held_one(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """Answers never use up the acknowledgements' share of the hourly cap; one the cap holds is on its ticket's
    timeline and the ticket asks for a person. Every message carries SUPPORT_REPLY_TO as Reply-To."""
    from engine.pipeline import claim_pending_tickets
    from tests.factories import new_ticket

    settings.MAX_AUTOMATED_EMAILS_PER_HOUR = 2
    settings.SUPPORT_REPLY_TO = "help@support.example"
    kim = "kim@customer.example"
    first = new_ticket(session_factory, settings, requester_email=kim)
    with session_factory.begin() as session:
        for n in range(2):  # two automated answers to Kim in this hour already
            session.add(
                OutboxMessage(
                    ticket_id=first,
                    dedupe_key=f"answer-{n}",
                    kind="resolution",
                    automated=True,
                    to_address=kim,
                    from_address=US,
                    subject="Re: portal",
                    body_text="Fixed.",
                    headers={},
                    message_id=f"<answer-{n}@desk.example>",
                    state=OutboxState.SENT,
                )
            )
    others = [new_ticket(session_factory, settings, requester_email=kim) for _ in range(2)]
    claim_pending_tickets(session_factory, settings, worker="test")
    with session_factory() as session:
        acks = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == "acknowledgement").order_by(OutboxMessage.id)
        ).all()
        assert [(a.ticket_id, a.state) for a in acks] == [
            (first, OutboxState.PENDING),
            (others[0], OutboxState.PENDING),
            (others[1], OutboxState.SUPPRESSED),
        ]
        assert all(a.headers["Reply-To"] == "help@support.example" for a in acks)
        held = session.get(Ticket, others[1])
        assert held is not None and held.action_required
        [event] = [e for e in held.timeline if e.type == "email_suppressed"]
        assert "2 acknowledgements to kim@customer.example in the last hour" in event.title


OURS = "mx.desk.example"


@pytest.mark.parametrize(
    ("results", "verified"),
    [
        (f"{OURS}; dmarc=pass header.from=customer.example", True),
        (f"{OURS}; spf=pass smtp.mailfrom=bounces@mail.customer.example; dkim=none", True),
        (f"{OURS}; spf=none; dkim=pass header.d=customer.example", True),
        (f"{OURS}; spf=pass smtp.mailfrom=customer.example; dmarc=fail header.from=customer.example", False),
        (f"{OURS}; spf=pass smtp.mailfrom=evil.example; dkim=pass header.d=evil.example", False),
        (f"{OURS}; spf=softfail smtp.mailfrom=customer.example; dkim=fail header.d=customer.example", False),
        ("evil.example; dmarc=pass header.from=customer.example", False),
        ("not ;; a header ===", False),
        (None, False),
    ],
)
def test_a_from_address_is_believed_only_as_far_as_our_mail_server_verified_it(
    results: str | None, verified: bool
) -> None:
    headers = {"Authentication-Results": results} if results else {}
    reason = unverified_sender(headers, "ana@customer.example", OURS)
    assert (reason is None) is verified
    if reason:
        assert reason.startswith("the sender ana@customer.example is not verified")


def test_without_a_named_mail_server_the_from_address_is_believed() -> None:
    assert unverified_sender({}, "ana@customer.example", "") is None
