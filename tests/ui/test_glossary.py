import re
from pathlib import Path

from engine.core.desk_policy import SEED_WEIGHTS
from engine.core.enums import ActionKind, OutboxState, TicketStatus
from ui import glossary

ROOT = Path(__file__).resolve().parents[2]
RECORDED = re.compile(r'record_event\(\s*\w+,\s*\w+,\s*"([a-z_]+)"(?:\s+if\s+\w+\s+else\s+"([a-z_]+)")?')


def test_every_status_kind_delivery_state_and_criterion_has_words() -> None:
    assert set(glossary.STATUS) == set(TicketStatus)
    assert set(glossary.DRAFT_KIND) == set(ActionKind)
    assert set(glossary.DELIVERY) == set(OutboxState)
    assert set(SEED_WEIGHTS) <= set(glossary.CRITERION)


def test_every_event_the_engine_records_has_words() -> None:
    recorded = set()
    for path in [*(ROOT / "engine").rglob("*.py"), *(ROOT / "kb").rglob("*.py")]:
        for match in RECORDED.finditer(path.read_text(encoding="utf-8")):
            recorded.update(name for name in match.groups() if name)
    assert recorded and recorded <= set(glossary.EVENT), recorded - set(glossary.EVENT)


def test_engine_sentences_and_audit_details_read_in_words() -> None:
    assert glossary.words("Proposed propose_resolution (v1)") == "Proposed resolution draft (v1)"
    assert glossary.words("Status AwaitingApproval → InProgress") == "Status awaiting approval → in progress (owned)"
    assert glossary.words("manual_reply sent to a@x.example, cc b@x.example, with 2 attachments via smtp") == (
        "reply sent to a@x.example, cc b@x.example, with 2 attachments via smtp"
    )
    assert glossary.words("request_info queued for a@x.example") == "request for information queued for a@x.example"
    assert glossary.details({"changed": ["autopilot", "escalation_weights"]}) == (
        "changed: autopilot, escalation weights"
    )
    assert not any(glossary.INTERNAL_IDENTIFIERS.count(name) > 1 for name in glossary.INTERNAL_IDENTIFIERS)


def test_stored_values_read_without_python_literals() -> None:
    job = {"job": "deliver_outbox", "ok": True, "last_error": None, "cpu_percent": 12.345}
    assert glossary.value([job]) == "job deliver outbox; working yes; processor in use (%) 12.35"
    assert glossary.value(None) == "—" and glossary.value([]) == "none" and glossary.value(float("nan")) == "—"
    assert glossary.details({"location": {"section": "VPN", "page": None}, "team": None}) == "location: section VPN"
    assert glossary.details(
        {"changed": ["auto_send_min_confidence"], "changes": {"auto_send_min_confidence": [0.75, 0.8]}}
    ) == ("auto-send minimum confidence: 0.75 → 0.8")
    assert (glossary.actor("source:demo"), glossary.actor("operator:lee"), glossary.actor(None)) == (
        "Demo feed",
        "lee",
        "—",
    )
    assert glossary.words("Status Analyzing → New") == "Status analysing → New"
    assert (glossary.plural(1, "ticket"), glossary.plural(1200, "ticket")) == ("1 ticket", "1,200 tickets")


def test_confidence_reads_as_the_auto_send_check_compares_it() -> None:
    assert (glossary.confidence(0.749), glossary.confidence(0.75), glossary.confidence(0.29)) == ("74%", "75%", "29%")
    assert glossary.confidence(None) == "—"


def test_audit_targets_name_the_ticket_and_sign_outs_read_as_such() -> None:
    assert glossary.audit_target("action", "62", {"ticket": 7}) == "TCKT-7"
    assert glossary.audit_target("desk_policy", "2", {}) == "policy version 2"
    assert glossary.audit_target("operator", "3", {"of": "lee"}) == "operator lee"
    assert glossary.audit_action("session_ended", {"reason": "signed_out"}) == "signed out"
    assert glossary.audit_action("session_ended", {"reason": "idle"}) == "ended a session"
