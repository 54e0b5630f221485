"""The stored calibration: chosen by the index job, chosen again after a material change, read by search."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine import jobs
from engine.core.models import SourceCursor
from engine.core.settings import Settings
from kb import indexer
from kb.calibration import (
    CALIBRATION_SOURCE,
    DEFAULT_FUSION,
    calibration_summary,
    changed_share,
    needs_calibration,
    stored_calibration,
    stored_fusion,
)
from kb.confidence import MIN_VERDICTS, ConfidenceModel, Verdict
from kb.self_test import VERDICTS_TO_RESCALE, rescale_on_verdicts
from tests.factories import own_transactions

ARTICLES = {
    "router": (
        "Router reset",
        "Hold the recessed button for ten seconds until the lights blink amber.",
        "The router restarts with factory settings; reconnect with the wifi password printed on its label.",
    ),
    "mailbox": (
        "Mailbox quota",
        "When Outlook says the mailbox is full, archive old items to free space.",
        "Large attachments in sent items fill a mailbox fastest; the archive folder does not count to the quota.",
    ),
    "printer": (
        "Printer toner",
        "Error E42 means the toner cartridge is not seated; open the lid and reseat it.",
        "Faint or streaky pages mean the cartridge is nearly empty; order a new one from the supplies portal.",
    ),
    "vpn": (
        "VPN on hotel wifi",
        "If the tunnel drops every few minutes, switch the client to TCP port 443.",
        "Captive portals of hotels block the tunnel until you accept their terms in a browser first.",
    ),
    "password": (
        "Password expiry",
        "Passwords expire every ninety days; change yours in the self-service portal.",
        "A locked account unlocks itself after fifteen minutes, or at once when you verify with your phone.",
    ),
    "laptop": (
        "Laptop battery",
        "A battery that drains overnight needs the fast-startup option turned off.",
        "Sleeping laptops in a bag overheat; shut down fully before travelling to protect the cells.",
    ),
    "teams": (
        "Teams camera",
        "When colleagues cannot see you, allow camera access in the privacy settings.",
        "Close other video apps that hold the webcam, then pick the right device in the meeting options.",
    ),
    "badge": (
        "Door badge",
        "A badge that stopped opening doors is re-enabled at the reception desk.",
        "Lost cards are blocked at once when reported, and a replacement is printed the same day.",
    ),
    "monitor": (
        "Second monitor",
        "A dark second screen usually needs the display cable reseated at both ends.",
        "Press the Windows key with P and choose extend to use both screens side by side.",
    ),
    "backup": (
        "File backup",
        "Files in the synced documents folder are restored from the recycle bin online.",
        "Earlier versions of a document are kept for thirty days and can be restored from its version history.",
    ),
    "phone": (
        "Desk phone",
        "A desk phone showing no service needs its network cable moved to the grey port.",
        "Voicemail is set up by dialling star ninety-eight and following the spoken instructions.",
    ),
}


def add_article(session: Session, settings: Settings, name: str) -> int:
    title, first, more = ARTICLES[name]
    text = f"# {title}\n{first} {more} Ask the service desk if that does not help.\n"
    return indexer.add_document(own_transactions(session), settings, f"{name}.md", text.encode()).id


def test_index_job_calibrates_and_again_after_a_material_change(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with session_factory() as session:
        ids = {name: add_article(session, settings, name) for name in list(ARTICLES)[:10]}
        assert stored_calibration(session) is None and needs_calibration(session)
        assert calibration_summary(session)["calibrated"] is False
    assert jobs.run_index_job(session_factory, settings)["calibrated"] == 1
    with session_factory() as session:
        calibration = stored_calibration(session)
        assert calibration is not None and calibration.chunks == 10
        assert calibration.self_test["queries"] >= 10 and calibration.confidence is not None
        assert stored_fusion(session) == calibration.fusion
        assert calibration_summary(session)["fusion"] == calibration.fusion.describe()
    assert jobs.run_index_job(session_factory, settings)["calibrated"] == 0, "nothing changed"

    with session_factory() as session:
        indexer.remove_document(own_transactions(session), settings, ids["backup"])
        assert changed_share(session, stored_calibration(session)) == pytest.approx(0.1)
    assert jobs.run_index_job(session_factory, settings)["calibrated"] == 1, "a tenth removed"

    with session_factory() as session:
        add_article(session, settings, "phone")
        assert changed_share(session, stored_calibration(session)) == pytest.approx(1 / 9)
        add_article(session, settings, "backup")
        indexer.remove_document(own_transactions(session), settings, ids["router"])
        assert changed_share(session, stored_calibration(session)) == pytest.approx(3 / 9)
    assert jobs.run_index_job(session_factory, settings)["calibrated"] == 1
    with session_factory() as session:
        assert stored_calibration(session).chunks == 10  # type: ignore[union-attr]
        assert not needs_calibration(session)


def test_damaged_calibration_is_logged_and_defaults_serve(
    session_factory: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    with session_factory() as session:
        session.add(SourceCursor(source=CALIBRATION_SOURCE, cursor='{"fusion": {"method": "borda"}}'))
        session.commit()
        with caplog.at_level(logging.ERROR):
            assert stored_fusion(session) == DEFAULT_FUSION
        assert "unreadable" in caplog.text and CALIBRATION_SOURCE in caplog.text


@pytest.fixture
def judged_passage(session_factory: sessionmaker[Session], settings: Settings) -> dict[str, object]:
    """A calibrated knowledge base of ten articles and the VPN article's passage as a draft's evidence."""
    with session_factory() as session:
        for name in list(ARTICLES)[:10]:
            add_article(session, settings, name)
    jobs.run_index_job(session_factory, settings)
    title, first, more = ARTICLES["vpn"]
    return {"title": title, "text": f"{first} {more}", "fused_score": 0.6, "vector_score": 0.5, "bm25_score": 4.0}


def test_new_operators_verdicts_rescale_the_confidence_without_a_self_test(
    session_factory: sessionmaker[Session], judged_passage: dict[str, object]
) -> None:
    """Between calibrations, the confidence follows operators' verdicts once VERDICTS_TO_RESCALE more drafts were
    judged; until then the verdicts are not even read (the count says there is nothing new)."""
    feedback = [
        ("my vpn tunnel keeps dropping at the hotel", [judged_passage], int(number % 4 != 0))
        for number in range(MIN_VERDICTS)
    ]
    reads: list[int] = []

    def rescale(verdicts: list[Verdict]) -> bool:
        def read() -> list[Verdict]:
            reads.append(len(verdicts))
            return verdicts

        return rescale_on_verdicts(session_factory, len(verdicts), read)

    assert rescale(feedback)
    with session_factory() as session:
        model = ConfidenceModel.from_record(stored_calibration(session).confidence)  # type: ignore[union-attr]
    assert (model.verdicts, model.judged) == (MIN_VERDICTS, MIN_VERDICTS)
    assert not rescale(feedback), "nothing new"
    assert not rescale(feedback + feedback[: VERDICTS_TO_RESCALE - 1])
    assert reads == [MIN_VERDICTS], "too few new verdicts are never read"
    assert rescale(feedback + feedback[:VERDICTS_TO_RESCALE])


def test_the_rescale_counts_verdicts_beyond_those_it_reads(
    session_factory: sessionmaker[Session], judged_passage: dict[str, object]
) -> None:
    """The verdicts read are capped (the newest 2,000), the count is not: a desk past the cap keeps rescaling."""
    capped = [
        ("my vpn tunnel keeps dropping", [judged_passage], int(number % 4 != 0)) for number in range(MIN_VERDICTS)
    ]
    assert rescale_on_verdicts(session_factory, 5000, lambda: capped)
    assert not rescale_on_verdicts(session_factory, 5000 + VERDICTS_TO_RESCALE - 1, lambda: capped)
    assert rescale_on_verdicts(session_factory, 5000 + VERDICTS_TO_RESCALE, lambda: capped)
