"""The ticket workspace: what it shows, and every operator action, each confirmed, timelined and audited."""

import json

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from connectors.base import DeliveryEvent
from engine.core.enums import ActionState, Role, TicketStatus
from engine.core.models import Action, AuditEntry, OutboxMessage, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.delivery.delivery_events import record_delivery_event
from engine.intake.ingest import ingest
from engine.operators.actions import edit_draft
from engine.operators.permissions import Actor
from tests.factories import drafted, email_in, new_ticket, queue
from tests.pages.conftest import open_page, texts
from tests.pages.seed import escalated, scored

TICKET = "pages/2_Ticket.py"


def outgoing_table(at: AppTest) -> dict[str, dict]:
    """The Outgoing mail table's column settings as the page sent them (header and width per column)."""
    [table] = [table for table in at.dataframe if "cc" in table.value.columns]
    return json.loads(table.proto.columns)


def click(at: AppTest, label: str) -> AppTest:
    [button] = [b for b in at.button if b.label == label]
    return button.click().run()


def events(factory: sessionmaker[Session], ticket_id: int) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(TimelineEvent.type).where(TimelineEvent.ticket_id == ticket_id)))


def audited(factory: sessionmaker[Session]) -> list[str]:
    with factory() as session:
        return list(session.scalars(select(AuditEntry.action).where(AuditEntry.action != "sign_in")))


