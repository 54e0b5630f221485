"""Untrusted files are read in a child process, with a deadline, a memory limit and a cap on the text it returns.

A hostile file far under the size limit can cost a parser minutes or gigabytes (20,000 Word styles, 300,000 PDF
text operations, 100,000 nested HTML elements). Read here, it costs at most KB_EXTRACT_TIMEOUT_SECONDS of wall
clock and KB_EXTRACT_MEMORY_MB of memory: past either, the child is killed with SIGKILL (never waited for) and
the file ends as TOO_COMPLEX, "too complex to read safely", naming the limit it hit; the caller goes on without it.

Children are forked by a reader server: one `python -m kb.sandbox` process per engine process, started on first
use, with the parsers imported once and nothing else (no threads, no embedding model, no database connections).
A file costs a fork of it, tens of milliseconds, not an interpreter start (bench/hostile_files.py measures both).
Forking the engine itself would copy a process with live threads, whose locks may be held mid-use, and a gigabyte
of model memory. multiprocessing's fork server would do, but it runs the program's main script again in every
child (Python 3.11 never preloads it: it asks its own preparation data for a key that is not there), which under
Streamlit means importing Streamlit for each file.

The child sets its own limits (RLIMIT_AS on top of what it starts with, RLIMIT_CPU, and an alarm whose default
action ends it should the engine die first) and leads its own process group, so OCR's tesseract goes with it.
It answers in JSON, never pickle: a parser the file exploited must not be able to run code in the engine.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kb.extract import CORRUPT, TOO_COMPLEX, Extraction, Section

if TYPE_CHECKING:  # the reader server imports the parsers and nothing else of the desk
    from engine.core.settings import Settings

log = logging.getLogger(__name__)

READER = "kb.extract:extract"
"""The function the child runs on the file, as `module:name`; a test names one that never returns, to prove the
kill."""
PRELOAD = ("kb.extract", "bs4", "lxml.etree", "docx", "pptx", "pypdf", "pypdfium2", "tinycss2", "tinycss2.color3")
"""Imported once by the reader server, so no child pays for them."""
READER_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TESSDATA_PREFIX", "OMP_THREAD_LIMIT")
"""The only variables the reader server and its children see: the engine's secrets (database URL, API keys,
passwords) are never in the environment of a process that parses hostile files."""
POLL_SECONDS = 0.2
"""How often a waiting caller checks whether the engine is stopping."""
BACKSTOP_SECONDS = 5
"""A child outlives its deadline by at most this much even if nobody is left to kill it."""
TIME, MEMORY, CHARACTERS, CRASH = "time", "memory", "characters", "crash"
"""The bound that ended a reading."""
ROOT = Path(__file__).resolve().parents[1]

_lock = threading.Lock()
_server: _ReaderServer | None = None
_generation = 0
"""Raised by stop_extractions: a reading started before then is cancelled."""
_live: dict[int, int] = {}
"""The children being read from (pid), with the generation they started in."""


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
    """One bounded reading: the extraction, how long it took, the child's peak resident memory when known (its own
    or its helper's, OCR's tesseract, whichever is larger), and the bound that ended it (None when the file was
    read, or refused by the reader itself)."""

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
    filename: str, data: bytes, limits: Limits, options: dict[str, Any], reader: str | None = None
) -> Outcome:
    """Run `reader` (READER by default) on the file in a child within `limits`. Never raises for anything the file
    does; ExtractionCancelledError when stop_extractions() ends the reading."""
    request = {"reader": reader or READER, "filename": filename, "options": options, "limits": vars(limits)}
    header = json.dumps({**request, "size": len(data)}).encode()
    pid, channel = _fork()
    began = time.monotonic()
    deadline = began + limits.seconds
    with _lock:
        generation = _live[pid] = _generation
    payload, ended_by, peak = None, "cancelled", None
    try:
        channel.settimeout(limits.seconds)
        channel.sendall(len(header).to_bytes(4, "big") + header)
        channel.sendall(data)
        channel.shutdown(socket.SHUT_WR)
        payload, ended_by = _collect(channel, deadline, _answer_bytes(limits), generation)
    except (TimeoutError, OSError):  # the child stopped reading its request: it is stuck or gone
        ended_by = TIME if time.monotonic() >= deadline else None
    finally:
        if ended_by is not None:  # no end of file from the child: it is still there
            peak = _peak_resident(pid)
            for kill in (os.killpg, os.kill):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    kill(pid, signal.SIGKILL)
        channel.close()
        with _lock:
            _live.pop(pid, None)
    seconds = time.monotonic() - began
    if ended_by == "cancelled":
        raise ExtractionCancelledError(f"{filename}: reading stopped, the engine is stopping")
    if ended_by in (TIME, CHARACTERS):
        return _bounded(filename, limits, ended_by, seconds, peak)
    return _answered(filename, limits, payload or b"", seconds)


def stop_extractions(timeout: float = 5.0) -> int:
    """The engine is stopping: every reading in flight kills its child and raises ExtractionCancelledError in its
    caller (within POLL_SECONDS); waits up to `timeout` for them. Returns how many there were."""
    global _generation
    with _lock:
        _generation += 1
        stopped = _generation
        count = len(_live)
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        with _lock:
            if all(generation >= stopped for generation in _live.values()):
                break
        time.sleep(POLL_SECONDS / 4)
    return count


class _ReaderServer:
    """The parent's handle on `python -m kb.sandbox`: a control socket over which it asks for a child."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        path = os.environ.get("PYTHONPATH", "")
        env = {name: os.environ[name] for name in READER_ENVIRONMENT if name in os.environ}
        env["PYTHONPATH"] = str(ROOT) + (os.pathsep + path if path else "")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kb.sandbox", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )
        theirs.close()
        self.control = ours
        log.info("reader server started (pid %s)", self.process.pid)

    def fork(self) -> tuple[int, socket.socket]:
        """A new child of the server, and our end of the socket the child reads its request from and answers on."""
        ours, theirs = socket.socketpair()
        try:
            socket.send_fds(self.control, [b"F"], [theirs.fileno()])
            pid = b""
            while len(pid) < 8:
                chunk = self.control.recv(8 - len(pid))
                if not chunk:
                    raise ConnectionError("the reader server is gone")
                pid += chunk
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return int.from_bytes(pid, "big"), ours

    def close(self) -> None:
        self.control.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)


