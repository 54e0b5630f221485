"""Untrusted files are read in a child process, with a deadline, a memory limit and a cap on the text it returns.

A hostile file far under the size limit can cost a parser minutes or gigabytes (20,000 Word styles, 300,000 PDF
text operations, 100,000 nested HTML elements). Read here, it costs at most KB_EXTRACT_TIMEOUT_SECONDS of wall
clock and KB_EXTRACT_MEMORY_MB of memory: past either, the child is killed with SIGKILL (never waited for) and
the file ends as TOO_COMPLEX, "too complex to read safely", naming the limit it hit; the caller goes on without it.

Children come from multiprocessing's fork server: one small process, started on first use from a fresh interpreter
(no threads, no embedding model, no database connections) with the parsers imported once, so a file costs a fork
of it, not an interpreter start (bench/hostile_files.py measures both). Forking the engine itself would copy a
process with live threads, whose locks may be held mid-use, and a gigabyte of model memory.

The child sets its own limits (RLIMIT_AS, RLIMIT_CPU, and an alarm whose default action ends it should this process
die first) and leads its own process group, so OCR's tesseract goes with it. It answers in JSON, never pickle: a
parser the file exploited must not be able to run code here.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from engine.core.settings import Settings
from kb.extract import CORRUPT, TOO_COMPLEX, Extraction, Section, extract

log = logging.getLogger(__name__)

Reader = Callable[..., Extraction]
READER: Reader = extract
"""What the child runs on the file; a test puts a reader here that never returns, to prove the kill."""
PRELOAD = ["__main__", "kb.sandbox", "kb.extract", "bs4", "lxml.etree", "docx", "pptx", "pypdf", "pypdfium2"]
"""Imported once by the fork server, so no child pays for them (a child costs about 30 ms instead of 0.7 s).
`__main__` too: multiprocessing would otherwise run the program's main script again in every child, so, as
multiprocessing asks, a script that reads files keeps its work under `if __name__ == "__main__":`."""
POLL_SECONDS = 0.2
"""How often a waiting caller checks whether the engine is stopping."""
BACKSTOP_SECONDS = 5
"""A child outlives its deadline by at most this much even if nobody is left to kill it."""
TIME, MEMORY, CHARACTERS, CRASH = "time", "memory", "characters", "crash"
"""The bound that ended a reading."""

_bookkeeping = threading.Lock()
"""multiprocessing's own records of children are not thread-safe: starts and exit checks take turns."""
_generation = 0
"""Raised by stop_extractions: a reading started before then is cancelled."""
_live: dict[BaseProcess, int] = {}
"""Children alive, with the generation they started in."""
_preloaded = False


@dataclass(frozen=True)
class Limits:
    seconds: float
    memory_mb: int
    max_characters: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            settings.KB_EXTRACT_TIMEOUT_SECONDS, settings.KB_EXTRACT_MEMORY_MB, settings.KB_EXTRACT_MAX_CHARACTERS
        )


@dataclass
class Outcome:
    """One bounded reading: the extraction, how long it took, the child's peak resident memory when known, and the
    bound that ended it (None when the file was read, or refused by the reader itself)."""

    extraction: Extraction
    seconds: float
    peak_bytes: int | None = None
    limit: str | None = None


class ExtractionCancelledError(Exception):
    """The engine is stopping: the reader was killed and nothing is known about the file; record no status for it."""


def extract_bounded(filename: str, data: bytes, settings: Settings) -> Extraction:
    """`kb.extract.extract` in a bounded child; past a bound, a TOO_COMPLEX extraction that says which."""
    options = {
        "max_bytes": settings.KB_MAX_FILE_BYTES,
        "tesseract_cmd": settings.KB_TESSERACT_CMD,
        "ocr_languages": settings.KB_OCR_LANGUAGES,
    }
    return read_bounded(filename, data, Limits.of(settings), options).extraction


