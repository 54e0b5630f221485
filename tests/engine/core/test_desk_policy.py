import pydantic
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.desk_policy import DeskPolicy, current_policy, default_policy, save_policy
from engine.core.models import AuditEntry
from engine.core.settings import Settings, load_settings


def test_most_specific_autopilot_switch_wins() -> None:
    policy = DeskPolicy(autopilot={"*:*": False, "jira:*": True, "jira:billing": False, "*:password": True})
    assert policy.autopilot_on("jira", "network")
    assert not policy.autopilot_on("jira", "billing")
    assert policy.autopilot_on("servicenow", "password")
    assert not policy.autopilot_on("servicenow", None)
    assert not DeskPolicy().autopilot_on("jira", "network")


def test_defaults_come_from_the_environment_until_a_lead_saves_one(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings.AUTOPILOT_ENABLED = True
    with session_factory.begin() as session:
        assert current_policy(session, settings).autopilot_on("demo", "vpn")
        changed = current_policy(session, settings).model_copy(update={"autopilot": {"demo:*": False}})
        assert save_policy(session, changed, actor="lead-lisa").version == 1
        again = changed.model_copy(update={"follow_up_limit": 5})
        assert save_policy(session, again, actor="lead-lisa").version == 2
    with session_factory() as session:
        policy = current_policy(session, settings)
        assert (policy.autopilot_on("demo", "vpn"), policy.follow_up_limit) == (False, 5)
        audits = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert [(a.actor, a.target_id, a.details["changed"]) for a in audits] == [
            ("lead-lisa", "1", ["autopilot"]),  # the first save: what differs from the defaults it replaced
            ("lead-lisa", "2", ["follow_up_limit"]),
        ]


def test_unknown_or_negative_weights_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError, match="unknown escalation criteria"):
        DeskPolicy(escalation_weights={"vibes": 1.0})
    with pytest.raises(pydantic.ValidationError, match="must not be negative"):
        DeskPolicy(escalation_weights={"system_impact": -1})


def test_the_demo_feed_runs_on_autopilot_until_a_lead_saves_a_policy() -> None:
    demo = default_policy(load_settings(_env_file=None, DEMO_FEED_ENABLED=True))
    assert demo.autopilot_on("demo", "product_howto") and not demo.autopilot_on("jira", None)
    assert not default_policy(load_settings(_env_file=None, DEMO_FEED_ENABLED=False)).autopilot_on("demo", None)
