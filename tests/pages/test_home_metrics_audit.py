"""Home at a glance, the metrics page (with the offline evaluation report) and the audit log."""

import json
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import ActionState, OutcomeState
from engine.core.settings import Settings
from tests.factories import drafted, proposed_resolution
from tests.pages.conftest import open_page, texts
from tests.pages.seed import escalated
from ui import glossary
from ui.connectors import CARDS_KEY, NO_FADE


def test_home_counts_and_events(app: Settings, session_factory: sessionmaker[Session]) -> None:
    drafted(session_factory, app)
    escalated(session_factory, app)
    at = open_page("Home.py", "vic")
    assert not at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert (metrics["Open"], metrics["Drafts to approve"], metrics["Escalated"]) == ("2", "1", "1")
    assert metrics["Automation rate"] == "—"
    assert "drafts awaiting approval" not in texts(at)  # the tile counts them, one number for one thing
    assert any(caption.value.startswith("Why drafts wait for a person: 1 ") for caption in at.caption)
    events = at.dataframe[0].value
    assert {"Draft proposed", "Status changed"} <= set(events["event"])
    assert not any("_" in what or "AwaitingApproval" in what for what in events["what"])


def blocks(node: Any) -> list[Any]:
    """Every node under `node`, depth first (AppTest offers no lookup of a container by its key)."""
    found = []
    for child in getattr(node, "children", {}).values():
        found += [child, *blocks(child)]
    return found


def test_home_connector_cards_sit_in_the_container_that_does_not_fade(app: Settings) -> None:
    """The live part redraws the cards on every refresh; their container is the one NO_FADE keeps at full opacity
    (in a browser: tests/browser/test_connector_cards_browser.py)."""
    at = open_page("Home.py", "vic")
    assert [html.proto.body for html in at.get("html")].count(NO_FADE) == 1
    assert f".st-key-{CARDS_KEY} " in NO_FADE
    [cards] = [node for node in blocks(at.main) if str(getattr(node.proto, "id", "")).endswith(f"-{CARDS_KEY}")]
    assert any(str(getattr(node, "value", "")).startswith("**Demo feed**") for node in blocks(cards))


def test_home_health_check_reads_as_cards(app: Settings) -> None:
    at = open_page("Home.py", "ada")
    at = at.button(key="home_health").click().run()
    assert not at.exception
    assert any(m.value.startswith("**Database** :green-badge[healthy]") for m in at.markdown)
    assert at.main.expander[-1].label == "Details (the full report)"


def test_metrics_show_outcomes_and_the_evaluation_report(app: Settings, session_factory: sessionmaker[Session]) -> None:
    drafted(session_factory, app)
    escalated(session_factory, app)
    report = app.DATA_DIR / "evaluation" / "latest.json"
    report.parent.mkdir(parents=True)
    report.write_text(
        json.dumps(
            {
                "generated_at": "2026-11-24T10:00:00Z",
                "dataset": "demo-120",
                "decision_accuracy": 0.82,
                "confusion_matrix": {"resolve": {"resolve": 40, "escalate": 3}, "escalate": {"escalate": 30}},
                "threshold_curve": [{"threshold": 0.5, "precision": 0.8, "coverage": 0.6}],
                "per_category": {"network": {"accuracy": 0.9}},
            }
        )
    )
    at = open_page("pages/4_Metrics.py", "vic")
    assert not at.exception
    metrics = {metric.label: metric.value for metric in at.metric}
    assert metrics["Received"] == "2" and metrics["Escalation rate"] == "50%"
    assert metrics["decision accuracy"] == "0.820"
    assert "Generated 2026-11-24T10:00:00Z on dataset demo-120" in texts(at)
    assert len(at.get("download_button")) >= 3
    assert len(at.get("plotly_chart")) >= 4
    charts = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    shown = json.dumps(charts)
    assert "direction=" not in shown and "first_response_minutes" not in shown
    colours = {
        trace["name"]: trace["marker"]["color"]
        for chart in charts
        for trace in chart["data"]
        if trace.get("legendgroup") in glossary.OUTCOME_COLOUR
    }
    assert colours and all(glossary.OUTCOME_COLOUR[name] == colour for name, colour in colours.items())


def test_metrics_without_data_or_report(app: Settings) -> None:
    at = open_page("pages/4_Metrics.py", "vic")
    assert not at.exception
    assert "No evaluation report yet" in texts(at)
    assert "No AI resolution drafts in this range yet" in texts(at)


def test_metrics_show_what_each_auto_send_minimum_would_have_done(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        proposed_resolution(session, confidence=0.93, outcome=OutcomeState.CONFIRMED, answer="yes")
        proposed_resolution(session, confidence=0.8, decided_by="operator:ann")
        proposed_resolution(session, confidence=0.7, state=ActionState.REJECTED, decided_by="operator:ann")
        session.commit()
    at = open_page("pages/4_Metrics.py", "vic")
    assert not at.exception
    assert "Auto-send threshold on this desk's history" in texts(at)
    assert "analysed tickets 3 times in this range; 3 resolution drafts" in texts(at)
    [table] = [frame.value for frame in at.dataframe if "minimum confidence" in frame.value.columns]
    rows = table.set_index("minimum confidence")
    assert rows.loc[0.75, "current setting"] == "◀ today"
    assert rows.loc[
        0.65, ["sent automatically", "confirmed by the customer", "approved as-is", "rejected"]
    ].tolist() == [
        3,
        1,
        1,
        1,
    ]
    assert rows.loc[0.9, "sent automatically"] == 1 and rows.loc[0.95, "sent automatically"] == 0
    [frame] = [frame for frame in at.dataframe if "minimum confidence" in frame.value.columns]
    headers = {column: config.get("label") for column, config in json.loads(frame.proto.columns).items()}
    assert headers["current setting"] == "today" and headers["confirmed by the customer"] == "confirmed"
    assert {column for column, label in headers.items() if label} == set(table.columns)
    assert max(len(label) for label in headers.values() if label) <= len("confirmed"), "no header is cut to …"
    assert any(button.label == "CSV · auto-send threshold on history" for button in at.get("download_button"))


def test_audit_needs_a_lead_and_filters(app: Settings, session_factory: sessionmaker[Session]) -> None:
    drafted(session_factory, app)
    refused = open_page("pages/6_Audit.py", "ann")
    assert "This page needs the lead role or above; you are signed in as agent." in texts(refused)
    at = open_page("pages/6_Audit.py", "lee")
    assert not at.exception
    assert {"created an operator"} <= set(at.dataframe[0].value["action"])
    assert any({"username: lee", "role: lead"} == set(d.split(" · ")) for d in at.dataframe[0].value["details"])
    at.multiselect(key="audit_who").set_value(["cli"]).run()
    assert set(at.dataframe[0].value["who"]) == {"the command line"}
    at = at.button(key="audit_export").click().run()
    assert at.get("download_button")
