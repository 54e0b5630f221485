"""The Settings page's routing lines: the target beside what the thresholds kept where they were chosen, on
tickets the choice never saw and on the desk's tickets since, each with how sure that figure is."""

from __future__ import annotations

from datetime import datetime

from engine.analysers.routing import RoutedOutcome, RoutingSummary
from ui.routing import routing_lines


def summary(validation: dict[str, float | None], since_trained: RoutedOutcome | None = None) -> RoutingSummary:
    return RoutingSummary(
        history=1_000,
        teams=12,
        trained_at=datetime(2026, 12, 7, 9, 0),
        target_precision=0.85,
        threshold=0.7,
        specialist_threshold=0.8,
        specialist_precision=0.95,
        validation=validation,
        since_trained=since_trained,
    )


CHOSEN = {
    "tickets": 200.0,
    "routed_share": 0.15,
    "routed_precision": 0.86,
    "specialist_share": 0.3,
    "specialist_precision": 0.96,
}


def test_the_check_on_tickets_the_choice_never_saw_stands_beside_the_target() -> None:
    shown = routing_lines(
        summary({**CHOSEN, "checked_tickets": 100.0, "checked_routed_share": 0.12, "checked_routed_precision": 0.83})
    )
    assert (
        "checked on the newest 200 of those tickets (held back while the threshold was chosen), 15% of them, "
        "right 86% of the time (90% interval 73–93%, 30 tickets)" in shown
    )
    assert (
        "a threshold chosen on the older 100 of them alone routed 12% of them, right 83% of the time (90% interval "
        "60–94%, 12 tickets) on the newest 100 (target 85%)" in shown
    )


def test_a_check_that_routed_nothing_says_so_and_an_older_model_shows_no_check() -> None:
    shown = routing_lines(
        summary({**CHOSEN, "checked_tickets": 100.0, "checked_routed_share": 0.0, "checked_routed_precision": None})
    )
    assert "alone routed none (no threshold reached the target on those tickets) on the newest 100" in shown
    assert "never saw" not in routing_lines(summary(CHOSEN))


def test_what_routed_tickets_finished_with_stands_beside_the_target() -> None:
    shown = routing_lines(summary(CHOSEN, RoutedOutcome(finished=400, kept=332)))
    assert (
        "On this desk since it was learned: of the 400 finished tickets it sent to a team on its own, 332 finished "
        "with that team, right 83% of the time (90% interval 80–86%, 400 tickets) (target 85%; a person moved the "
        "others)." in shown
    )
    assert "no ticket it sent to a team has finished yet" in routing_lines(summary(CHOSEN, RoutedOutcome(0, 0)))
