"""Routing learned from history: which team a ticket belongs to, and whether it needs a specialist at all.

Connectors (ServiceNow, Jira, e-mail) deliver tickets without the desk's categories, so a category → team map
routes nothing. This model learns subject + description + caller → the team a person finally resolved the
ticket under, with calibrated probabilities. It routes only above a threshold chosen on out-of-fold predictions
for a target precision; below it the ticket stays with the first-line queue (DEFAULT_TEAM). The newest model
lives in the database (`routing_models`), so every engine replica serves the same one.

CLI: `python -m engine.analysers.routing evaluate --train TRAIN.csv --test TEST.csv` and `python -m
engine.analysers.routing train`.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.db import transaction
from engine.core.enums import TicketStatus
from engine.core.models import RoutingModel, Ticket
from engine.core.settings import Settings

log = logging.getLogger(__name__)

MIN_TEAM_EXAMPLES = 3
"""A team with fewer resolved tickets is too rare to learn (and to calibrate with 3 folds): never routed to."""
FOLDS = 3
MIN_ROUTED = 5
"""The threshold must be backed by at least this many out-of-fold routed tickets, or the model never routes."""
KEPT_MODELS = 3
CLASS_WEIGHT_POWER = 0.5
"""Sample weight (largest team / team)^power: rare teams count more without drowning the first line."""

HEADER_LINE = re.compile(
    r"^\s*(from|to|cc|bcc|sent|subject|date|importance|reply-to|von|an|gesendet|betreff)\s*:.*$", re.I | re.M
)
SIGNATURE = re.compile(
    r"^\s*(--\s*$|best regards|kind regards|regards,|thanks (and|&) regards|mit freundlichen grüßen|"
    r"viele grüße|freundliche grüße|sent from my)",
    re.I | re.M,
)
DISCLAIMER = re.compile(
    r"(this (e-?mail|message|communication)[^.]{0,80}(confidential|intended (only|solely))|"
    r"the information (contained )?in this (e-?mail|message)|diese e-?mail (enthält|ist) vertraulich)",
    re.I,
)
ADDRESS = re.compile(r"[\w.+-]+@([\w-]+)(\.[\w.-]+)?")
DIGITS = re.compile(r"\d+")
SPACES = re.compile(r"\s+")


def routing_text(subject: str, description: str, caller: str = "") -> str:
    """The text the model reads: one copy of a repeated subject, no mail headers, signatures or disclaimers."""
    subject, description = (subject or "").strip(), (description or "").strip()
    text = description if subject.lower() in description.lower() else f"{subject}\n{description}"
    text = HEADER_LINE.sub(" ", text)
    for cut in (SIGNATURE, DISCLAIMER):
        found = cut.search(text)
        if found and found.start() > 20:
            text = text[: found.start()]
    text = ADDRESS.sub(lambda match: f" mail_{match.group(1).lower()} ", text)
    text = SPACES.sub(" ", DIGITS.sub("0", text)).strip().lower()
    caller_token = re.sub(r"\W", "", (caller or "").lower())
    return f"{text} caller_{caller_token}" if caller_token else text


@dataclass(frozen=True)
class RouteSuggestion:
    """A team only when the model is confident enough; otherwise None and the first-line queue keeps it."""

    team: str | None
    probability: float
    specialist_probability: float
    reason: str


class TeamModel:
    """TF-IDF word + character n-grams and a class-weighted linear SVM that picks the team, with per-team
    sigmoid (Platt) calibration fitted on out-of-fold SVM scores, so the probability means what it says."""

    def __init__(self, *, first_line: str, target_precision: float) -> None:
        self.first_line = first_line
        self.target_precision = target_precision
        self.threshold = float("inf")
        self.history = 0
        self.features: Any = None
        self.svm: Any = None
        self.calibration = np.zeros((0, 2))

    def to_bytes(self) -> bytes:
        """The model as skops data, never pickle: loading it can only build scikit-learn and numpy objects."""
        import skops.io

        return skops.io.dumps(dict(vars(self)))

    @classmethod
    def from_bytes(cls, data: bytes) -> TeamModel:
        """A model `to_bytes` wrote; raises on anything else, and on any type skops does not trust by default
        (whoever can write the database must not be able to run code on every engine)."""
        import skops.io

        state = skops.io.loads(data, trusted=[])
        model = cls(first_line=str(state["first_line"]), target_precision=float(state["target_precision"]))
        model.threshold, model.history = float(state["threshold"]), int(state["history"])
        model.features, model.svm, model.calibration = state["features"], state["svm"], state["calibration"]
        return model

    @property
    def teams(self) -> list[str]:
        return [str(team) for team in self.svm.classes_]

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> TeamModel:
        """Learn from `texts` → `labels`; calibrate and choose the routing threshold on out-of-fold scores."""
        from sklearn.model_selection import StratifiedKFold, cross_val_predict
        from sklearn.svm import LinearSVC

        counts = Counter(labels)
        keep = [index for index, label in enumerate(labels) if counts[label] >= MIN_TEAM_EXAMPLES]
        kept = np.asarray([labels[index] for index in keep], dtype=object)
        if len(set(kept)) < 2 or self.first_line not in set(kept):
            raise ValueError(
                f"routing needs at least two teams with {MIN_TEAM_EXAMPLES}+ resolved tickets, one of them the "
                f"first line ({self.first_line!r}); got {dict(counts.most_common(5))}"
            )
        self.history = len(labels)
        self.features = _features()
        matrix = self.features.fit_transform([texts[index] for index in keep])
        weights = _sample_weights(kept)
        folds = StratifiedKFold(FOLDS, shuffle=True, random_state=0)
        held_out = _two_columns(
            cross_val_predict(
                LinearSVC(), matrix, kept, cv=folds, method="decision_function", params={"sample_weight": weights}
            )
        )
        self.svm = LinearSVC().fit(matrix, kept, sample_weight=weights)
        self.svm.coef_ = self.svm.coef_.astype(np.float32)  # half the stored size; scores unchanged in practice
        classes = self.svm.classes_
        self.calibration = np.asarray([_platt(held_out[:, k], kept == team) for k, team in enumerate(classes)])
        self.threshold = routing_threshold(
            held_out.argmax(axis=1), self._calibrated(held_out), kept, classes, self.first_line, self.target_precision
        )
        return self

    def scores(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Each text's best team (index into `teams`) and its calibrated probability for every team."""
        decision = _two_columns(self.svm.decision_function(self.features.transform(list(texts))))
        return decision.argmax(axis=1), self._calibrated(decision)

    def _calibrated(self, decision: np.ndarray) -> np.ndarray:
        probabilities = 1.0 / (1.0 + np.exp(-(decision * self.calibration[:, 0] + self.calibration[:, 1])))
        total = probabilities.sum(axis=1, keepdims=True)
        return np.divide(probabilities, total, out=np.full_like(probabilities, 1 / decision.shape[1]), where=total > 0)

    def suggest(self, text: str) -> RouteSuggestion:
        return self.suggestions([text])[0]

    def suggestions(self, texts: Sequence[str]) -> list[RouteSuggestion]:
        teams = self.teams
        first = teams.index(self.first_line)
        best, probabilities = self.scores(texts)
        result = []
        for index, row in zip(best, probabilities, strict=True):
            probability, needs_specialist = round(float(row[index]), 3), round(1.0 - float(row[first]), 3)
            if index == first:
                reason = f"first line: specialist probability {needs_specialist:.2f}"
            elif probability >= self.threshold:
                reason = f"learned from {self.history:,} resolved tickets"
                result.append(RouteSuggestion(teams[index], probability, needs_specialist, reason))
                continue
            else:
                reason = (
                    f"first line: best guess {teams[index]} at {probability:.2f} is below the routing threshold "
                    f"{self.threshold:.2f}"
                )
            result.append(RouteSuggestion(None, probability, needs_specialist, reason))
        return result