def read_bounded(
    filename: str, data: bytes, limits: Limits, options: dict[str, Any], reader: Reader | None = None
) -> Outcome:
    """Run `reader` (READER by default) on the file in a child within `limits`; never raises but for
    ExtractionCancelledError (stop_extractions)."""
    context = _context()
    answer_end, child_end = context.Pipe(duplex=False)
    child = context.Process(
        target=_read_in_child,
        args=(child_end, reader or READER, filename, data, options, limits),
        name=f"kb-read {filename[:40]}",
        daemon=True,
    )
    with _bookkeeping:
        try:
            child.start()
        except BaseException:
            answer_end.close()
            child_end.close()
            raise
        generation = _live[child] = _generation
    child_end.close()
    began = time.monotonic()
    payload: bytes | None = None
    ended_by: str | None = "cancelled"
    try:
        payload, ended_by = _collect(answer_end, began + limits.seconds, _answer_bytes(limits), generation)
        if ended_by is None:
            wait([child.sentinel], max(0.0, began + limits.seconds - time.monotonic()))
    finally:
        peak, exitcode = _finish(child)
        answer_end.close()
    seconds = time.monotonic() - began
    if ended_by == "cancelled":
        raise ExtractionCancelledError(f"{filename}: reading stopped, the engine is stopping")
    if ended_by == TIME:
        return _bounded(filename, limits, TIME, seconds, peak)
    if ended_by == CHARACTERS:
        return _bounded(filename, limits, CHARACTERS, seconds, peak)
    return _answered(filename, limits, payload or b"", exitcode, seconds, peak)


def stop_extractions(timeout: float = 5.0) -> int:
    """The engine is stopping: every reading in flight kills its child and raises ExtractionCancelledError in its
    caller (within POLL_SECONDS); waits up to `timeout` for them. Returns how many there were."""
    global _generation
    with _bookkeeping:
        _generation += 1
        stopped = _generation
        count = len(_live)
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        with _bookkeeping:
            if all(generation >= stopped for generation in _live.values()):
                break
        time.sleep(POLL_SECONDS / 4)
    return count


def _context() -> Any:
    """The fork-server context, its server told once which modules to import."""
    global _preloaded
    context = multiprocessing.get_context("forkserver")
    with _bookkeeping:
        if not _preloaded:
            context.set_forkserver_preload(PRELOAD)
            _preloaded = True
    return context


def _answer_bytes(limits: Limits) -> int:
    """The most an honest child's JSON can take: 12 bytes per character (an escaped astral character) and room for
    the locations."""
    return 12 * limits.max_characters + (1 << 20)


