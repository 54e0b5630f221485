import pytest

from engine.analysers.escalation import Criteria, assess, information_quality, rule_criteria
from engine.core.desk_policy import DeskPolicy
from tests.factories import text_snapshot


def test_llm_scores_are_clamped_and_coerced() -> None:
    criteria = Criteria(
        code_change_complexity=14,
        new_feature_scope=-3,
        dev_team_involvement="seven",
        estimated_hours="12",
        system_impact="high",
        user_provided_info_quality=None,
    )
    assert criteria.model_dump() == {
        "code_change_complexity": 10.0,
        "new_feature_scope": 0.0,
        "dev_team_involvement": 0.0,
        "estimated_hours": 12.0,
        "system_impact": "High",
        "dependency_complexity": 0.0,
        "user_provided_info_quality": 0.0,
    }
    assert Criteria(system_impact="catastrophic").system_impact == "Medium"


def test_weighted_score_with_the_information_quality_penalty() -> None:
    criteria = Criteria(
        code_change_complexity=10,
        new_feature_scope=10,
        dev_team_involvement=10,
        estimated_hours=40,
        system_impact="High",
        dependency_complexity=10,
        user_provided_info_quality=2,
    )
    result = assess(text_snapshot("x"), criteria, DeskPolicy())
    assert result.raw_score == 100
    assert result.penalty == pytest.approx(0.10)
    assert result.weighted_score == 90
    assert result.escalate
    assert result.components["estimated_hours"] == {"score": 100.0, "weight": 0.2, "weighted": 20.0}
    assert sum(c["weighted"] for c in result.components.values()) == result.raw_score


def test_threshold_is_configurable_and_inclusive() -> None:
    criteria = Criteria(
        code_change_complexity=7,
        new_feature_scope=7,
        dev_team_involvement=7,
        estimated_hours=28,
        system_impact="Medium",
        dependency_complexity=7,
        user_provided_info_quality=8,
    )
    score = assess(text_snapshot("x"), criteria, DeskPolicy()).weighted_score
    assert not assess(text_snapshot("x"), criteria, DeskPolicy(escalation_threshold=score + 0.01)).escalate
    assert assess(text_snapshot("x"), criteria, DeskPolicy(escalation_threshold=score)).escalate


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"follow_up_count": 4}, "4 follow-ups, over the limit of 3"),
        (
            {"description": "This is unacceptable!!! Production is down and we are losing money"},
            "negative sentiment with urgency",
        ),
        ({"email": "cfo@contoso.example"}, "VIP requester"),
        ({"category": "security"}, "category security always goes to a person"),
    ],
)
def test_escalation_beyond_the_score(fields: dict[str, object], reason: str) -> None:
    policy = DeskPolicy(vip_requesters=["@contoso.example"] if fields.get("email") else [])
    result = assess(text_snapshot("How do I export a report?", **fields), Criteria(), policy)
    assert result.escalate
    assert reason in result.reasons


def test_rules_tell_an_outage_from_a_how_to() -> None:
    outage = rule_criteria(
        text_snapshot("502 Bad Gateway for all users since 9:00, nobody can log in to Northwind Cloud")
    )
    how_to = rule_criteria(text_snapshot("How do I export my report to CSV?"))
    assert outage.system_impact == "High"
    assert (
        assess(text_snapshot(""), outage, DeskPolicy()).weighted_score
        > assess(text_snapshot(""), how_to, DeskPolicy()).weighted_score
    )
    assert how_to.system_impact == "Low"


def test_information_quality_rewards_details() -> None:
    vague = information_quality("it doesn't work")
    detailed = information_quality(
        "Since this morning Outlook 2021 on my laptop shows error 'AUTH-401: token expired' when I open the shared "
        "mailbox. Steps: 1. open Outlook 2. click Finance mailbox. I tried restarting."
    )
    assert vague < 2 < 8 <= detailed