def _features() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_union

    return make_union(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=40_000, dtype=np.float32),
        TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True, min_df=2, max_features=60_000, dtype=np.float32
        ),
    )


def _sample_weights(labels: np.ndarray) -> np.ndarray:
    counts = Counter(labels)
    largest = max(counts.values())
    return np.asarray([(largest / counts[label]) ** CLASS_WEIGHT_POWER for label in labels])


def _two_columns(decision: np.ndarray) -> np.ndarray:
    """A two-team SVM scores one column (the second team); give each team its own, like the multi-team case."""
    return np.column_stack([-decision, decision]) if decision.ndim == 1 else decision


def _platt(score: np.ndarray, is_team: np.ndarray) -> tuple[float, float]:
    """Slope and intercept mapping one team's SVM score to the probability it is that team."""
    from sklearn.linear_model import LogisticRegression

    fitted = LogisticRegression(C=1e4).fit(score.reshape(-1, 1), is_team)
    return float(fitted.coef_[0, 0]), float(fitted.intercept_[0])


def routing_threshold(
    best: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, classes: np.ndarray, first_line: str, target: float
) -> float:
    """The lowest probability at which routed tickets (best guess not the first line) are still `target` precise."""
    confidence = probabilities[np.arange(len(best)), best]
    routed = classes[best] != first_line
    order = np.argsort(-confidence[routed], kind="stable")
    correct = (classes[best][routed] == labels[routed])[order]
    if len(correct) < MIN_ROUTED:
        return float("inf")
    precision = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    good = np.flatnonzero(precision[MIN_ROUTED - 1 :] >= target)
    if not len(good):
        return float("inf")
    return float(confidence[routed][order][good[-1] + MIN_ROUTED - 1])