def test_shows_conversation_timeline_evidence_score_and_draft(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    ticket_id, _ = drafted(session_factory, app, subject="VPN drops every hour")
    scored(session_factory, ticket_id)
    at = open_page(TICKET, id=str(ticket_id))
    assert not at.exception
    assert at.title[0].value == f"TCKT-{ticket_id} · VPN drops every hour"
    assert [tab.label for tab in at.tabs] == [
        "Conversation",
        "Timeline",
        "Evidence",
        "Escalation score",
        "Attachments",
        "Outgoing mail",
    ]
    assert all(f"**{event}**" in texts(at) for event in ("Received", "Analysed", "Draft proposed"))
    evidence = at.dataframe[0].value
    assert evidence.iloc[0]["title"] == "vpn.md"
    assert "Score **11.0** against threshold **70** → **below the threshold: not escalated**" in texts(at)
    assert (at.metric[3].value, at.metric[3].proto.delta) == ("11.0", "escalates at 70")
    assert "small, single\\-user problem" in texts(at)
    assert list(at.dataframe[1].value["criterion"]) == ["System impact", "Estimated effort"]
    assert at.get("plotly_chart")
    assert at.text_area[0].value == "1. Restart the VPN client."
    assert at.metric[2].value == "50%"


def test_a_fresh_ticket_says_there_is_no_analysis_yet(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id = new_ticket(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    assert "No analysis yet" in texts(at)
    assert "No escalation score yet" in texts(at)
    assert "No draft awaiting approval." in texts(at)


def test_approve_and_send_asks_first_then_queues_the_draft(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    ticket_id, action_id = drafted(session_factory, app)
    at = click(open_page(TICKET, id=str(ticket_id)), "Approve and send")
    assert "Send this draft to user" in texts(at)
    with session_factory() as session:
        assert session.get(Action, action_id).state == ActionState.AWAITING_APPROVAL
    at = click(at, "Confirm and send")
    assert "Sent: done. It is in the timeline and the audit log." in texts(at)
    with session_factory() as session:
        [sent] = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "resolution")).all()
        assert sent.body_text == "1. Restart the VPN client." and not sent.automated
        assert session.get(Ticket, ticket_id).status == TicketStatus.RESOLVED
    assert "approved" in events(session_factory, ticket_id)
    assert "approve_draft" in audited(session_factory)


def test_edit_then_send_sends_the_edited_text(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id, action_id = drafted(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    at.text_area(key=f"draft_body_{action_id}_1").input("1. Reinstall the VPN client.").run()
    at = click(click(at, "Send edited"), "Confirm and send")
    with session_factory() as session:
        assert session.get(Action, action_id).version == 2
        body = session.scalar(select(OutboxMessage.body_text).where(OutboxMessage.kind == "resolution"))
        assert body == "1. Reinstall the VPN client."
    assert {"edited", "approved"} <= set(events(session_factory, ticket_id))
    assert {"edit_draft", "approve_draft"} <= set(audited(session_factory))


def test_save_edit_keeps_the_new_version_waiting(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id, action_id = drafted(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    at.text_area(key=f"draft_body_{action_id}_1").input("Try the other cable.").run()
    at = click(at, "Save edit")
    assert at.text_area(key=f"draft_body_{action_id}_2").value == "Try the other cable."
    with session_factory() as session:
        assert session.get(Action, action_id).state == ActionState.AWAITING_APPROVAL
        assert session.scalar(select(OutboxMessage.id).where(OutboxMessage.kind == "resolution")) is None


def test_a_draft_changed_by_someone_else_is_not_sent(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id, action_id = drafted(session_factory, app)
    at = click(open_page(TICKET, id=str(ticket_id)), "Approve and send")
    with session_factory.begin() as session:
        edit_draft(session, Actor("lee", Role.LEAD), action_id, 1, subject="s", body="Lee's version")
    at = click(at, "Confirm and send")
    assert "The draft changed since you looked at it, nothing was sent" in texts(at)
    with session_factory() as session:
        assert session.scalar(select(OutboxMessage.id).where(OutboxMessage.kind == "resolution")) is None


def test_reject_with_a_reason_escalates(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id, action_id = drafted(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    at.text_input(key=f"reject_reason_{action_id}").input("wrong product").run()
    at = click(at, "Reject draft")
    assert "Rejected: done." in texts(at)
    with session_factory() as session:
        assert session.get(Action, action_id).reason == "wrong product"
        assert session.get(Ticket, ticket_id).status == TicketStatus.ESCALATED
    assert "reject_draft" in audited(session_factory)


def test_take_over_and_reanalyse(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id, action_id = drafted(session_factory, app)
    at = click(open_page(TICKET, id=str(ticket_id)), "Take over")
    assert "ann owns this ticket: automation is stopped for it, the AI draft stays as a starting point." in texts(at)
    assert ":blue-badge[In progress (owned)]" in texts(at)
    assert at.text_area(key=f"draft_body_{action_id}_1").value == "1. Restart the VPN client."
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert (ticket.taken_over_by, ticket.status) == ("ann", TicketStatus.IN_PROGRESS)
        assert session.get(Action, action_id).state == ActionState.AWAITING_APPROVAL
    at = click(at, "Re-analyse")
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket.taken_over_by is None and ticket.pending_since is not None
    assert {"taken_over", "reanalysis_requested"} <= set(events(session_factory, ticket_id))


def test_override_to_escalate_with_team_and_priority(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id, action_id = drafted(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    at.radio(key=f"override_decision_{ticket_id}").set_value("escalate")
    at.selectbox(key=f"override_team_{ticket_id}").set_value("Service Desk")
    at.selectbox(key=f"override_priority_{ticket_id}").set_value("high")
    at.text_input(key=f"override_reason_{ticket_id}").input("VIP customer")
    at = click(click(at, "Override…"), "Confirm")
    assert "Decision overridden: done." in texts(at)
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert (ticket.status, ticket.priority, ticket.team) == (TicketStatus.ESCALATED, "high", "Service Desk")
        assert session.get(Action, action_id).state == ActionState.VOIDED
    assert {"overridden", "assigned"} <= set(events(session_factory, ticket_id))
    assert "override_decision" in audited(session_factory)


def test_override_to_resolve_needs_a_message(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id = escalated(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    at.radio(key=f"override_decision_{ticket_id}").set_value("resolve")
    at.text_input(key=f"override_reason_{ticket_id}").input("known fix")
    at = click(click(at, "Override…"), "Confirm")
    assert "to resolve, write the message the customer receives" in texts(at)
    at.text_area(key=f"override_body_{ticket_id}").input("Restart the router.")
    at = click(click(at, "Override…"), "Confirm")
    with session_factory() as session:
        assert session.get(Ticket, ticket_id).status == TicketStatus.RESOLVED
        assert session.scalar(select(OutboxMessage.body_text).where(OutboxMessage.kind == "resolution")) == (
            "Restart the router."
        )


def test_manual_reply_goes_through_the_outbox(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id = escalated(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    at.text_area(key=f"reply_body_{ticket_id}").input("I will call you at 3pm.")
    at = click(click(at, "Send reply…"), "Confirm and send")
    assert "Reply sent: done." in texts(at)
    with session_factory() as session:
        reply = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "manual_reply"))
        assert reply.body_text == "I will call you at 3pm." and f"TCKT-{ticket_id}" in reply.subject
    assert "manual_reply" in events(session_factory, ticket_id)


def test_a_reply_with_a_copy_and_a_file_is_confirmed_sent_and_in_the_timeline(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    ticket_id = escalated(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    at.text_area(key=f"reply_body_{ticket_id}").input("The steps are attached.")
    at.text_input(key=f"reply_cc_{ticket_id}").input("boss@customer.example")
    at.file_uploader(key=f"reply_files_{ticket_id}").upload("steps.txt", b"1. restart the router", "text/plain")
    at = click(at, "Send reply…")
    assert "with a copy to boss@customer.example, attaching steps.txt?" in texts(at)
    at = click(at, "Confirm and send")
    assert "Reply sent: done." in texts(at)
    with session_factory() as session:
        reply = session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "manual_reply"))
        assert reply.cc_addresses == ["boss@customer.example"]
        assert [(f["filename"], f["content_type"]) for f in reply.attachments] == [("steps.txt", "text/plain")]
    at = open_page(TICKET, id=str(ticket_id))
    shown = texts(at).replace("\\", "")  # the timeline escapes markdown
    assert (
        f"**Reply written** · ann replied to {reply.to_address}, cc boss@customer.example, with 1 attachment" in shown
    )
    [mail] = [table.value for table in at.dataframe if "cc" in table.value.columns]
    sent = mail[mail["what"] != "acknowledgement"].iloc[-1]
    assert (sent["to"], sent["cc"], sent["files"], sent["by"]) == (
        reply.to_address,
        "boss@customer.example",
        "steps.txt",
        "a person",
    )
    headers = {column: config.get("label") for column, config in outgoing_table(at).items()}
    assert headers["cc"] == "copy to" and headers["files"] == "attached"
    assert not mail.isna().any().any()


def test_a_bad_copy_address_is_refused_with_the_reason_and_nothing_is_sent(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    ticket_id = escalated(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    at.text_area(key=f"reply_body_{ticket_id}").input("The steps are attached.")
    at.text_input(key=f"reply_cc_{ticket_id}").input("boss@customer")
    at = click(at, "Send reply…")
    assert [e.value for e in at.error] == ["Not sent: CC: “boss@customer” is not an e-mail address."]
    assert not [b for b in at.button if b.label == "Confirm and send"]
    with session_factory() as session:
        assert session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "manual_reply")) is None


def test_assign_resolve_and_close(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id = escalated(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    at.selectbox(key="ticket_assign_priority").set_value("critical")
    at = click(at, "Assign")
    at = click(at, "Mark resolved")
    at = click(at, "Close")
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert (ticket.priority, ticket.status) == ("critical", TicketStatus.CLOSED)
    assert {"assign", "set_status"} <= set(audited(session_factory))


def test_a_viewer_can_read_but_every_action_is_disabled(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id, action_id = drafted(session_factory, app)
    at = open_page(TICKET, "vic", id=str(ticket_id))
    assert at.title[0].value.startswith(f"TCKT-{ticket_id}")
    for label in ("Approve and send", "Take over", "Re-analyse", "Mark resolved", "Close", "Assign", "Override…"):
        [button] = [b for b in at.button if b.label == label]
        assert button.disabled, label
    assert at.text_area(key=f"draft_body_{action_id}_1").disabled
    assert at.text_input(key=f"draft_subject_{action_id}_1").disabled
    assert at.text_area(key=f"reply_body_{ticket_id}").disabled
    with session_factory() as session:
        assert session.get(Action, action_id).state == ActionState.AWAITING_APPROVAL


def test_ticket_text_is_never_markup(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id = new_ticket(
        session_factory, app, subject="**urgent** [click](http://evil.example) <img src=x>", body="<script>x</script>"
    )
    at = open_page(TICKET, id=str(ticket_id))
    assert r"\*\*urgent\*\* \[click\]\(http\:" in at.title[0].value
    assert "<script>x</script>" in [text.value for text in at.text]


def test_a_url_in_the_subject_is_not_a_link(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id = new_ticket(session_factory, app, subject="Down: https://status.example.com and www.example.com")
    title = open_page(TICKET, id=str(ticket_id)).title[0].value
    assert "https://" not in title.replace("\\", "") and "www.example" not in title.replace("\\", "")
    assert title.replace("\\", "").replace("\u200b", "").endswith("https://status.example.com and www.example.com")


def test_the_reply_subject_belongs_to_the_ticket_on_screen(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    first = escalated(session_factory, app, subject="Deleted dashboard by mistake")
    second = escalated(session_factory, app, subject="Printer jams")
    at = open_page(TICKET, id=str(first))
    assert at.text_input(key=f"reply_subject_{first}").value == "Re: Deleted dashboard by mistake"
    at.query_params["id"] = str(second)
    at.run()
    assert at.text_input(key=f"reply_subject_{second}").value == "Re: Printer jams"
    assert all(widget.value != "Re: Deleted dashboard by mistake" for widget in at.text_input)


def test_the_conversation_shows_each_message_once_in_time_order(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    ticket_id = escalated(session_factory, app, body="My VPN drops every hour.")
    at = open_page(TICKET, id=str(ticket_id))
    bodies = [text.value for text in at.text]
    assert bodies.count("My VPN drops every hour.") == 1
    with session_factory() as session:
        sent = session.scalars(select(OutboxMessage).where(OutboxMessage.ticket_id == ticket_id)).all()
    assert sent, "the escalation acknowledges the customer"
    for message in sent:
        assert sum(message.body_text in body for body in bodies) == 1
    headings = [m.value for m in at.markdown]
    [request] = [index for index, text in enumerate(headings) if "· original request ·" in text]
    [acknowledgement] = [
        index for index, text in enumerate(headings) if "acknowledgement · :gray-badge[queued]" in text
    ]
    assert request < acknowledgement


def test_a_strangers_reply_kept_apart_is_linked_on_both_tickets(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    victim = new_ticket(session_factory, app, requester_email="rita@customer.example")
    with session_factory.begin() as session:
        attack = email_in(requester_email="mallory@attacker.example", subject=f"Re: TCKT-{victim}", body="Not fixed")
        stranger = ingest(session, attack, app).ticket_id
    on_victim = open_page(TICKET, id=str(victim))
    [note] = [w.value for w in on_victim.warning if "People not on this ticket" in w.value]
    assert f"[TCKT-{stranger}](?id={stranger}) from mallory@attacker.example" in note.replace("\\", "")
    on_stranger = open_page(TICKET, id=str(stranger))
    [note] = [w.value for w in on_stranger.warning if "claimed to continue" in w.value]
    assert f"[TCKT-{victim}](?id={victim})" in note and "held for a person" in note
    assert "Not threaded onto" in texts(on_stranger)


def test_a_bounced_acknowledgement_shows_as_bounced_with_the_servers_answer(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    outbox_id = queue(session_factory, app)
    with session_factory.begin() as session:
        message = session.get(OutboxMessage, outbox_id)
        ticket_id = message.ticket_id
        bounce = DeliveryEvent("imap", "dsn-1", "email_bounced", message.message_id, None, "smtp; 550 5.1.1 no user")
        assert record_delivery_event(session, bounce) == "email_bounced"
    at = open_page(TICKET, id=str(ticket_id))
    assert not at.exception
    assert "acknowledgement · :red-badge[bounced]" in texts(at)
    [event] = [line for line in texts(at).splitlines() if "**Mail bounced**" in line]
    assert "acknowledgement to customer@example" in event and "550 5\\.1\\.1 no user" in event, "the server's answer"
