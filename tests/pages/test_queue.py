"""The queue: server-side filter, search and paging; bulk approve, assign and close; a row opens the ticket."""

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Dataframe

from engine.core.enums import ActionState, Role, TicketStatus
from engine.core.models import Action, AuditEntry, OutboxMessage, Ticket
from engine.core.settings import Settings
from engine.operators.actions import assign, take_over
from engine.operators.assignment import assign_to_person, set_operator_team
from engine.operators.merging import set_tags
from engine.operators.permissions import Actor
from tests.factories import drafted, new_ticket, reply
from tests.pages.conftest import open_page, texts
from tests.pages.seed import escalated

QUEUE = "pages/1_Queue.py"


def select_rows(at: AppTest, *rows: int) -> AppTest:
    at.session_state["queue_table"] = {"selection": {"rows": list(rows), "columns": [], "cells": []}}
    return at.run()


def click(at: AppTest, key: str) -> AppTest:
    return at.button(key=key).click().run()


def test_lists_filters_searches_and_pages(app: Settings, session_factory: sessionmaker[Session]) -> None:
    for number in range(55):
        new_ticket(session_factory, app, subject=f"Printer jam {number}" if number % 5 == 0 else f"VPN issue {number}")
    at = open_page(QUEUE)
    assert not at.exception
    assert "55 tickets · page 1 of 2" in texts(at)
    table = at.dataframe[0].value
    assert len(table) == 50 and table.iloc[0]["ticket"] == "TCKT-55"
    assert {"confidence", "escalation_score", "sla", "age_hours"} <= set(table.columns)
    at = click(at, "queue_next")
    assert len(at.dataframe[0].value) == 5 and "page 2 of 2" in texts(at)
    at.text_input(key="queue_search").input("printer").run()
    assert "11 tickets · page 1 of 1" in texts(at)
    at.text_input(key="queue_search").input("TCKT-3").run()
    assert list(at.dataframe[0].value["ticket"]) == ["TCKT-3"]


def test_search_finds_words_in_the_conversation(app: Settings, session_factory: sessionmaker[Session]) -> None:
    """The search box reads every message of a ticket, through the database's full-text index."""
    wanted = new_ticket(session_factory, app, subject="Question", body="Hello")
    new_ticket(session_factory, app, subject="Other", body="Hello")
    reply(session_factory, app, wanted, "Where do I find the signed contracts?")
    at = open_page(QUEUE)
    at.text_input(key="queue_search").input("contracts").run()
    assert list(at.dataframe[0].value["ticket"]) == [f"TCKT-{wanted}"]


def test_one_click_on_a_cell_opens_its_ticket(app: Settings, session_factory: sessionmaker[Session]) -> None:
    first = new_ticket(session_factory, app)
    new_ticket(session_factory, app)
    at = open_page(QUEUE)
    at.session_state["queue_table"] = {"selection": {"rows": [], "columns": [], "cells": [[1, "subject"]]}}
    assert at.run().title[0].value.startswith(f"TCKT-{first} ·")


def test_j_k_move_the_focus_and_enter_opens_it(app: Settings, session_factory: sessionmaker[Session]) -> None:
    first = new_ticket(session_factory, app, subject="Older one")
    new_ticket(session_factory, app, subject="Newer one")
    at = open_page(QUEUE)
    assert "▶ **TCKT-2** · Newer one" in texts(at) and at.button(key="queue_up").disabled
    at = click(at, "queue_down")
    assert "▶ **TCKT-1** · Older one" in texts(at) and at.button(key="queue_down").disabled
    assert at.button(key="queue_approve").disabled
    at = click(at, "queue_open")
    assert at.title[0].value.startswith(f"TCKT-{first} ·")


def test_a_to_approve_the_focused_draft_asks_first(app: Settings, session_factory: sessionmaker[Session]) -> None:
    ticket_id, action_id = drafted(session_factory, app)
    at = click(open_page(QUEUE), "queue_approve")
    assert f"Send the draft on TCKT-{ticket_id} exactly as drafted to its customer?" in texts(at)
    shown = list(at.main)
    asked = next(n for n, node in enumerate(shown) if "exactly as drafted" in str(getattr(node, "value", "")))
    table = next(n for n, node in enumerate(shown) if isinstance(node, Dataframe))
    assert asked < table, "asked above the table, where the key was pressed"
    with session_factory() as session:
        assert session.get(Action, action_id).state == ActionState.AWAITING_APPROVAL
    at = click(at, "queue_confirm_yes")
    with session_factory() as session:
        assert session.get(Ticket, ticket_id).status == TicketStatus.RESOLVED


def test_saved_views(app: Settings, session_factory: sessionmaker[Session]) -> None:
    waiting, _ = drafted(session_factory, app)
    pushed = escalated(session_factory, app)
    owned = new_ticket(session_factory, app)
    given = new_ticket(session_factory, app)
    with session_factory.begin() as session:
        take_over(session, Actor("ann", Role.AGENT), owned)
        assign(session, Actor("ann", Role.AGENT), pushed, team="Network", priority="high")
        assign_to_person(session, Actor("lee", Role.LEAD), given, "ann")
        set_operator_team(session, Actor("lee", Role.LEAD), "ann", "Network")
    at = open_page(QUEUE)
    assert len(at.dataframe[0].value) == 4
    at.button_group(key="queue_view").set_value("Needs approval").run()
    assert list(at.dataframe[0].value["ticket"]) == [f"TCKT-{waiting}"]
    assert list(at.dataframe[0].value["status"]) == ["Awaiting approval"]
    at.button_group(key="queue_view").set_value("Assigned to me").run()
    assert list(at.dataframe[0].value["ticket"]) == [f"TCKT-{given}", f"TCKT-{owned}"]
    assert set(at.dataframe[0].value["assignee"]) == {"ann"}
    at.button_group(key="queue_view").set_value("My team's").run()
    assert list(at.dataframe[0].value["ticket"]) == [f"TCKT-{pushed}"]
    assert "Tickets of the team Network." in texts(at)
    at.button_group(key="queue_view").set_value("Escalated to my team").run()
    at.selectbox(key="queue_my_team").set_value("Network").run()
    assert list(at.dataframe[0].value["ticket"]) == [f"TCKT-{pushed}"]