# --- evaluation ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingScores:
    """What a router said about each ticket: its team, how sure (for coverage), how likely a specialist."""

    predicted: list[str]
    confidence: np.ndarray
    specialist: np.ndarray
    routed: list[bool]


def model_scores(model: TeamModel, texts: Sequence[str]) -> RoutingScores:
    teams = np.asarray(model.teams, dtype=object)
    best, probabilities = model.scores(texts)
    suggestions = model.suggestions(texts)
    return RoutingScores(
        predicted=list(teams[best]),
        confidence=probabilities[np.arange(len(best)), best],
        specialist=np.asarray([suggestion.specialist_probability for suggestion in suggestions]),
        routed=[suggestion.team is not None for suggestion in suggestions],
    )


COVERAGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def routing_report(labels: Sequence[str], scores: RoutingScores, first_line: str) -> dict[str, Any]:
    """Accuracy, macro-F1, specialist AUROC, precision at each coverage, and the abstaining operating point."""
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

    truth = np.asarray(labels, dtype=object)
    predicted = np.asarray(scores.predicted, dtype=object)
    needs_specialist = truth != first_line
    auroc = (
        float(roc_auc_score(needs_specialist, scores.specialist)) if 0 < needs_specialist.sum() < len(truth) else None
    )
    order = np.argsort(-scores.confidence, kind="stable")
    correct = (predicted == truth)[order]
    at_coverage = {coverage: float(correct[: max(1, round(coverage * len(correct)))].mean()) for coverage in COVERAGES}
    routed = np.asarray(scores.routed, dtype=bool)
    return {
        "tickets": len(truth),
        "accuracy": float(accuracy_score(truth, predicted)),
        "macro_f1": float(f1_score(truth, predicted, average="macro", zero_division=0)),
        "specialist_auroc": auroc,
        "precision_at_coverage": at_coverage,
        "routed_share": float(routed.mean()) if len(routed) else 0.0,
        "routed_precision": float((predicted[routed] == truth[routed]).mean()) if routed.any() else None,
        "specialists_routed": float(routed[needs_specialist].mean()) if needs_specialist.any() else None,
    }


def format_report(name: str, report: dict[str, Any]) -> str:
    def number(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    lines = [
        f"{name}: {report['tickets']} tickets",
        f"  accuracy          {number(report['accuracy'])}",
        f"  macro-F1          {number(report['macro_f1'])}",
        f"  specialist AUROC  {number(report['specialist_auroc'])}",
        "  coverage → precision (most confident first)",
        *(f"    {coverage:>4.0%}  {precision:.3f}" for coverage, precision in report["precision_at_coverage"].items()),
    ]
    if "routed_share" in report:
        lines.append(
            f"  routed (abstaining below the threshold): {report['routed_share']:.1%} of tickets, precision "
            f"{number(report['routed_precision'])}, {number(report['specialists_routed'])} of specialist tickets"
        )
    return "\n".join(lines)


# --- CSV history -----------------------------------------------------------------------------------------

COLUMNS = {"subject": "short description", "description": "description", "caller": "caller", "team": "assignment group"}


def read_tickets(path: Path) -> tuple[list[str], list[str]]:
    """Texts and teams from an ITSM export; rows without a team are skipped and counted in the log."""
    import pandas as pd

    frame = None
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            frame = pd.read_csv(path, dtype=str, encoding=encoding, on_bad_lines="warn", keep_default_na=False)
            break
        except UnicodeDecodeError:
            continue
    if frame is None:
        raise ValueError(f"{path}: not readable as UTF-8, cp1252 or latin-1 CSV")
    by_name = {str(column).strip().lower(): column for column in frame.columns}
    missing = [wanted for key, wanted in COLUMNS.items() if wanted not in by_name and key != "caller"]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}")
    column = {key: by_name.get(wanted) for key, wanted in COLUMNS.items()}
    texts, teams, skipped = [], [], 0
    for row in frame.to_dict("records"):
        team = str(row[column["team"]]).strip()
        if not team:
            skipped += 1
            continue
        caller = str(row[column["caller"]]) if column["caller"] else ""
        texts.append(routing_text(str(row[column["subject"]]), str(row[column["description"]]), caller))
        teams.append(team)
    if skipped:
        log.warning("%s: %d row(s) without an assignment group skipped", path, skipped)
    return texts, teams