def _fork() -> tuple[int, socket.socket]:
    """A fresh child for one reading; the server is (re)started when there is none."""
    global _server
    with _lock:
        for attempt in (1, 2):
            if _server is None or _server.process.poll() is not None:
                _server = _ReaderServer()
            try:
                return _server.fork()
            except OSError:
                if attempt == 2:
                    raise
                log.warning("the reader server stopped answering; starting another")
                _server.close()
                _server = None
    raise AssertionError("unreachable")


def _answer_bytes(limits: Limits) -> int:
    """The most an honest child's JSON can take: 12 bytes per character (an escaped astral character) and room for
    the locations."""
    return 12 * limits.max_characters + (1 << 20)


def _collect(channel: socket.socket, deadline: float, most: int, generation: int) -> tuple[bytes | None, str | None]:
    """The child's whole answer (read to end of file), or why there is none: TIME, CHARACTERS or "cancelled"."""
    chunks: list[bytes] = []
    size = 0
    while True:
        if _generation != generation:
            return None, "cancelled"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None, TIME
        channel.settimeout(min(remaining, POLL_SECONDS))
        try:
            chunk = channel.recv(1 << 20)
        except TimeoutError:
            continue
        if not chunk:
            return b"".join(chunks), None
        size += len(chunk)
        if size > most:
            return None, CHARACTERS
        chunks.append(chunk)


