"""Untrusted files read in a bounded child: every hostile file ends with a status within its bounds, a reader that
never returns is killed with its helper process, memory and text past their limits are "too complex to read
safely", a stopping engine cancels readings in flight, and the child's answer is checked (no database)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from kb import sandbox
from kb.extract import CORRUPT, EMPTY, OCR_UNAVAILABLE, OK, TOO_COMPLEX, extract
from tests.corpus import hostile_files as hostile
from tests.waiting import wait_until

OPTIONS = {"max_bytes": 25 * 1024 * 1024}
CORPUS = "tests.corpus.hostile_files"
READ_FOREVER = f"{CORPUS}:read_forever"
GENEROUS = sandbox.Limits(seconds=120, memory_mb=512, max_characters=5_000_000)
"""Bounds no busy machine reaches with a file that is read fully: the outcome, not the speed, is what is tested."""

EXPECTED: dict[str, tuple[Callable[[], bytes], set[str]]] = {
    "style-bomb.docx": (hostile.docx_style_bomb, {OK}),
    "merged-rows.docx": (hostile.docx_merged_rows, {OK}),
    "nested-tables.docx": (hostile.docx_nested_tables, {TOO_COMPLEX}),
    "nested-groups.pptx": (hostile.pptx_nested_groups, {OK}),
    "operation-bomb.pdf": (hostile.pdf_operation_bomb, {TOO_COMPLEX}),  # read in process: 45-65 s, 630 MB
    "nested-forms.pdf": (hostile.pdf_nested_forms, {EMPTY}),
    "deep.html": (lambda: hostile.html_deep_nesting(20_000), {OK}),
    "nested-messages.eml": (hostile.eml_nested_messages, {OK}),
    "deep-multipart.eml": (hostile.eml_deep_multipart, {TOO_COMPLEX}),
    "deep.md": (hostile.markdown_deep_nesting, {OK}),
    "wide.csv": (hostile.csv_wide, {TOO_COMPLEX}),
    "huge.txt": (hostile.huge_text, {TOO_COMPLEX}),
    "pixel-bomb.png": (hostile.png_pixel_bomb, {CORRUPT, TOO_COMPLEX, OCR_UNAVAILABLE}),
}
"""Each hostile case and the statuses it may end with: read (the quadratic paths are gone), refused by the reader
(nested too deeply, no text where nothing is shown), or stopped by a bound (the 300,000-operation PDF needs more
memory than the test gives it, the text cases more than 5,000,000 characters; OCR of 900 megapixels fails inside
the memory limit)."""
TIGHTER = {"operation-bomb.pdf": sandbox.Limits(seconds=120, memory_mb=256, max_characters=5_000_000)}
"""A bound the case passes whatever the speed of the machine: within 120 s it would need far more than 256 MB."""


def test_the_corpus_has_a_case_for_every_hostile_file() -> None:
    assert set(EXPECTED) == set(hostile.HOSTILE_FILES)


@pytest.mark.parametrize("name", EXPECTED)
def test_each_hostile_file_ends_with_a_status_within_its_bounds(name: str) -> None:
    build, statuses = EXPECTED[name]
    outcome = sandbox.read_bounded(name, build(), TIGHTER.get(name, GENEROUS), OPTIONS)
    assert outcome.extraction.status in statuses, outcome.extraction.error
    if outcome.extraction.status == TOO_COMPLEX:
        assert outcome.extraction.error.startswith(f"{name}: too complex to read safely: ")
        assert not outcome.extraction.sections


def test_a_style_bomb_is_read_whole_once_styles_resolve_once() -> None:
    """20,000 chained styles and 2,000 paragraphs: every paragraph's text, read in the child within its bounds."""
    outcome = sandbox.read_bounded("styles.docx", hostile.docx_style_bomb(), GENEROUS, OPTIONS)
    assert outcome.extraction.status == OK and outcome.limit is None
    assert "1999.0 Word 1999.1 Word 1999.2" in outcome.extraction.text