def evaluate_files(
    train: Path, test: Path, *, first_line: str | None = None, target_precision: float = 0.85
) -> dict[str, Any]:
    """Train on one CSV, score another: the `evaluate` command and bench/routing.py share this path."""
    train_texts, train_teams = read_tickets(train)
    test_texts, test_teams = read_tickets(test)
    first_line = first_line or Counter(train_teams).most_common(1)[0][0]
    began = time.perf_counter()
    model = TeamModel(first_line=first_line, target_precision=target_precision).fit(train_texts, train_teams)
    trained = time.perf_counter() - began
    began = time.perf_counter()
    scores = model_scores(model, test_texts)
    predicted = time.perf_counter() - began
    report = routing_report(test_teams, scores, first_line)
    return {
        **report,
        "first_line": first_line,
        "threshold": model.threshold,
        "train_seconds": trained,
        "latency_ms": predicted / max(1, len(test_texts)) * 1000,
    }


# --- the desk's own model ------------------------------------------------------------------------------

FINISHED = (TicketStatus.RESOLVED, TicketStatus.CLOSED)


def resolved_history(session: Session, settings: Settings) -> tuple[list[str], list[str]]:
    """Resolved tickets and the team they finished under.

    The team counts when a person decided it (an operator touched the ticket, so its final team is a person's
    choice or confirmation) or the source's record did (history with an assignment group); a ticket the engine
    resolved alone was first-line work. The engine's own unconfirmed routing is never learned back, so a wrong
    route cannot teach itself. History without a team says nothing about routing and is left out.
    """
    rows = session.execute(
        select(
            Ticket.subject,
            Ticket.description,
            Ticket.email,
            Ticket.team,
            Ticket.human_touched_at,
            Ticket.additional_info,
        )
        .where(Ticket.status.in_(FINISHED))
        .order_by(Ticket.id)
    ).all()
    texts, teams = [], []
    for subject, description, email, team, touched, info in rows:
        from_source = bool((info or {}).get("history"))
        if from_source and not team:
            continue
        decided = from_source or touched is not None
        texts.append(routing_text(subject, description, email))
        teams.append(team if decided and team else settings.DEFAULT_TEAM)
    return texts, teams


def count_resolved(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Ticket).where(Ticket.status.in_(FINISHED))) or 0


def latest_model_row(session: Session) -> RoutingModel | None:
    return session.scalar(select(RoutingModel).order_by(RoutingModel.id.desc()).limit(1))


def retrain_due(session: Session, settings: Settings) -> bool:
    """Enough history and none learned yet, or enough newly resolved tickets since the stored model."""
    resolved = count_resolved(session)
    if resolved < settings.ROUTING_MIN_HISTORY:
        return False
    history = session.scalar(select(RoutingModel.history).order_by(RoutingModel.id.desc()).limit(1))
    return history is None or resolved - history >= settings.ROUTING_RETRAIN_AFTER


def train_routing(factory: sessionmaker[Session], settings: Settings, *, force: bool = False) -> dict[str, Any]:
    """The engine job: retrain when due (or `force`d with enough history), store the model for every replica,
    and serve the newest one in this process."""
    with factory() as session:
        due = retrain_due(session, settings) or (force and count_resolved(session) >= settings.ROUTING_MIN_HISTORY)
        history = resolved_history(session, settings) if due else None
    trained = None
    if history is not None:
        texts, teams = history
        began = time.perf_counter()
        try:
            model = TeamModel(first_line=settings.DEFAULT_TEAM, target_precision=settings.ROUTING_TARGET_PRECISION)
            model.fit(texts, teams)
        except ValueError as error:
            log.warning("routing model not trained from %d resolved tickets: %s", len(texts), error)
            model = None
        if model is not None:
            trained = store_model(factory, model, seconds=time.perf_counter() - began)
    served = refresh_router(factory)
    return {"trained": trained is not None, "model": served, "history": active_history()}


