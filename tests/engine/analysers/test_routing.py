"""Learned routing: clear tickets go to the team that resolved their like, unclear ones stay with the first line."""

from __future__ import annotations

import csv
import logging
import pickle
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.analysers import routing
from engine.analysers.escalation import assess, rule_criteria
from engine.analysers.routing import (
    MODEL_FORMAT,
    RoutedOutcome,
    TeamModel,
    main,
    meaning_vectors,
    precise_threshold,
    routing_summary,
    routing_text,
    serve,
    store_model,
    suggest_team,
    ticket_text,
    train_routing,
)
from engine.core.analysis import TicketSnapshot
from engine.core.db import transaction
from engine.core.desk_policy import DeskPolicy
from engine.core.enums import TicketStatus
from engine.core.models import RoutingModel, Ticket
from engine.core.settings import Settings
from engine.operators.actions import assign, set_status
from kb.embed import LocalEmbedder
from tests.factories import desk_operators, resolved_ticket, routed_ticket, routing_history

ROOT = Path(__file__).resolve().parents[3]

CLEAR = {
    "Network": (
        "vpn tunnel drops",
        "Hello, vpn tunnel drops since this morning and firewall rule blocks. Regards, Sam",
    ),
    "Messaging": (
        "outlook mailbox full",
        "Hello, outlook mailbox full since this morning and shared mailbox missing. Regards, Sam",
    ),
}
"""Written as the history is: the threshold was validated on tickets like these, and holds for them."""
AMBIGUOUS = ("problem", "vpn tunnel drops, outlook mailbox full, password reset and how do i order")


@pytest.fixture(autouse=True)
def no_served_model() -> Iterator[None]:
    """The served model is process-wide: no test leaves one behind for the next."""
    serve(None)
    yield
    serve(None)


def snapshot(subject: str, description: str, category: str | None = None) -> TicketSnapshot:
    return TicketSnapshot(
        id=1,
        reference="TCKT-1",
        subject=subject,
        description=description,
        email="someone@customer.example",
        requester_name=None,
        source="servicenow",
        priority=None,
        category=category,
        team=None,
        follow_up_count=0,
    )


def fitted(per_team: int = 40) -> TeamModel:
    rows = routing_history(per_team)
    texts = [ticket_text(subject, description) for subject, description, _ in rows]
    return TeamModel(first_line="Service Desk", target_precision=0.85).fit(texts, [team for *_, team in rows])


def test_routes_clear_tickets_and_leaves_ambiguous_ones_with_the_first_line() -> None:
    model = fitted()
    for team, (subject, description) in CLEAR.items():
        suggestion = model.suggest(ticket_text(subject, description))
        assert suggestion.team == team, suggestion
        assert suggestion.probability >= model.threshold
        assert suggestion.specialist_probability > 0.5
    unclear = model.suggest(ticket_text(*AMBIGUOUS))
    assert unclear.team is None
    assert "first line" in unclear.reason
    first_line = model.suggest(ticket_text("how do i order", "general request: how do i order a new starter kit"))
    assert first_line.team is None
    assert first_line.specialist_probability < 0.5


def test_text_cleaning_drops_headers_signatures_and_repeated_subjects() -> None:
    text = routing_text(
        "Printer offline",
        "From: anna@corp.example\nSent: Monday\nPrinter offline\n\nThe printer on floor 3 is offline.\n\n"
        "Kind regards,\nAnna Example\nThis e-mail is confidential and intended only for the addressee.",
        "Anna Example",
    )
    assert text == "printer offline the printer on floor 0 is offline. caller_annaexample"


def test_the_sentence_embedding_reads_the_ticket_as_written_and_the_ngrams_its_cleaned_words() -> None:
    """The n-grams need the cleaned text (digits, addresses and the caller folded into tokens); the embedding reads
    the customer's own sentences, which routed better (engine/analysers/routing.py's MEANING_WEIGHT)."""
    subject, description = "VPN error 809", "Since Monday the VPN fails with error 809.\nKind regards,\nAnna"
    text = ticket_text(subject, description, "Anna")
    assert text.meaning == f"{subject}\n{description}"
    assert text.words == "vpn error 0 since monday the vpn fails with error 0. caller_anna"