def test_a_reader_that_never_returns_is_killed_with_its_helper() -> None:
    seconds = hostile.unique_seconds()
    limits = sandbox.Limits(seconds=3, memory_mb=512, max_characters=1000)
    outcome = sandbox.read_bounded(hostile.HANG_FILE, seconds, limits, OPTIONS, reader=READ_FOREVER)
    assert outcome.limit == sandbox.TIME
    assert outcome.extraction.status == TOO_COMPLEX
    assert outcome.extraction.error == (
        "hang.txt: too complex to read safely: still being read after 3 s (KB_EXTRACT_TIMEOUT_SECONDS)"
    )
    wait_until(lambda: not hostile.sleeping_helpers(seconds), timeout=30, what="the helper to be gone")
    assert not sandbox._live


def test_memory_past_the_limit_is_too_complex() -> None:
    limits = sandbox.Limits(seconds=120, memory_mb=256, max_characters=1000)
    outcome = sandbox.read_bounded("greedy.txt", b"x", limits, OPTIONS, reader=f"{CORPUS}:read_greedily")
    assert outcome.limit == sandbox.MEMORY
    assert outcome.extraction.error == (
        "greedy.txt: too complex to read safely: it needs more than 256 MB of memory (KB_EXTRACT_MEMORY_MB)"
    )


def test_text_past_the_cap_is_too_complex() -> None:
    limits = sandbox.Limits(seconds=120, memory_mb=512, max_characters=1_000_000)
    outcome = sandbox.read_bounded("huge.txt", hostile.huge_text(1_200_000), limits, OPTIONS)
    assert outcome.limit == sandbox.CHARACTERS
    assert "more than 1,000,000 characters of text (KB_EXTRACT_MAX_CHARACTERS)" in outcome.extraction.error


def test_a_file_under_every_bound_reads_as_in_process() -> None:
    data = b"# Printer jams\n\n1. Open tray 2.\n2. Remove the sheet.\n"
    inside = sandbox.read_bounded("printer.md", data, GENEROUS, OPTIONS).extraction
    assert inside == extract("printer.md", data, **OPTIONS)


def test_an_answer_of_the_wrong_shape_is_refused() -> None:
    outcome = sandbox.read_bounded("odd.txt", b"x", GENEROUS, OPTIONS, reader=f"{CORPUS}:answer_oddly")
    assert outcome.extraction.status == CORRUPT
    assert "a section's location is not a flat mapping" in outcome.extraction.error


def test_a_stopping_engine_cancels_a_reading_in_flight() -> None:
    """The reader would hang for an hour; stop_extractions ends it and its caller learns nothing about the file."""
    seconds = hostile.unique_seconds()
    limits = sandbox.Limits(seconds=3600, memory_mb=512, max_characters=1000)
    raised: list[BaseException] = []

    def read() -> None:
        try:
            sandbox.read_bounded(hostile.HANG_FILE, seconds, limits, OPTIONS, reader=READ_FOREVER)
        except BaseException as error:
            raised.append(error)

    caller = threading.Thread(target=read)
    caller.start()
    wait_until(lambda: bool(hostile.sleeping_helpers(seconds)), timeout=60, what="the reading to start")
    assert sandbox.stop_extractions(timeout=30) == 1
    caller.join(timeout=60)
    assert not caller.is_alive()
    assert [type(error) for error in raised] == [sandbox.ExtractionCancelledError]
    wait_until(lambda: not hostile.sleeping_helpers(seconds), timeout=30, what="the helper to be gone")
    assert sandbox.read_bounded("after.txt", b"Read after the stop", GENEROUS, OPTIONS).extraction.status == OK


def test_the_reader_sees_none_of_the_engines_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader server is started with a short list of variables: a parser the file exploits finds no secret."""
    monkeypatch.setenv("SMTP_PASSWORD", "s3cret-smtp")
    with sandbox._lock:  # a server started before the variable was set would prove nothing: start another
        if sandbox._server is not None:
            sandbox._server.close()
            sandbox._server = None
    outcome = sandbox.read_bounded("env.txt", b"x", GENEROUS, OPTIONS, reader=f"{CORPUS}:read_environment")
    assert outcome.extraction.status == OK
    names = set(outcome.extraction.text.split())
    assert "SMTP_PASSWORD" not in names and "PATH" in names
    assert names <= {*sandbox.READER_ENVIRONMENT, "PYTHONPATH"}