def _peak_resident(pid: int) -> int | None:
    """VmHWM of a live process (Linux), in bytes."""
    try:
        with Path(f"/proc/{pid}/status").open(encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _bounded(filename: str, limits: Limits, limit: str, seconds: float, peak: int | None) -> Outcome:
    why = {
        TIME: f"still being read after {limits.seconds:g} s (KB_EXTRACT_TIMEOUT_SECONDS)",
        MEMORY: f"it needs more than {limits.memory_mb:,} MB of memory (KB_EXTRACT_MEMORY_MB)",
        CHARACTERS: f"more than {limits.max_characters:,} characters of text (KB_EXTRACT_MAX_CHARACTERS)",
        CRASH: f"its reader died without an answer, likely over {limits.memory_mb:,} MB (KB_EXTRACT_MEMORY_MB)",
    }[limit]
    log.warning("%s is too complex to read safely: %s; the reading was ended", filename, why)
    extraction = Extraction("unknown", TOO_COMPLEX, f"{filename}: too complex to read safely: {why}")
    return Outcome(extraction, seconds, peak, limit)


def _answered(filename: str, limits: Limits, payload: bytes, seconds: float) -> Outcome:
    """The extraction the child sent, checked field by field; a child that died without a word hit a bound too."""
    if not payload:
        return _bounded(filename, limits, CRASH, seconds, None)
    peak = None
    try:
        answer = json.loads(payload)
        peak = int(answer.get("peak_kb", 0)) * 1024 or None
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


# The reader server and its children (`python -m kb.sandbox FD`)


def serve(control_fd: int) -> None:
    """Fork one child per request on the control socket until the engine closes it (or dies)."""
    logging.basicConfig(level=logging.ERROR, format="kb.sandbox reader %(process)d: %(name)s: %(message)s")
    for module in PRELOAD:
        importlib.import_module(module)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is the engine's to handle; it closes the socket
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    control = socket.socket(fileno=control_fd)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(control, 1, 1)
        except OSError:
            break
        if not message:
            break
        if not fds:
            continue
        pid = os.fork()
        if pid == 0:
            control.close()
            code = 1
            try:
                _read_in_child(socket.socket(fileno=fds[0]))
                code = 0
            finally:
                os._exit(code)
        os.close(fds[0])
        try:
            control.sendall(pid.to_bytes(8, "big"))
        except OSError:
            break


def _read_in_child(channel: socket.socket) -> None:
    """The child's whole life: read the request, bound itself, read the file, write one JSON answer."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # OCR waits for tesseract's exit status
    with contextlib.suppress(OSError):
        os.setpgid(0, 0)
    length = int.from_bytes(_receive(channel, 4), "big")
    request = json.loads(_receive(channel, length))
    limits = Limits(**request["limits"])
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(math.ceil(limits.seconds) + BACKSTOP_SECONDS)
    data = _receive(channel, request["size"])
    _limit(resource.RLIMIT_CORE, 0)
    cpu_seconds = math.ceil(limits.seconds) + BACKSTOP_SECONDS
    _limit(resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)  # SIGXCPU, then SIGKILL
    _limit(resource.RLIMIT_AS, _address_space() + limits.memory_mb * 1024 * 1024)
    try:
        module, name = request["reader"].split(":")
        reader = getattr(importlib.import_module(module), name)
        reply = _reply(reader(request["filename"], data, **request["options"]), limits)
    except MemoryError:
        reply = {"limit": MEMORY}
    except Exception as error:
        reply = {"failed": f"{type(error).__name__}: {error}"}
    del data
    peak_kb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    try:
        payload = json.dumps({**reply, "peak_kb": peak_kb}).encode("ascii")
    except MemoryError:
        payload = json.dumps({"limit": MEMORY, "peak_kb": peak_kb}).encode("ascii")
    channel.sendall(payload)
    channel.close()


def _receive(channel: socket.socket, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = channel.recv(min(size - len(buffer), 1 << 20))
        if not chunk:
            raise EOFError("the request ended early")
        buffer += chunk
    return bytes(buffer)


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


if __name__ == "__main__":
    serve(int(sys.argv[1]))
