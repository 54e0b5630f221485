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
    assert glossary.details({"changed": ["autopilot", "escalation_weights"]}) == (
        "changed: autopilot, escalation weights"
    )
    assert not any(glossary.INTERNAL_IDENTIFIERS.count(name) > 1 for name in glossary.INTERNAL_IDENTIFIERS)
