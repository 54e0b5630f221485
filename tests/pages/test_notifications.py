"""The notification bell on every page: replies on my tickets and @mentions, as links; mark all read."""

from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import Role
from engine.core.settings import Settings
from engine.operators.assignment import assign_to_person
from engine.operators.notes import add_note
from engine.operators.permissions import Actor
from tests.factories import new_ticket, reply
from tests.pages.conftest import open_page


def bell_labels(at) -> list[str]:
    return [expander.label for expander in at.sidebar.expander if "🔔" in expander.label]


def test_the_bell_tells_of_replies_and_mentions_until_read(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    mine = new_ticket(session_factory, app)
    other = new_ticket(session_factory, app)
    with session_factory.begin() as session:
        assign_to_person(session, Actor("lee", Role.LEAD), mine, "ann")
    reply(session_factory, app, mine, "Any news?")
    with session_factory.begin() as session:
        add_note(session, Actor("lee", Role.LEAD), other, "@ann please look")
    at = open_page("pages/1_Queue.py")
    assert not at.exception
    assert bell_labels(at) == ["🔔 2 new"]
    lines = [element.value for element in at.sidebar.markdown]
    assert any(
        line.startswith(f"**[TCKT-{other}](Ticket?id={other}) · lee mentioned you in a note**") for line in lines
    )
    assert any(line.startswith(f"**[TCKT-{mine}](Ticket?id={mine}) · the customer replied**") for line in lines)
    at = at.button(key="notifications_read").click().run()
    assert bell_labels(at) == ["🔔 Notifications"]
    assert bell_labels(open_page("Home.py", user="lee")) == ["🔔 Notifications"]
