"""The ticket page's workspace panels (ui/ticket_workspace.py): assignment, internal notes, the requester's other
tickets, canned replies, who else has the ticket open, tags, merge and link."""

from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Selectbox

from engine.core.enums import Role
from engine.core.models import Ticket
from engine.core.settings import Settings
from engine.operators.macros import save_canned_reply
from engine.operators.merging import merge_ticket
from engine.operators.notes import ticket_notes
from engine.operators.permissions import Actor
from tests.factories import new_ticket, reply
from tests.pages.conftest import open_page, texts

TICKET = "pages/2_Ticket.py"


def assignee_picker(at: AppTest) -> Selectbox:
    [picker] = [box for box in at.selectbox if box.label == "Assigned to"]
    return picker


def test_assigns_the_ticket_to_a_person(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id = new_ticket(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    assert assignee_picker(at).value == "nobody"
    assert assignee_picker(at).options == ["nobody", "ada", "ann", "lee"]
    assignee_picker(at).set_value("lee").run()
    at = at.button(key="ticket_assign_person").click().run()
    assert "Assigned: done" in texts(at)
    at = at.button(key="ticket_assign_me").click().run()
    with session_factory() as session:
        assert session.get(Ticket, ticket_id).assignee == "ann"
    assert assignee_picker(at).value == "ann"


def test_a_viewer_sees_the_assignee_but_cannot_change_it(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id = new_ticket(session_factory, app)
    at = open_page(TICKET, user="vic", id=str(ticket_id))
    assert assignee_picker(at).disabled
    assert at.button(key="ticket_assign_me").disabled


def test_internal_notes_with_mentions(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id = new_ticket(session_factory, app)
    at = open_page(TICKET, id=str(ticket_id))
    assert "Only operators see these" in texts(at)
    at.text_area(key=f"ticket_note_body_{ticket_id}").input("@lee can you call them? Legal hold.")
    at = at.button(key=f"FormSubmitter:ticket_note_{ticket_id}-Add note").click().run()
    assert "Note added: done" in texts(at)
    assert "ann · just now · for lee" in texts(at)
    assert "@lee can you call them? Legal hold." in [element.value for element in at.text]
    with session_factory() as session:
        assert [note.mentions for note in ticket_notes(session, ticket_id)] == [["lee"]]


def test_a_viewer_reads_notes_but_cannot_write(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id = new_ticket(session_factory, app)
    at = open_page(TICKET, user="vic", id=str(ticket_id))
    assert at.text_area(key=f"ticket_note_body_{ticket_id}").disabled


def test_shows_the_requesters_other_tickets(app: Settings, session_factory: sessionmaker[Session]) -> None:
    first = new_ticket(session_factory, app, requester_email="grace@navy.example", subject="Old printer")
    current = new_ticket(session_factory, app, requester_email="grace@navy.example")
    at = open_page(TICKET, id=str(current))
    assert f"[TCKT-{first}](?id={first}) · New · just now · Old printer" in texts(at)
    at = open_page(TICKET, id=str(first))
    assert f"[TCKT-{current}](?id={current})" in texts(at)
    lonely = new_ticket(session_factory, app)
    assert "No other tickets: this is their first." in texts(open_page(TICKET, id=str(lonely)))


def test_a_canned_reply_starts_the_reply_with_placeholders_filled(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    ticket_id = new_ticket(session_factory, app)
    with session_factory.begin() as session:
        save_canned_reply(session, Actor("lee", Role.LEAD), title="Received", body="We are on {ticket}, {operator}")
    at = open_page(TICKET, id=str(ticket_id))
    at.selectbox(key=f"ticket_canned_{ticket_id}").set_value(1).run()
    at = at.button(key="ticket_canned_use").click().run()
    assert at.text_area(key=f"reply_body_{ticket_id}").value == f"We are on TCKT-{ticket_id}, ann"
    assert "“Received” is in Write a reply below" in texts(at)


def test_names_whoever_else_has_the_ticket_open(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id = new_ticket(session_factory, app)
    first = open_page(TICKET, user="lee", id=str(ticket_id))
    assert "this ticket open too" not in texts(first)
    second = open_page(TICKET, id=str(ticket_id))
    assert "lee has this ticket open too: agree who answers before you send." in texts(second)
    assert "ann has this ticket open too" in texts(first.run())


def test_tags_merge_and_link(app: Settings, session_factory: sessionmaker[Session]) -> None:
    target = new_ticket(session_factory, app, requester_email="grace@navy.example", subject="VPN down")
    duplicate = new_ticket(session_factory, app, requester_email="grace@navy.example", body="Same VPN again")
    neighbour = new_ticket(session_factory, app, subject="VPN down too")
    at = open_page(TICKET, id=str(duplicate))
    at.multiselect(key=f"ticket_tags_{duplicate}").set_value(["vpn"]).run()
    at = at.button(key="ticket_save_tags").click().run()
    assert "Tags saved: done" in texts(at)
    at.number_input(key=f"ticket_other_{duplicate}").set_value(neighbour).run()
    at = at.button(key="ticket_link").click().run()
    assert f"Linked: [TCKT-{neighbour}](?id={neighbour}) VPN down too" in texts(at)
    at.number_input(key=f"ticket_other_{duplicate}").set_value(target).run()
    at = at.button(key="ticket_merge").click().run()
    assert f"Merged into [TCKT-{target}](?id={target})" in texts(at)
    at = open_page(TICKET, id=str(target))
    assert f"Merged in: TCKT-{duplicate} · 1 message" in [e.label for e in at.expander]
    assert "Same VPN again" in [element.value for element in at.text]


def test_a_reply_to_a_merged_ticket_shows_on_the_surviving_one(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    target = new_ticket(session_factory, app, requester_email="grace@navy.example", subject="VPN down")
    duplicate = new_ticket(session_factory, app, requester_email="grace@navy.example", body="Same VPN again")
    with session_factory.begin() as session:
        merge_ticket(session, Actor("ann", Role.AGENT), duplicate, target)
    reply(session_factory, app, duplicate, "Now it drops every ten minutes.")
    shown = texts(open_page(TICKET, id=str(target))).replace("\\", "")
    assert "Now it drops every ten minutes." in shown
    assert (
        f"**Reply moved to the surviving ticket** · Reply from grace@navy.example to TCKT-{duplicate} "
        "(merged into this one) moved here"
    ) in shown