def test_a_ticket_is_embedded_once_per_process_however_often_the_model_reads_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retraining embeds only the tickets it has not met: the history of a large desk is not embedded again every
    ROUTING_RETRAIN_AFTER tickets."""
    embedded: list[str] = []
    original = LocalEmbedder.embed_documents

    def counting(self: LocalEmbedder, texts: list[str]) -> np.ndarray:
        embedded.extend(texts)
        return original(self, texts)

    monkeypatch.setattr(LocalEmbedder, "embed_documents", counting)
    unique = uuid.uuid4().hex  # texts no other test in this process embedded before
    known = ticket_text(f"Printer jammed {unique}", "The printer on floor 2 shows a paper jam.")
    new = ticket_text(f"Printer jammed {unique}", "The printer on floor 3 shows a paper jam.")
    first = meaning_vectors([known, known])
    again = meaning_vectors([new, known])
    assert embedded == [known.meaning, new.meaning]
    assert np.array_equal(first[0], again[1]) and first.shape == (2, 384)
    assert meaning_vectors([]).shape == (0, 384)


def add_history(factory: sessionmaker[Session], rows: list[tuple[str, str, str]]) -> None:
    with transaction(factory) as session:
        for subject, description, team in rows:
            resolved_ticket(session, subject, description, team)


def stored_models(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(RoutingModel)) or 0


def test_job_trains_once_enough_history_resolved_and_retrains_as_more_resolves(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings = settings.model_copy(update={"ROUTING_MIN_HISTORY": 100, "ROUTING_RETRAIN_AFTER": 40})
    history = routing_history(60)
    add_history(session_factory, history[:80])
    assert train_routing(session_factory, settings) == {"trained": False, "model": None, "history": 0}
    with session_factory() as session:
        assert suggest_team(session, settings, ticket_text(*CLEAR["Network"])) is None

    add_history(session_factory, history[80:120])
    outcome = train_routing(session_factory, settings)
    assert outcome["trained"] and outcome["history"] == 120
    with session_factory() as session:
        assert suggest_team(session, settings, ticket_text(*CLEAR["Network"])).team == "Network"
        assert suggest_team(session, settings, ticket_text(*AMBIGUOUS)).team is None

    add_history(session_factory, history[120:150])
    assert train_routing(session_factory, settings)["trained"] is False  # 30 new < ROUTING_RETRAIN_AFTER
    add_history(session_factory, history[150:])
    outcome = train_routing(session_factory, settings)
    assert outcome["trained"] and outcome["history"] == 240
    with session_factory() as session:
        assert stored_models(session) == 2
        newest = session.scalar(select(RoutingModel).order_by(RoutingModel.id.desc()).limit(1))
        assert newest.history == 240 and set(newest.teams) == {
            "Network",
            "Identity & Access",
            "Messaging",
            "Service Desk",
        }


class _Planted:
    """What an attacker with write access to the database would store: unpickling it runs code."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (str(PLANTED_MARK),))


PLANTED_MARK = Path("/tmp") / "nts-routing-model-planted"


