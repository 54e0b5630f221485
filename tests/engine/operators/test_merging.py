"""Merging a requester's duplicate, linking tickets and tags: role-checked, timelined, audited, nothing lost."""

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import ActionState, Role, TicketStatus
from engine.core.models import Action, AuditEntry, EmailInteraction, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.operators.merging import (
    clean_tag,
    known_tags,
    link_tickets,
    linked_tickets,
    merge_ticket,
    merged_into,
    set_tags,
    ticket_tags,
)
from engine.operators.permissions import Actor, PermissionDeniedError
from tests.factories import drafted, new_ticket, reply

ANN = Actor("ann", Role.AGENT)
VIC = Actor("vic", Role.VIEWER)


def test_merges_a_duplicate_from_the_same_requester(session_factory: sessionmaker[Session], settings: Settings) -> None:
    target = new_ticket(session_factory, settings, requester_email="grace@navy.example")
    duplicate, draft = drafted(session_factory, settings, requester_email="Grace@Navy.example")
    reply(session_factory, settings, duplicate, "Also the printer on floor 2.")
    with session_factory.begin() as session:
        merge_ticket(session, ANN, duplicate, target, reason="same outage")
    with session_factory() as session:
        merged = session.get(Ticket, duplicate)
        assert merged.merged_into_id == target and merged.status == TicketStatus.CLOSED
        assert session.get(Action, draft).state == ActionState.VOIDED
        [conversation] = merged_into(session, target)
        types = set(session.scalars(select(TimelineEvent.type).where(TimelineEvent.ticket_id.in_((target, duplicate)))))
        audit = session.scalar(select(AuditEntry).where(AuditEntry.action == "merge_ticket"))
    assert conversation.ticket.id == duplicate
    assert [m.body for m in conversation.messages][-1] == "Also the printer on floor 2."
    assert {"merged_into", "merged_from"} <= types
    assert audit.details == {"into": target, "reason": "same outage"}


def test_refuses_what_a_merge_must_not_do(session_factory: sessionmaker[Session], settings: Settings) -> None:
    one = new_ticket(session_factory, settings, requester_email="a@x.example")
    two = new_ticket(session_factory, settings, requester_email="a@x.example")
    three = new_ticket(session_factory, settings, requester_email="a@x.example")
    stranger = new_ticket(session_factory, settings, requester_email="b@y.example")
    with session_factory.begin() as session:
        with pytest.raises(PermissionDeniedError):
            merge_ticket(session, VIC, one, two)
        with pytest.raises(ValueError, match="into itself"):
            merge_ticket(session, ANN, one, one)
        with pytest.raises(ValueError, match="different requesters"):
            merge_ticket(session, ANN, stranger, one)
        merge_ticket(session, ANN, one, two)
    with session_factory.begin() as session:
        with pytest.raises(ValueError, match="already merged"):
            merge_ticket(session, ANN, one, three)
        with pytest.raises(ValueError, match="merge into that"):
            merge_ticket(session, ANN, three, one)


def test_links_both_ways_once(session_factory: sessionmaker[Session], settings: Settings) -> None:
    one, two, three = (new_ticket(session_factory, settings) for _ in range(3))
    with session_factory.begin() as session:
        link_tickets(session, ANN, two, one)
        link_tickets(session, ANN, one, two)
        link_tickets(session, ANN, two, three)
        with pytest.raises(ValueError, match="itself"):
            link_tickets(session, ANN, one, one)
    with session_factory() as session:
        assert [t.id for t in linked_tickets(session, two)] == [one, three]
        assert [t.id for t in linked_tickets(session, one)] == [two]
        assert len(session.scalars(select(AuditEntry).where(AuditEntry.action == "link_tickets")).all()) == 2


def test_tags_are_cleaned_replaced_and_audited(session_factory: sessionmaker[Session], settings: Settings) -> None:
    ticket_id = new_ticket(session_factory, settings)
    with session_factory.begin() as session:
        assert set_tags(session, ANN, ticket_id, ["VPN", "  Outage   Q3 ", "vpn"]) == ["outage q3", "vpn"]
    with session_factory.begin() as session:
        set_tags(session, ANN, ticket_id, ["vpn", "billing"])
        with pytest.raises(ValueError, match="no tag"):
            set_tags(session, ANN, ticket_id, ["<script>"])
    with session_factory() as session:
        assert ticket_tags(session, ticket_id) == ["billing", "vpn"] and known_tags(session) == ["billing", "vpn"]
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "set_tags").order_by(AuditEntry.id))
        assert [(e.details["added"], e.details["removed"]) for e in entries] == [
            (["outage q3", "vpn"], []),
            (["billing"], ["outage q3"]),
        ]
    with pytest.raises(ValueError):
        clean_tag("x" * 51)


def test_a_reply_to_a_merged_duplicate_goes_to_the_surviving_ticket(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """The customer answers the mail of the ticket a person merged away: the reply lands on the ticket it went into
    (through a merge of a merge), both timelines say so, and the surviving ticket is worked again."""
    first = new_ticket(session_factory, settings, requester_email="grace@navy.example")
    middle = new_ticket(session_factory, settings, requester_email="grace@navy.example")
    surviving = new_ticket(session_factory, settings, requester_email="grace@navy.example")
    with session_factory.begin() as session:
        merge_ticket(session, ANN, first, middle)
    with session_factory.begin() as session:
        merge_ticket(session, ANN, middle, surviving)
    reply(session_factory, settings, first, "It still fails after the update.")
    with session_factory() as session:
        bodies = {
            ticket_id: [
                m.body for m in session.scalars(select(EmailInteraction).where(EmailInteraction.ticket_id == ticket_id))
            ]
            for ticket_id in (first, surviving)
        }
        told = {
            ticket_id: session.scalars(
                select(TimelineEvent.title).where(
                    TimelineEvent.ticket_id == ticket_id, TimelineEvent.type == "reply_redirected"
                )
            ).all()
            for ticket_id in (first, surviving)
        }
        received = session.scalars(select(TimelineEvent.ticket_id).where(TimelineEvent.type == "reply_received")).all()
        assert session.get(Ticket, first).status == TicketStatus.CLOSED
    assert "It still fails after the update." in bodies[surviving]
    assert "It still fails after the update." not in bodies[first]
    assert told[first] == [
        f"Reply from grace@navy.example moved to TCKT-{surviving}, the ticket this one was merged into"
    ]
    assert told[surviving] == [f"Reply from grace@navy.example to TCKT-{first} (merged into this one) moved here"]
    assert received == [surviving]
