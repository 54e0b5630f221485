"""Read models for the dashboard: why drafts wait, counted without their particulars."""

from engine.operators.queries import held_reason


def test_hold_reasons_are_counted_by_kind_not_by_their_particulars() -> None:
    assert held_reason("confidence 0.42 below 0.75") == "below confidence 0.75"
    assert held_reason("autopilot is off for jira/billing") == "autopilot off for jira"
    assert held_reason("guard: possible social engineering: access change (password, MFA)") == (
        "sensitive request: access change"
    )
    assert held_reason("guard: possible prompt injection: 'ignore all previous'") == "possible prompt injection"
    assert held_reason("input: attachment a.pdf could not be read (corrupt)") == "input a person should read"
    assert held_reason("taken over by ann") == "taken over by ann"