def store_model(factory: sessionmaker[Session], model: TeamModel, *, seconds: float) -> int:
    """Save `model` as the newest row and drop all but the last few."""
    with transaction(factory) as session:
        row = RoutingModel(
            history=model.history,
            first_line=model.first_line,
            threshold=model.threshold if np.isfinite(model.threshold) else None,
            teams=model.teams,
            details={"train_seconds": round(seconds, 1), "target_precision": model.target_precision},
            model=model.to_bytes(),
        )
        session.add(row)
        session.flush()
        stale = select(RoutingModel.id).order_by(RoutingModel.id.desc()).offset(KEPT_MODELS)
        session.execute(delete(RoutingModel).where(RoutingModel.id.in_(stale.scalar_subquery())))
        log.info(
            "routing model %d learned from %d resolved tickets, %d teams, threshold %s, %.1f s",
            row.id,
            model.history,
            len(model.teams),
            row.threshold,
            seconds,
        )
        return row.id


@dataclass
class _Served:
    row_id: int | None = None
    model: TeamModel | None = None


_served = _Served()
"""The model this process serves. The job refreshes it from the database, so all replicas serve the newest row."""


def refresh_router(factory: sessionmaker[Session]) -> int | None:
    with factory() as session:
        return _load_newest(session)


def _load_newest(session: Session) -> int | None:
    """Serve the newest stored model (none when the database holds none); a row that does not load as a model
    is logged once and not served: the desk routes by its category map and first line until the next training."""
    newest = session.scalar(select(func.max(RoutingModel.id)))
    if newest != _served.row_id:
        row = session.get(RoutingModel, newest) if newest is not None else None
        serve(_readable(row), row_id=newest)
    return newest


def _readable(row: RoutingModel | None) -> TeamModel | None:
    if row is None:
        return None
    try:
        return TeamModel.from_bytes(row.model)
    except Exception as error:  # tampered with, or not ours: refused, never executed
        log.error("routing model %d refused, not served: %s: %s", row.id, type(error).__name__, error)
        return None


def serve(model: TeamModel | None, *, row_id: int | None = None) -> None:
    _served.model, _served.row_id = model, row_id


def active_history() -> int:
    return _served.model.history if _served.model is not None else 0


def suggest_team(session: Session, settings: Settings, text: str) -> RouteSuggestion | None:
    """What the newest stored model says about `text` (already `routing_text`); None without a model."""
    if not settings.ROUTING_ENABLED:
        return None
    _load_newest(session)
    return served_suggestion(text)


def served_suggestion(text: str) -> RouteSuggestion | None:
    """The served model's suggestion, without touching the database: what escalation scoring asks."""
    model = _served.model
    if model is None:
        return None
    try:
        return model.suggest(text)
    except Exception:  # a broken model must not stop the desk; the category map and the first line still work
        log.exception("routing model failed; ticket left to the first line")
        return None


def suggestion_record(suggestion: RouteSuggestion | None) -> dict[str, Any] | None:
    return asdict(suggestion) if suggestion is not None else None


# --- CLI -----------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.analysers.routing", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    evaluate = commands.add_parser("evaluate", help="train on one CSV, report on another")
    evaluate.add_argument("--train", type=Path, required=True)
    evaluate.add_argument("--test", type=Path, required=True)
    evaluate.add_argument("--first-line", help="the first-line team (default: the most frequent in --train)")
    evaluate.add_argument("--target-precision", type=float, default=0.85)
    commands.add_parser("train", help="train from the desk's resolved tickets now and store the model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if args.command == "evaluate":
        try:
            report = evaluate_files(
                args.train, args.test, first_line=args.first_line, target_precision=args.target_precision
            )
        except (OSError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(format_report(f"learned routing (first line {report['first_line']})", report))
        print(
            f"  threshold {report['threshold']:.3f}, training {report['train_seconds']:.1f} s, "
            f"{report['latency_ms']:.2f} ms per ticket"
        )
        return 0
    from engine.core.db import make_engine, make_session_factory, upgrade_database
    from engine.core.settings import load_settings

    settings = load_settings()
    engine = make_engine(settings.database_url)
    upgrade_database(engine)
    outcome = train_routing(make_session_factory(engine), settings, force=True)
    if not outcome["trained"]:
        print(
            f"nothing trained: fewer than ROUTING_MIN_HISTORY={settings.ROUTING_MIN_HISTORY} resolved tickets "
            "or fewer than two teams to tell apart (see the log)"
        )
        return 1
    print(f"routing model {outcome['model']} learned from {outcome['history']:,} resolved tickets")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