def _collect(answer: Connection, deadline: float, most: int, generation: int) -> tuple[bytes | None, str | None]:
    """The child's whole answer (read to end of file), or why there is none: TIME, CHARACTERS or "cancelled"."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if _generation != generation:
            return None, "cancelled"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, TIME
        if not wait([answer], min(remaining, POLL_SECONDS)):
            continue
        try:
            chunk = os.read(answer.fileno(), 1 << 20)
        except OSError:
            chunk = b""
        if not chunk:
            return b"".join(chunks), None
        size += len(chunk)
        if size > most:
            return None, CHARACTERS
        chunks.append(chunk)


def _finish(child: BaseProcess) -> tuple[int | None, int | None]:
    """Kill the child (and its process group) unless it has exited, and reap it: its peak resident memory if it was
    still there to be asked, and its exit code."""
    peak = None
    with _bookkeeping:
        running = child.exitcode is None
    if running:
        peak = _peak_resident(child.pid)
        for kill in (lambda: os.killpg(child.pid or 0, signal.SIGKILL), child.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill()
    wait([child.sentinel], 10)
    with _bookkeeping:
        exitcode = child.exitcode
        if exitcode is None:
            log.error("the reader process %s did not end after SIGKILL; left behind", child.pid)
        else:
            child.close()
        _live.pop(child, None)
    return peak, exitcode


def _peak_resident(pid: int | None) -> int | None:
    """VmHWM of a live process (Linux), in bytes."""
    try:
        with Path(f"/proc/{pid}/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _bounded(filename: str, limits: Limits, limit: str, seconds: float, peak: int | None, detail: str = "") -> Outcome:
    why = {
        TIME: f"still being read after {limits.seconds:g} s (KB_EXTRACT_TIMEOUT_SECONDS)",
        MEMORY: f"it needs more than {limits.memory_mb:,} MB of memory (KB_EXTRACT_MEMORY_MB)",
        CHARACTERS: f"more than {limits.max_characters:,} characters of text (KB_EXTRACT_MAX_CHARACTERS)",
        CRASH: f"its reader stopped ({detail}), likely over {limits.memory_mb:,} MB (KB_EXTRACT_MEMORY_MB)",
    }[limit]
    log.warning("%s is too complex to read safely: %s; the reading was ended", filename, why)
    extraction = Extraction("unknown", TOO_COMPLEX, f"{filename}: too complex to read safely: {why}")
    return Outcome(extraction, seconds, peak, limit)


def _answered(
    filename: str, limits: Limits, payload: bytes, exitcode: int | None, seconds: float, peak: int | None
) -> Outcome:
    """The extraction the child sent, checked field by field; a child that died without a word is a bound too."""
    if not payload:
        how = f"signal {signal.Signals(-exitcode).name}" if exitcode and exitcode < 0 else f"exit code {exitcode}"
        return _bounded(filename, limits, CRASH, seconds, peak, how)
    try:
        answer = json.loads(payload)
        peak = int(answer.get("peak_kb", 0)) * 1024 or peak
        if answer.get("limit") in (MEMORY, CHARACTERS):
            return _bounded(filename, limits, answer["limit"], seconds, peak)
        if "failed" in answer:
            raise ValueError(str(answer["failed"])[:500])
        return Outcome(_extraction_of(answer["extraction"]), seconds, peak)
    except Exception as error:  # a malformed answer is the file's doing: it is unreadable, the caller goes on
        log.warning("%s: the reader's answer was not usable (%s: %s)", filename, type(error).__name__, error)
        failed = Extraction("unknown", CORRUPT, f"{filename}: could not be read ({type(error).__name__}: {error})")
        return Outcome(failed, seconds, peak)


def _extraction_of(answer: dict[str, Any]) -> Extraction:
    """An Extraction from the child's JSON, every field of the expected type (else ValueError)."""

    def text(value: Any, optional: bool = False) -> Any:
        if (value is None and optional) or isinstance(value, str):
            return value
        raise ValueError(f"expected text, got {type(value).__name__}")

    def location(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not all(
            isinstance(key, str) and isinstance(item, str | int | float | bool) for key, item in value.items()
        ):
            raise ValueError("a section's location is not a flat mapping")
        return value

    sections = answer["sections"]
    warnings = answer["warnings"]
    if not isinstance(sections, list) or not isinstance(warnings, list):
        raise ValueError("sections and warnings must be lists")
    return Extraction(
        kind=text(answer["kind"]),
        status=text(answer["status"]),
        error=text(answer["error"], optional=True),
        title=text(answer["title"], optional=True),
        sections=[Section(text(item[0]), location(item[1])) for item in sections],
        warnings=[text(item) for item in warnings],
    )


def _read_in_child(
    answer: Connection, reader: Reader, filename: str, data: bytes, options: dict[str, Any], limits: Limits
) -> None:
    """The child's whole life: bound itself, read the file, write one JSON answer, end."""
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(math.ceil(limits.seconds) + BACKSTOP_SECONDS)
    _limit(resource.RLIMIT_CORE, 0)
    cpu_seconds = math.ceil(limits.seconds) + BACKSTOP_SECONDS
    _limit(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)  # SIGXCPU, then SIGKILL
    _limit(resource.RLIMIT_AS, _address_space() + limits.memory_mb * 1024 * 1024)
    try:
        reply = _reply(reader(filename, data, **options), limits)
    except MemoryError:
        reply = {"limit": MEMORY}
    except Exception as error:
        reply = {"failed": f"{type(error).__name__}: {error}"}
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        payload = json.dumps({**reply, "peak_kb": peak_kb}).encode("ascii")
    except MemoryError:
        payload = json.dumps({"limit": MEMORY, "peak_kb": peak_kb}).encode("ascii")
    view = memoryview(payload)
    while view:
        view = view[os.write(answer.fileno(), view) :]
    answer.close()


def _reply(extraction: Extraction, limits: Limits) -> dict[str, Any]:
    size = sum(len(section.text) for section in extraction.sections) + len(extraction.title or "")
    if size > limits.max_characters:
        return {"limit": CHARACTERS}
    return {
        "extraction": {
            "kind": extraction.kind,
            "status": extraction.status,
            "error": extraction.error,
            "title": extraction.title,
            "sections": [[section.text, section.location] for section in extraction.sections],
            "warnings": extraction.warnings,
        }
    }


def _limit(which: int, soft: int, hard: int | None = None) -> None:
    """Lower a resource limit, never above the hard limit the process already has."""
    _, ceiling = resource.getrlimit(which)

    def capped(value: int) -> int:
        return value if ceiling == resource.RLIM_INFINITY else min(value, ceiling)

    resource.setrlimit(which, (capped(soft), capped(soft if hard is None else hard)))


def _address_space() -> int:
    """The process's current virtual size: the memory limit is counted on top of what the child starts with."""
    try:
        with Path("/proc/self/statm").open(encoding="ascii") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0