def test_bulk_approve_sends_each_draft_as_listed(app: Settings, session_factory: sessionmaker[Session]) -> None:
    first, _ = drafted(session_factory, app)
    second, _ = drafted(session_factory, app)
    at = select_rows(open_page(QUEUE), 0, 1)
    at = click(at, "queue_bulk_approve")
    assert f"Send the 2 drafts on TCKT-{first} and TCKT-{second} exactly as drafted to their customers?" in texts(at)
    at = click(at, "queue_confirm_yes")
    assert f"Sent: TCKT-{first} and TCKT-{second}" in texts(at)
    with session_factory() as session:
        assert (
            session.scalars(select(Ticket.status).where(Ticket.id.in_((first, second)))).all()
            == [TicketStatus.RESOLVED] * 2
        )
        assert len(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "resolution")).all()) == 2


def test_bulk_assign_and_close_skip_what_they_cannot_do(app: Settings, session_factory: sessionmaker[Session]) -> None:
    done = escalated(session_factory, app)
    open_one = escalated(session_factory, app)
    at = select_rows(open_page(QUEUE), 0, 1)
    at.selectbox(key="queue_bulk_team").set_value("Service Desk")
    at.selectbox(key="queue_bulk_priority").set_value("high")
    at = click(click(at, "queue_bulk_assign"), "queue_confirm_yes")
    assert f"Assigned: TCKT-{done} and TCKT-{open_one}" in texts(at)
    at = select_rows(at, 0, 1)
    at = click(click(at, "queue_bulk_close"), "queue_confirm_yes")
    with session_factory() as session:
        tickets = session.scalars(select(Ticket).where(Ticket.id.in_((done, open_one)))).all()
        assert {(t.priority, t.status) for t in tickets} == {("high", TicketStatus.CLOSED)}
        assert {"assign", "set_status"} <= set(session.scalars(select(AuditEntry.action)))


def test_a_viewer_cannot_act_in_bulk(app: Settings, session_factory: sessionmaker[Session]) -> None:
    _, action_id = drafted(session_factory, app)
    at = select_rows(open_page(QUEUE, "vic"), 0)
    for key in ("queue_bulk_approve", "queue_bulk_assign", "queue_bulk_close"):
        assert at.button(key=key).disabled
    with session_factory() as session:
        assert session.get(Action, action_id).state == ActionState.AWAITING_APPROVAL


def test_the_tag_filter_shows_tickets_with_any_chosen_tag(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    vip, billing, untagged = (new_ticket(session_factory, app) for _ in range(3))
    with session_factory.begin() as session:
        set_tags(session, Actor("ann", Role.AGENT), vip, ["vip"])
        set_tags(session, Actor("ann", Role.AGENT), billing, ["billing", "refund"])
    at = open_page(QUEUE)
    assert at.multiselect(key="queue_tags").options == ["billing", "refund", "vip"]
    assert len(at.dataframe[0].value) == 3
    at.multiselect(key="queue_tags").set_value(["vip"]).run()
    assert list(at.dataframe[0].value["ticket"]) == [f"TCKT-{vip}"]
    at.multiselect(key="queue_tags").set_value(["vip", "refund"]).run()
    assert list(at.dataframe[0].value["ticket"]) == [f"TCKT-{billing}", f"TCKT-{vip}"]
    assert f"TCKT-{untagged}" not in list(at.dataframe[0].value["ticket"])


def test_a_search_counts_up_to_its_cap_and_says_more(
    app: Settings, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A word in every ticket is counted to the cap ("3+"), not to the end; the page still lists the newest."""
    for module in ("engine.operators.queries", "ui.queue_words"):
        monkeypatch.setattr(f"{module}.SEARCH_COUNT_CAP", 3)
    for number in range(5):
        new_ticket(session_factory, app, subject=f"Printer jam {number}")
    at = open_page(QUEUE)
    assert "5 tickets · page 1 of 1" in texts(at), "no search: the exact count"
    at.text_input(key="queue_search").input("printer").run()
    assert "3+ tickets · page 1 of 1+" in texts(at)
    assert list(at.dataframe[0].value["ticket"])[:2] == ["TCKT-5", "TCKT-4"]


def test_the_keys_are_a_script_in_the_page_itself(app: Settings, session_factory: sessionmaker[Session]) -> None:
    """st.html with its script allowed, not the deprecated components iframe: the listener lives in the page, so
    the keys work after the sidebar or Back brought the operator here."""
    new_ticket(session_factory, app)
    at = open_page(QUEUE)
    [keys] = [html for html in at.get("html") if "queueShortcuts" in html.proto.body]
    assert keys.proto.unsafe_allow_javascript
    assert not [frame for frame in at.get("iframe") if "queueShortcuts" in frame.proto.srcdoc]
