"""The offline evaluation harness: tolerant loading, the metrics, and a real replay with nothing sent."""

import json
from pathlib import Path

import pytest

from engine.evaluate import Case, Outcome, calibration, load_cases, main, report

ARTICLES = Path(__file__).resolve().parent.parent.parent / "connectors" / "demo_data" / "kb"


def outcome(expected: str, decision: str, confidence: float, evidence: list[str], expected_evidence=()) -> Outcome:
    case = Case(
        id="x", subject="", body="", category="c", expected_action=expected, expected_evidence=tuple(expected_evidence)
    )
    return Outcome(case=case, decision=decision, confidence=confidence, blocked=False, evidence_names=evidence)


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
    assert (result["answerable_coverage"], result["unanswerable_sent"]) == (0.6667, 0)
    loosest = result["threshold_curve"][0]
    assert (loosest["threshold"], loosest["auto_sent"], loosest["auto_send_precision"]) == (0.0, 3, 0.3333)
    assert (loosest["answerable_coverage"], loosest["unanswerable_sent"]) == (0.6667, 1)
    assert [(case["decision"], case["confidence"]) for case in result["per_case"]] == [
        ("resolve", 0.9),
        ("resolve", 0.95),
        ("escalate", 0.2),
        ("resolve", 0.6),
        ("escalate", 0.1),
    ]


def test_each_case_keeps_its_analyser_latency_and_error() -> None:
    """What a benchmark of a model needs per ticket: whether the model answered, how long it took, what failed."""
    fell_back = Outcome(
        case=Case(id="t-1", subject="", body="", category="c", expected_action="resolve"),
        decision="escalate",
        confidence=0.3,
        blocked=False,
        analyser="openai (fallback: retrieval-only)",
        latency_ms=2500,
        error="APITimeoutError: Request timed out.",
        stated_confidence=None,
    )
    [case] = report([fell_back], dataset="t", analyser="openai", threshold=0.85)["per_case"]
    assert case == {
        "id": "t-1",
        "decision": "escalate",
        "confidence": 0.3,
        "analyser": "openai (fallback: retrieval-only)",
        "latency_ms": 2500,
        "error": "APITimeoutError: Request timed out.",
        "stated_confidence": None,
    }


def test_expected_calibration_error_and_reliability_table() -> None:
    """Confidence 0.95 right twice: gap 0.05; confidence 0.15, right once in two: gap 0.35; ECE is their mean."""
    outcomes = [
        outcome("resolve", "resolve", 0.95, ["vpn.md"], ["vpn"]),
        outcome("resolve", "resolve", 0.95, ["vpn.md"], ["vpn"]),
        outcome("resolve", "escalate", 0.15, ["vpn.md"], ["vpn"]),
        outcome("not_resolve", "escalate", 0.15, ["vpn.md"]),
        outcome("resolve", "resolve", 1.0, ["wifi.md"], ["vpn"]),
    ]
    result = calibration(outcomes[:4])
    assert result["expected_calibration_error"] == pytest.approx(0.2)
    rows = {row["bin"]: row for row in result["reliability"]}
    assert rows["0.9-1.0"] == {"bin": "0.9-1.0", "cases": 2, "mean_confidence": 0.95, "accuracy": 1.0}
    assert rows["0.1-0.2"]["accuracy"] == 0.5 and rows["0.5-0.6"]["cases"] == 0
    assert len(result["reliability"]) == 10
    overconfident = calibration(outcomes[4:])
    assert overconfident["expected_calibration_error"] == 1.0, "a confidence of 1 in the wrong passage"
    assert calibration([])["expected_calibration_error"] is None


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
    from engine.core.settings import get_settings

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
