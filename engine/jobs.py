"""The engine's jobs as plain functions a scheduler, a CLI or a test can call, and their run records."""

from __future__ import annotations

import logging
import time
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, exists, literal, or_, select
from sqlalchemy.orm import Session, sessionmaker

from connectors import registry
from connectors.base import TicketSource
from connectors.http import CircuitOpenError, ConnectorError, breaker_for
from connectors.redaction import redact_url_credentials
from engine.analysers.confidence import answered_questions, judged_drafts, operator_verdicts
from engine.core.db import exclusive, transaction
from engine.core.models import IngestError, JobStatus, KbChunk, KbDocument, SourceCursor, Ticket, utcnow
from engine.core.settings import Settings
from engine.delivery.delivery_events import record_returned_mail
from engine.intake.ingest import ingest
from engine.ops.failpoints import failpoint
from engine.ops.observability import observe_job, observe_poll
from engine.outcomes.teaching import index_resolved_tickets, learned_questions, reteach_tickets
from engine.readiness import seed_marker
from kb.calibration import Calibration, needs_calibration
from kb.confidence import Verdict
from kb.indexer import Progress, add_document, index_pending_documents, reindex_all, repair_indexes
from kb.self_test import calibrate, rescale_on_verdicts

log = logging.getLogger(__name__)


@observe_poll
def poll_source(
    engine: Engine, factory: sessionmaker[Session], settings: Settings, source: TicketSource
) -> dict[str, int]:
    """Fetch what changed at `source` and ingest it, page by page, moving the cursor with each committed page.

    A bad item is kept whole in `ingest_errors` and the rest of the page goes on.
    """
    counts: Counter[str] = Counter()
    # Each poll is the half-open trial of a paused source, so polling resumes within one interval of its return.
    breaker_for(source.name).probe()
    with exclusive(engine, f"poll:{source.name}") as acquired:
        if not acquired:
            return {"skipped": 1}
        with factory() as session:
            stored = session.get(SourceCursor, source.name)
            cursor = stored.cursor if stored else None
        for page in source.poll(cursor):
            with transaction(factory) as session:
                for item in page.items:
                    try:
                        with session.begin_nested():
                            counts[record_returned_mail(session, item) or ingest(session, item, settings).outcome] += 1
                    except Exception as error:
                        log.exception("could not ingest %s/%s", source.name, item.external_id)
                        session.add(
                            IngestError(
                                source=source.name,
                                external_id=item.external_id,
                                error=redact_url_credentials(f"{type(error).__name__}: {error}")[:4000],
                                payload=item.model_dump_json(exclude={"attachments"}),
                            )
                        )
                        counts["errors"] += 1
                for rejected in page.rejected:
                    log.error("rejected item from %s: %s", source.name, rejected.error)
                    session.add(
                        IngestError(
                            source=source.name,
                            external_id=rejected.external_id,
                            error=redact_url_credentials(rejected.error),
                            payload=rejected.payload,
                        )
                    )
                    counts["errors"] += 1
                if page.cursor is not None:
                    session.merge(SourceCursor(source=source.name, cursor=page.cursor, updated_at=utcnow()))
                failpoint("poll.before_commit")
            failpoint("poll.after_commit")
    return dict(counts)


_failing: dict[str, int] = {}
"""Job name → failed runs in a row in this process, so an outage is told once, not every few seconds."""
last_errors: dict[str, str] = {}
"""Job name → the error of its latest run in this process, when it failed (what `engine run --once` reports)."""


def _paused(error: Exception) -> bool:
    """The failure of a connector whose breaker is open: the breaker said so once, and says when it closes."""
    if isinstance(error, CircuitOpenError):
        return True
    return isinstance(error, ConnectorError) and breaker_for(error.connector).state != "closed"


def run_job(factory: sessionmaker[Session], worker: str, name: str, job: Callable[[], Any]) -> Any:
    """Run one job and record how it went, for the status panel and `engine health`; URL credentials removed.

    The first failure in a row is logged with its traceback, later ones as one line, and none while the
    connector's breaker is open; the first success after failures says so once.
    """
    started = utcnow()
    began = time.perf_counter()
    error: str | None = None
    result: Any = None
    try:
        result = job()
    except Exception as exc:
        error = redact_url_credentials(f"{type(exc).__name__}: {exc}")
        in_a_row = _failing[name] = _failing.get(name, 0) + 1
        if in_a_row == 1:
            log.error("job %s failed: %s\n%s", name, error, traceback.format_exc(limit=5))
        elif _paused(exc):
            log.debug("job %s failed again (%s in a row), its connector is paused: %s", name, in_a_row, error)
        else:
            log.warning("job %s failed again (%s in a row): %s", name, in_a_row, error)
    else:
        if (in_a_row := _failing.pop(name, 0)) > 1:
            log.warning("job %s works again after %s failed runs in a row", name, in_a_row)
        elif in_a_row:
            log.info("job %s works again", name)
    if error is None and getattr(result, "ok", True) is False:
        error = str(getattr(result, "problem", "the job reported a problem"))
        log.warning("job %s finished with problems: %s", name, error)
    if error is None:
        last_errors.pop(name, None)
    else:
        last_errors[name] = error
    observe_job(name, time.perf_counter() - began, failed=error is not None)
    outcome = result.as_dict() if hasattr(result, "as_dict") else result if isinstance(result, dict) else {}
    try:
        with transaction(factory) as session:
            status = session.get(JobStatus, (worker, name)) or JobStatus(worker=worker, job=name, runs=0, failures=0)
            status.last_started_at = started
            status.last_finished_at = utcnow()
            status.last_ok = error is None
            status.runs += 1
            status.failures += error is not None
            status.last_result = {**outcome, "duration_ms": round((time.perf_counter() - began) * 1000)}
            if error:
                status.last_error = error[:4000]
            session.merge(status)
    except Exception:
        log.exception("could not record the run of job %s", name)
    return result


