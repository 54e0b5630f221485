"""The offline evaluation harness: tolerant loading, the metrics, and a real replay with nothing sent."""

import json
from pathlib import Path

import pytest

from engine.evaluate import Case, Outcome, load_cases, main, report

ARTICLES = Path(__file__).resolve().parent.parent.parent / "connectors" / "demo_data" / "kb"


def outcome(expected: str, decision: str, confidence: float, evidence: list[str], expected_evidence=()) -> Outcome:
    case = Case(
        id="x", subject="", body="", category="c", expected_action=expected, expected_evidence=tuple(expected_evidence)
    )
    return Outcome(case=case, decision=decision, confidence=confidence, blocked=False, evidence_titles=evidence)


def test_metrics_count_right_answers_and_out_of_scope() -> None:
    outcomes = [
        outcome("resolve", "resolve", 0.9, ["vpn.md", "wifi.md"], ["vpn"]),
        outcome("resolve", "resolve", 0.95, ["wifi.md", "vpn.md"], ["vpn"]),
        outcome("resolve", "escalate", 0.2, ["printer.md"], ["vpn"]),
        outcome("not_resolve", "resolve", 0.6, ["vpn.md"]),
        outcome("not_resolve", "escalate", 0.1, []),
    ]
    result = report(outcomes, dataset="t", analyser="a", threshold=0.85)
    assert result["decision_accuracy"] == 0.6
    assert result["hit_at_5"] == pytest.approx(2 / 3, abs=1e-4)
    assert (result["auto_sent"], result["auto_send_precision"], result["coverage"]) == (2, 0.5, 0.4)
    assert result["confusion_matrix"] == {
        "not_resolve": {"resolve": 1, "escalate": 1},
        "resolve": {"resolve": 2, "escalate": 1},
    }
    loosest = result["threshold_curve"][0]
    assert (loosest["threshold"], loosest["auto_sent"], loosest["auto_send_precision"]) == (0.0, 3, 0.3333)


def test_loading_is_tolerant(tmp_path: Path) -> None:
    csv_file = tmp_path / "history.csv"
    csv_file.write_text(
        "subject,description,expected_action,expected_evidence,unknown\n"
        "VPN,drops hourly,Resolve,vpn-setup|wifi,zzz\n"
        "Outage,all down,,,\n",
        encoding="utf-8",
    )
    cases = load_cases(csv_file)
    assert [(c.body, c.expected_action, c.expected_evidence) for c in cases] == [
        ("drops hourly", "resolve", ("vpn-setup", "wifi")),
        ("all down", "resolve", ()),
    ]
    jsonl = tmp_path / "history.jsonl"
    jsonl.write_text(json.dumps({"question": "How do I print?", "expected_action": "not_resolve"}) + "\n\n")
    assert load_cases(jsonl)[0].body == "How do I print?"


@pytest.mark.slow
def test_replay_against_a_scratch_knowledge_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from engine.settings import get_settings

    get_settings.cache_clear()
    dataset = tmp_path / "cases.jsonl"
    rows = [
        {
            "subject": "Inviting colleagues",
            "body": "How do I invite new users to our Northwind Cloud workspace?",
            "expected_action": "resolve",
            "expected_evidence": ["invite-users"],
            "category": "howto",
        },
        {
            "subject": "Cafeteria",
            "body": "What is on the lunch menu on Friday?",
            "expected_action": "not_resolve",
            "category": "out of scope",
        },
    ]
    dataset.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    out = tmp_path / "report.json"
    kb = [ARTICLES / "invite-users-northwind-cloud.md", ARTICLES / "vpn-setup.md"]
    assert main([str(dataset), "--kb", *map(str, kb), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    get_settings.cache_clear()
    assert result["cases"] == 2
    assert result["analyser"] == "retrieval-only"
    assert result["per_category"]["howto"]["hit_at_5"] == 1.0
    assert set(result["confusion_matrix"]) == {"resolve", "not_resolve"}
