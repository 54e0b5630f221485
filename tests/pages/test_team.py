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