def index_knowledge(factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """The `reindex` job: resolved tickets and pending documents into the knowledge base. Calibration is a job of its
    own (`calibrate_knowledge_if_changed`), so neither a new article nor a ticket waits for it.

    Skipped without loading the vector store while there is nothing to index or repair.
    """
    with factory() as session:
        anything = session.scalar(
            select(literal(1)).where(
                or_(
                    exists().where(KbDocument.id.is_not(None)),
                    exists().where(KbChunk.id.is_not(None)),
                    exists().where(Ticket.resolved_at.is_not(None)),
                )
            )
        )
    if not anything:
        return {"chunks": 0}
    return index_sources(factory, settings)


def index_sources(factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """New and changed resolved tickets, pending documents and index repairs; counts for the status panel. One run
    at a time across replicas."""
    with factory() as probe:
        bind = probe.get_bind()
    with exclusive(bind, "kb-index") as acquired:
        if not acquired:
            return {"skipped": 1}
        tickets = index_resolved_tickets(factory, settings)
        documents = index_pending_documents(factory, settings)
        repaired = repair_indexes(factory, settings)
    return {"tickets_indexed": tickets, "documents_indexed": documents, **repaired}


def run_index_job(factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """Index, then calibrate if the knowledge base changed materially, one after the other: what a one-off run (the
    `kb` CLI, a benchmark) wants. The engine runs the two as separate jobs."""
    counts = index_sources(factory, settings)
    return {**counts, **calibrate_knowledge_if_changed(factory, settings)}


def calibrate_knowledge(factory: sessionmaker[Session], settings: Settings) -> Calibration:
    """The knowledge base's self-calibration, fed the operators' verdicts on drafts and the questions people answered,
    the learned questions among them (which only the engine reads)."""
    with factory() as session:
        judged = judged_drafts(session)
        verdicts = operator_verdicts(session)
        answered = answered_questions(session) + learned_questions(session)
    return calibrate(factory, settings, verdicts, answered, judged)


def _read_verdicts(factory: sessionmaker[Session]) -> list[Verdict]:
    with factory() as session:
        return operator_verdicts(session)


def calibrate_knowledge_if_changed(factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """The `calibrate` job: a knowledge base that changed materially chooses its fusion and confidence again
    (kb/self_test.py); one that did not has its confidence rescaled when operators judged enough new drafts. It runs
    beside ticket work, never in its way: tickets are analysed with the previous calibration meanwhile (a fresh
    desk's first ones wait for the first, engine/readiness.py). One run at a time across replicas; a failed
    calibration keeps the previous one and is logged.
    """
    with factory() as session:
        changed = needs_calibration(session)
        judged = 0 if changed else judged_drafts(session)
        bind = session.get_bind()
    if not changed:  # rescaled after the read session ends: on SQLite it would hold the write lock
        return {"calibrated": 0, "rescaled": int(rescale_on_verdicts(factory, judged, lambda: _read_verdicts(factory)))}
    with exclusive(bind, "kb-calibrate") as acquired:
        if not acquired:
            return {"calibrated": 0, "skipped": 1}
        try:
            calibrate_knowledge(factory, settings)
        except Exception:  # the embedder or Chroma failing here must not fail the job's next runs or the desk
            log.exception("calibrating retrieval on the knowledge base failed; the previous calibration stays")
            return {"calibrated": 0}
    return {"calibrated": 1}


def rebuild_knowledge(
    factory: sessionmaker[Session], settings: Settings, progress: Progress | None = None
) -> dict[str, int]:
    """Everything the knowledge base holds derived again: documents from their bytes (kb.indexer.reindex_all), then
    what resolved tickets teach, from the start."""
    counts = reindex_all(factory, settings, progress)
    return {**counts, "tickets": reteach_tickets(factory, settings)}


def seed_knowledge(factory: sessionmaker[Session], settings: Settings) -> dict[str, int]:
    """The `seed_knowledge` job: the articles a configured connector brings (the demo feed's), added once, so its
    tickets have something to be answered from.

    A marker in `source_cursors` records that it was done: documents a lead deletes stay deleted.
    """
    added: dict[str, int] = {}
    for entry in registry.connectors():
        if entry.knowledge is None or not entry.configured(settings):
            continue
        marker = seed_marker(entry.name)
        with factory() as session:
            if session.get(SourceCursor, marker) is not None:
                continue
        paths = sorted(entry.knowledge.glob("*.md"))
        for path in paths:
            add_document(factory, settings, path.name, path.read_bytes(), uploaded_by=entry.name)
        with transaction(factory) as session:
            session.merge(SourceCursor(source=marker, cursor=str(len(paths)), updated_at=utcnow()))
        added[entry.name] = len(paths)
    return added