def test_a_stored_model_round_trips_and_a_planted_pickle_runs_no_code(
    session_factory: sessionmaker[Session], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    model = fitted()
    again = TeamModel.from_bytes(model.to_bytes())
    assert again.meaning_weight == model.meaning_weight > 0
    assert again.suggest(ticket_text(*CLEAR["Network"])) == model.suggest(ticket_text(*CLEAR["Network"]))
    PLANTED_MARK.unlink(missing_ok=True)
    with transaction(session_factory) as session:
        session.add(
            RoutingModel(
                history=1,
                first_line="x",
                teams=["x"],
                details={"format": MODEL_FORMAT},
                model=pickle.dumps(_Planted()),
            )
        )
    with session_factory() as session:
        assert suggest_team(session, settings, ticket_text(*CLEAR["Network"])) is None
    assert not PLANTED_MARK.exists()
    assert "refused, not served" in caplog.text


def test_a_model_of_an_older_format_waits_for_the_next_training_without_an_error(
    session_factory: sessionmaker[Session], settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """After an upgrade the stored model may lack what this version reads: not served, no error in the log."""
    caplog.set_level(logging.INFO)
    with transaction(session_factory) as session:
        session.add(
            RoutingModel(
                history=1,
                first_line="Service Desk",
                teams=["Network", "Service Desk"],
                details={"format": MODEL_FORMAT - 1},
                model=fitted().to_bytes(),
            )
        )
    with session_factory() as session:
        assert suggest_team(session, settings, ticket_text(*CLEAR["Network"])) is None
    assert "older format, not served" in caplog.text
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_assess_takes_the_learned_team_only_when_the_category_names_none() -> None:
    serve(fitted())
    policy = DeskPolicy()
    ticket = snapshot(*CLEAR["Network"])
    routed = assess(ticket, rule_criteria(ticket), policy)
    assert routed.team == "Network"
    assert routed.route is not None and routed.route.team == "Network" and "resolved tickets" in routed.route.reason

    unclear = snapshot(*AMBIGUOUS)
    assessment = assess(unclear, rule_criteria(unclear), policy)
    assert assessment.team is None and assessment.route is not None and assessment.route.team is None

    categorised = snapshot(*CLEAR["Network"], category="billing")
    by_category = assess(categorised, rule_criteria(categorised), policy)
    assert by_category.team == "Billing" and by_category.route is None


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Short description", "Description", "Caller", "Assignment group"])
        writer.writerows((subject, description, "caller one", team) for subject, description, team in rows)
    return path


def test_cli_evaluate_prints_the_metrics_and_the_coverage_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = write_csv(tmp_path / "train.csv", routing_history(30, seed=1))
    test = write_csv(tmp_path / "test.csv", [*routing_history(5, seed=2), ("vpn", "vpn tunnel drops", "")])
    assert main(["evaluate", "--train", str(train), "--test", str(test), "--first-line", "Service Desk"]) == 0
    printed = capsys.readouterr().out
    assert "20 tickets" in printed  # the row without an assignment group is skipped
    for label in ("accuracy", "macro-F1", "specialist AUROC", " 10%", "100%", "routed (abstaining"):
        assert label in printed


def test_the_engine_level_command_evaluates_as_the_hidden_benchmark_calls_it(tmp_path: Path) -> None:
    """`python -m engine.routing evaluate` in its own process, as a benchmark outside the test suite runs it."""
    train = write_csv(tmp_path / "train.csv", routing_history(30, seed=1))
    test = write_csv(tmp_path / "test.csv", routing_history(5, seed=2))
    command = [sys.executable, "-m", "engine.routing", "evaluate", "--train", str(train), "--test", str(test)]
    command += ["--first-line", "Service Desk"]
    finished = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600, check=False)
    assert finished.returncode == 0, finished.stderr
    assert "learned routing (first line Service Desk): 20 tickets" in finished.stdout
    assert "ConvergenceWarning" not in finished.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "engine.routing"], capture_output=True, text=True, cwd=ROOT, timeout=600, check=False
    )
    assert usage.returncode == 2 and "usage: python -m engine.routing" in usage.stderr


def test_cli_evaluate_names_a_missing_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("Title,Group\nvpn down,Network\n", encoding="utf-8")
    assert main(["evaluate", "--train", str(bad), "--test", str(bad)]) == 2
    assert "missing column(s) ['short description', 'description', 'assignment group']" in capsys.readouterr().err


def test_the_thresholds_are_chosen_on_the_newest_history_and_say_what_they_kept_there() -> None:
    model = fitted()
    assert model.validation["tickets"] == 32, "the newest fifth of 160 resolved tickets"
    assert model.validation["routed_precision"] is not None and model.validation["routed_precision"] >= 0.85
    assert model.validation["specialist_precision"] is not None and model.validation["specialist_precision"] >= 0.85
    assert 0 < model.specialist_threshold < 1
    assert model.validation["checked_tickets"] == 16, "the choice is checked on the newer half it did not see"
    assert model.validation["checked_routed_share"] is not None and model.validation["checked_routed_share"] > 0
    assert model.validation["checked_routed_precision"] is not None


