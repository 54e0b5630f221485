"""The outcome views: the resolution funnel on Metrics, knowledge gaps on the Knowledge Base page, and the
autopilot switched off by the floor on Home."""

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from engine.core.desk_policy import DeskPolicy, current_policy, save_policy
from engine.core.enums import OutcomeState
from engine.core.models import utcnow
from engine.core.settings import Settings
from engine.outcomes.outcomes import apply_durable_floor
from tests.factories import analysed_ticket, resolution_outcome
from tests.pages.conftest import open_page, texts


def test_metrics_show_the_resolution_funnel(app: Settings, session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        resolution_outcome(session, category="network", state=OutcomeState.DURABLE).csat = 5
        resolution_outcome(session, category="network", state=OutcomeState.REOPENED).csat = 2
        resolution_outcome(session, category="billing", state=OutcomeState.DURABLE, automated=False)
    at = open_page("pages/4_Metrics.py", "vic")
    assert not at.exception
    metrics = {metric.label: metric for metric in at.metric}
    assert metrics["Answered automatically"].value == "2" and metrics["Durable"].value == "1"
    assert metrics["Re-opened (automatic)"].value == "50%" and metrics["Re-opened (human)"].value == "0%"
    assert "Resolution outcomes" in texts(at)
    calibration = next(frame.value for frame in at.dataframe if "solved share" in frame.value.columns)
    assert calibration["answers"].sum() == 2 and calibration["solved share"].tolist() == [0.5]
    assert any(button.label == "CSV · outcomes per category" for button in at.get("download_button"))


def test_the_knowledge_base_lists_gaps_by_topic(app: Settings, session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        for _ in range(3):
            analysed_ticket(session, "VPN certificate expired", confidence=0.0, evidence=False)
    at = open_page("pages/3_Knowledge_Base.py", "lee")
    assert not at.exception
    frames = [frame.value for frame in at.dataframe if "write an article about" in frame.value.columns]
    assert len(frames) == 1 and frames[0]["tickets"].tolist() == [3]
    topic = frames[0]["write an article about"][0].lower()
    assert "vpn" in topic or "certificate" in topic
    assert any(button.label == "CSV · knowledge gaps" for button in at.get("download_button"))


def test_home_tells_the_leads_when_the_floor_switched_autopilot_off(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as session:
        save_policy(session, DeskPolicy(autopilot={"*:*": True}, durable_floor={"*": 0.9}), actor="lee")
        for _ in range(20):
            resolution_outcome(session, category="network", state=OutcomeState.REOPENED)
        apply_durable_floor(session, app, now=utcnow() + timedelta(days=8))
    at = open_page("Home.py", "lee")
    assert not at.exception
    assert "Autopilot switched off for **network**" in "\n".join(warning.value for warning in at.warning)
    assert "0% of its automatic answers stayed solved" in texts(at)


def test_a_lead_sets_the_durable_floor(app: Settings, session_factory: sessionmaker[Session]) -> None:
    with session_factory.begin() as session:
        save_policy(session, DeskPolicy(durable_floor={"network": 0.8}), actor="lee")
    at = open_page("pages/5_Settings.py", "lee")
    assert not at.exception
    at.number_input(key="policy_floor_min").set_value(5)
    at = next(b for b in at.button if b.label == "Save floor").click().run()
    assert "Durable floor saved as policy version 2." in texts(at)
    with session_factory() as session:
        policy = current_policy(session, app)
    assert (policy.durable_floor, policy.durable_floor_min_resolutions) == ({"network": 0.8}, 5)


def test_metrics_show_what_customer_outcomes_do_to_confidence_per_category(
    app: Settings, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as session:
        for _ in range(6):
            resolution_outcome(session, category="network", state=OutcomeState.REOPENED, confidence=0.9)
        resolution_outcome(session, category="billing", state=OutcomeState.CONFIRMED, confidence=0.8)
    at = open_page("pages/4_Metrics.py", "vic")
    assert not at.exception
    assert "Customer outcomes of automatic answers" in texts(at)
    table = next(frame.value for frame in at.dataframe if "adjustment (logit)" in frame.value.columns)
    rows = table.set_index("category")
    assert rows.loc["Network", "judged"] == 6 and rows.loc["Network", "re-opened"] == 6
    assert rows.loc["Network", "solved rate"] == 0.0 and rows.loc["Network", "adjustment (logit)"] < 0
    assert rows.loc["Billing", "adjustment (logit)"] == 0.0, "one judged answer is too few"
    assert any(button.label == "CSV · customer outcomes of automatic answers" for button in at.get("download_button"))


def test_metrics_say_when_no_automatic_answer_was_judged(app: Settings) -> None:
    at = open_page("pages/4_Metrics.py", "vic")
    assert not at.exception
    assert any("No automatic answers judged by customers yet" in info.value for info in at.info)
