"""The Team page: leads put operators in teams; agents only read."""

from sqlalchemy.orm import Session, sessionmaker

from engine.core.settings import Settings
from engine.operators.assignment import operator_team
from tests.pages.conftest import open_page, texts

TEAM = "pages/7_Team.py"


def test_a_lead_puts_an_operator_in_a_team(app: Settings, session_factory: sessionmaker[Session]) -> None:
    at = open_page(TEAM, user="lee")
    assert not at.exception
    at.selectbox(key="team_operator").set_value("ann")
    at.selectbox(key="team_team").set_value(app.DEFAULT_TEAM)
    at = at.button(key="team_save").click().run()
    assert f"ann is now in the team {app.DEFAULT_TEAM}." in texts(at)
    assert dict(zip(at.dataframe[0].value["operator"], at.dataframe[0].value["team"], strict=True))["ann"] == (
        app.DEFAULT_TEAM
    )
    with session_factory() as session:
        assert operator_team(session, "ann") == app.DEFAULT_TEAM


def test_an_agent_reads_but_cannot_change(app: Settings) -> None:
    at = open_page(TEAM, user="ann")
    assert not at.exception
    assert at.selectbox(key="team_operator").disabled
    assert set(at.dataframe[0].value["team"]) == {"no team"}


def test_a_lead_writes_a_canned_reply_and_seeds_from_approved_answers(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    at = open_page(TEAM, user="lee")
    assert "No canned replies yet" in texts(at)
    [title] = [box for box in at.text_input if box.label == "Title"]
    [body] = [area for area in at.text_area if area.label == "Text"]
    title.input("Password reset")
    body.input("Hello {requester_name}, your password for {ticket} is reset.")
    at = at.button(key="FormSubmitter:macro_form_0-Save canned reply").click().run()
    assert "Canned reply “Password reset” saved." in texts(at)
    assert "Password reset · every team" in [e.label for e in at.expander]
    [body] = [area for area in at.text_area if area.label == "Text"]
    body.input("Hello {name}")
    at = at.button(key="FormSubmitter:macro_form_0-Save canned reply").click().run()
    assert "Not saved: unknown placeholder {name}" in texts(at)
    at = at.button(key="macro_seed").click().run()
    assert not at.exception, at.exception
    assert "0 canned replies added from approved answers." in texts(at)


def test_an_agent_cannot_change_canned_replies(app: Settings) -> None:
    at = open_page(TEAM, user="ann")
    assert at.button(key="macro_seed").disabled
    assert all(area.disabled for area in at.text_area)