def test_a_threshold_stops_where_precision_is_no_longer_surely_on_target_half_way_to_the_next_ticket() -> None:
    confidence = np.asarray([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    correct = np.asarray([True, True, True, True, True, False, False])
    threshold, share, precision = precise_threshold(confidence, correct, 0.8)
    # 5 of 5 right is 0.8 precise with 80 % confidence; 5 of 6 (0.83) is above the target, but not with confidence
    assert threshold == pytest.approx(0.45) and share == pytest.approx(5 / 7) and precision == pytest.approx(1.0)
    assert precise_threshold(confidence, ~correct, 0.8) == (float("inf"), 0.0, None)
    assert precise_threshold(confidence[:4], correct[:4], 0.8) == (float("inf"), 0.0, None), "fewer than 5 backing it"


def test_a_ticket_the_specialist_signal_flags_escalates_and_says_why() -> None:
    model = fitted()
    model.specialist_threshold = 0.5  # the validated one sits close to first-line tickets in 32 synthetic ones
    serve(model)
    policy = DeskPolicy()
    network = snapshot(*CLEAR["Network"])
    flagged = assess(network, rule_criteria(network), policy)
    assert flagged.escalate and any(reason.startswith("needs a specialist team") for reason in flagged.reasons)
    ordinary = snapshot("how do i order", "Hello, how do i order since this morning and general request. Regards, Sam")
    kept = assess(ordinary, rule_criteria(ordinary), policy)
    assert not any(reason.startswith("needs a specialist team") for reason in kept.reasons)


def test_a_rare_teams_tickets_that_read_alike_draw_their_like(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three old alerts of one form went to a small team: a fourth goes there too, and surer than on its words
    alone (its nearest past tickets vote for the team, and a rare team's scores are raised)."""
    rows = routing_history(40)
    alerts = [
        (f"event: critical host_{n} mountpoint", f"event: critical: host_{n} the value of mountpoint threshold is 9{n}")
        for n in range(3)
    ]
    rows[10:10] = [(subject, description, "Storage") for subject, description in alerts]
    texts, teams = [ticket_text(subject, description) for subject, description, _ in rows], [team for *_, team in rows]
    alert = ticket_text(
        "event: critical host_7 mountpoint", "event: critical: host_7 the value of mountpoint threshold"
    )

    def storage_probability() -> float:
        model = TeamModel(first_line="Service Desk", target_precision=0.85).fit(texts, teams)
        best, probabilities, _ = model.scored([alert])
        assert model.teams[best[0]] == "Storage"
        return float(probabilities[0, model.teams.index("Storage")])

    model = TeamModel(first_line="Service Desk", target_precision=0.85).fit(texts, teams)
    assert model.adjustment[model.teams.index("Storage")] > model.adjustment[model.teams.index("Service Desk")] == 0
    both = storage_probability()
    monkeypatch.setattr(routing, "LOGIT_ADJUSTMENT", 0.0)
    monkeypatch.setattr(routing, "NEIGHBOUR_WEIGHT", 0.0)
    assert storage_probability() < both


def test_what_routed_tickets_finished_with_since_the_model_was_learned(
    session_factory: sessionmaker[Session],
) -> None:
    """The precision routing actually got on the desk: of the finished tickets it escalated to a team, those still
    with that team when a person resolved or closed them; one a person moved to another team first counts against
    it, open ones and those routed before the served model was learned not at all."""
    person = desk_operators(session_factory)
    with transaction(session_factory) as session:
        older = routed_ticket(session, routed_to="Network")  # routed by an older model
    store_model(session_factory, fitted(), seconds=1.0)
    with transaction(session_factory) as session:
        kept = [routed_ticket(session, routed_to="Network") for _ in range(2)]
        moved = routed_ticket(session, routed_to="Messaging")
        still_open = routed_ticket(session, routed_to="Network")
        first_line = routed_ticket(session, routed_to=None)
    with transaction(session_factory) as session:
        assign(session, person, older, team="Messaging")
        assign(session, person, moved, team="Network")
        for ticket_id in (older, kept[0], moved, first_line):
            set_status(session, person, ticket_id, TicketStatus.RESOLVED)
        set_status(session, person, kept[1], TicketStatus.CLOSED)
    with session_factory() as session:
        summary = routing_summary(session)
        assert session.get(Ticket, still_open).status == TicketStatus.ESCALATED
    assert summary is not None and summary.since_trained == RoutedOutcome(finished=3, kept=2)
