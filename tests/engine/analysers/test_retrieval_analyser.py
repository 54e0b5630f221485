"""The LLM_PROVIDER=none analyser on a real (small) knowledge base: resolve, ask, escalate, never unsafe."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.analysers.details import information_gaps
from engine.analysers.retrieval_analyser import RetrievalAnalyser, held_answer, is_vague, resolution_steps
from engine.core.enums import OutboxState, OutcomeState, TicketStatus
from engine.core.models import Analysis, Escalation, OutboxMessage, ResolutionOutcome, Ticket, TimelineEvent
from engine.core.settings import Settings
from engine.intake.ingest import ingest
from engine.outcomes.learned import TrackRecord
from engine.pipeline import process_pending
from kb.indexer import add_document
from kb.store import reset_caches
from tests.factories import own_transactions, resolution_outcome, text_snapshot, ticket_in

ARTICLES = Path(__file__).resolve().parents[3] / "connectors" / "demo_data" / "kb"
CORPUS = sorted((Path(__file__).resolve().parents[2] / "corpus" / "injection").glob("*.txt"))


@pytest.fixture
def analyser(session_factory: sessionmaker[Session], settings: Settings) -> Iterator[RetrievalAnalyser]:
    reset_caches()
    with session_factory() as session:
        for name in ("invite-users-northwind-cloud.md", "vpn-setup.md", "reset-password.md", "printer-setup.md"):
            add_document(own_transactions(session), settings, name, (ARTICLES / name).read_bytes())
    yield RetrievalAnalyser(session_factory, settings)
    reset_caches()


def test_how_to_is_answered_from_the_matching_article(analyser: RetrievalAnalyser) -> None:
    result = analyser.analyse(
        text_snapshot("How do I invite new users to our Northwind Cloud workspace?", subject="Inviting colleagues")
    )
    assert result.decision == "resolve", result.reason
    assert result.evidence[0]["title"] == "Northwind Cloud: inviting users to your workspace"
    assert result.evidence[0]["document"] == "invite-users-northwind-cloud.md"
    sources = next(line for line in (result.draft_body or "").splitlines() if line.startswith("Sources: "))
    assert sources.startswith("Sources: Northwind Cloud: inviting users to your workspace")
    assert sources.count("Northwind Cloud: inviting users") == 1, sources
    assert result.confidence >= analyser.settings.RESOLVE_MIN_CONFIDENCE
    assert result.draft_subject == "Re: your request [TCKT-1]"
    assert "retrieval-only" not in result.draft_body and "[" not in result.draft_body, "our internals stay with us"
    assert "invite-users" not in result.draft_body, "the article is cited by its title, not its file name"
    assert result.resolution_steps and not any(step.startswith("#") for step in result.resolution_steps)
    assert not any("**" in step for step in result.resolution_steps), "markdown is rendered, not pasted"
    assert result.guards == []
    assert result.escalation["components"]["system_impact"]["weight"] == 0.15


def test_vague_problem_report_gets_category_specific_questions(analyser: RetrievalAnalyser) -> None:
    result = analyser.analyse(text_snapshot("it is broken again, please fix", subject="broken", category="network"))
    assert result.decision == "ask"
    assert "Where are you connecting from (office, home, VPN) and on which device?" in result.follow_up_questions
    assert result.draft_subject == "Re: your request [TCKT-1]"
    assert "retrieval-only" not in result.draft_body


def test_a_short_report_that_names_only_a_topic_is_asked_about_not_answered(analyser: RetrievalAnalyser) -> None:
    result = analyser.analyse(text_snapshot("Password issue again.", subject="Password issue again", category="access"))
    assert result.evidence and result.evidence[0]["title"] == "Resetting your Northwind Labs password"
    assert result.confidence >= analyser.settings.RESOLVE_MIN_CONFIDENCE, "the article alone would have been proposed"
    assert result.decision == "ask", "whichever article matches two words, sending it would be a guess"


def test_a_short_report_that_says_what_is_wrong_is_not_vague_and_one_that_names_only_a_topic_is() -> None:
    report = text_snapshot("I sent my document to the office printer but nothing ever comes out of the printer")
    gaps, _ = information_gaps(report)
    assert gaps == ["error", "steps", "since"], "it lacks what a fault report needs"
    assert not is_vague(report, gaps), "but it says what is wrong: an article that answers it may be drafted"
    topic = text_snapshot("Password issue again.", subject="Password issue again", category="access")
    assert is_vague(topic, information_gaps(topic)[0])


def test_outage_goes_to_the_incident_team(analyser: RetrievalAnalyser) -> None:
    result = analyser.analyse(
        text_snapshot("502 Bad Gateway for all users since 9:00, nobody can work", category="outage")
    )
    assert result.decision == "escalate"
    assert result.team == "Incident Response"
    assert "category outage always goes to a person" in result.reason


def test_knowledge_base_failure_hands_the_ticket_to_a_person(
    analyser: RetrievalAnalyser, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> list[object]:
        raise ConnectionError("Chroma server at 127.0.0.1:8000 refused the connection")

    monkeypatch.setattr("engine.analysers.retrieval_analyser.search", broken)
    result = analyser.analyse(text_snapshot("How do I invite new users to Northwind Cloud?"))
    assert result.decision == "escalate"
    assert result.reason.startswith("knowledge base unavailable: ConnectionError")


def test_no_injection_ever_auto_sends_even_with_autopilot_on(
    analyser: RetrievalAnalyser, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings.AUTOPILOT_ENABLED = True
    settings.AUTO_SEND_MIN_CONFIDENCE = 0.0
    with session_factory.begin() as session:
        for case in CORPUS:
            subject, _, body = case.read_text(encoding="utf-8").partition("\n\n")
            ingest(
                session,
                ticket_in(subject=subject + " — how do I invite users to Northwind Cloud?", body=body),
                settings,
            )
    process_pending(session_factory, settings, analyser, worker="w")
    with session_factory() as session:
        statuses = session.scalars(select(Ticket.status)).all()
        assert len(statuses) == len(CORPUS)
        assert set(statuses) == {TicketStatus.ESCALATED}
        sent_kinds = session.scalars(select(OutboxMessage.kind).where(OutboxMessage.state == OutboxState.PENDING)).all()
        assert set(sent_kinds) == {"acknowledgement"}
        assert session.scalars(select(Escalation.weighted_score)).all()


def test_confident_answer_goes_out_on_autopilot_and_is_recorded(
    analyser: RetrievalAnalyser, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings.AUTOPILOT_ENABLED = True
    settings.AUTO_SEND_MIN_CONFIDENCE = 0.5
    with session_factory.begin() as session:
        ingest(
            session,
            ticket_in(
                subject="Inviting colleagues", body="How do I invite new users to our Northwind Cloud workspace?"
            ),
            settings,
        )
    process_pending(session_factory, settings, analyser, worker="w")
    with session_factory() as session:
        ticket = session.scalar(select(Ticket))
        assert ticket.status == TicketStatus.RESOLVED
        kinds = session.scalars(select(OutboxMessage.kind).order_by(OutboxMessage.id)).all()
        assert kinds == ["acknowledgement", "resolution"]
        assert ticket.escalation_criteria["system_impact"] == "Low"


def test_reopened_automatic_answers_lower_the_next_confidence_in_their_category_below_auto_send(
    analyser: RetrievalAnalyser, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    settings.AUTOPILOT_ENABLED = True
    settings.AUTO_SEND_MIN_CONFIDENCE = 0.5
    question = {"subject": "Inviting colleagues", "body": "How do I invite new users to our Northwind Cloud workspace?"}
    with session_factory.begin() as session:
        ingest(session, ticket_in(category="product_howto", **question), settings)
    process_pending(session_factory, settings, analyser, worker="w")
    with session_factory.begin() as session:
        first = session.scalars(select(ResolutionOutcome)).one()
        assert first.confidence >= 0.5 and first.category == "product_howto"
        for _ in range(20):
            resolution_outcome(
                session, category="product_howto", state=OutcomeState.REOPENED, confidence=first.confidence
            )
        ingest(session, ticket_in(category="product_howto", **question), settings)
    process_pending(session_factory, settings, RetrievalAnalyser(session_factory, settings), worker="w")
    with session_factory() as session:
        second = session.scalars(select(Ticket).order_by(Ticket.id.desc())).first()
        confidence = session.scalar(select(Analysis.confidence).where(Analysis.ticket_id == second.id))
        note = session.scalar(
            select(TimelineEvent).where(
                TimelineEvent.ticket_id == second.id, TimelineEvent.type == "confidence_adjusted"
            )
        )
        assert second.status != TicketStatus.RESOLVED and confidence < 0.5 < first.confidence
        assert note.data["fitted"] == first.confidence and note.data["adjusted"] == confidence
        assert note.title.startswith(f"Confidence lowered from {first.confidence:.2f} to {confidence:.2f}")


def test_a_passage_gives_its_sentences_without_the_section_heading_it_starts_with() -> None:
    passage = (
        "Home office\nOne monitor and one **NW Dock** can be ordered for home working. Delivery takes about 5 days."
    )
    assert resolution_steps(passage) == [
        "One monitor and one NW Dock can be ordered for home working.",
        "Delivery takes about 5 days.",
    ]
    steps = "Moving to a new phone\n1. Install Authenticator on the new phone.\n2. Scan the QR code."
    assert resolution_steps(steps) == ["Install Authenticator on the new phone.", "Scan the QR code."]


HOW_TO = "How do I invite new users to our Northwind Cloud workspace?"


def test_a_how_to_alone_is_still_answered_with_every_request_covered(analyser: RetrievalAnalyser) -> None:
    result = analyser.analyse(text_snapshot(f"Hi team, {HOW_TO} Thanks in advance!", subject="Inviting colleagues"))
    assert result.decision == "resolve", result.reason
    assert result.guards == []


def test_a_how_to_with_a_bank_detail_change_waits_with_that_sentence_quoted(analyser: RetrievalAnalyser) -> None:
    """Worded past the sensitive-intent rules: the coverage rule holds it all the same."""
    iban = "From now on my refunds should go to NL91 ABNA 0417 1643 00, please update it."
    result = analyser.analyse(text_snapshot(f"{HOW_TO} {iban}", subject="Inviting colleagues"))
    assert result.decision == "resolve", result.reason
    assert f'nothing in the cited knowledge answers: "{iban}"' in result.guards, result.guards


def test_a_how_to_with_an_off_topic_question_waits_for_a_person(analyser: RetrievalAnalyser) -> None:
    result = analyser.analyse(
        text_snapshot(f"{HOW_TO} And where can I park my car at the Boston office?", subject="Inviting colleagues")
    )
    assert result.decision == "resolve", "the how-to is answered, the parking question is not"
    assert result.guards == [
        'nothing in the cited knowledge answers: "And where can I park my car at the Boston office?"'
    ]


@pytest.mark.parametrize(
    ("subject", "body", "language"),
    [
        ("Reset hasła", "Dzień dobry, jak mogę zresetować hasło do konta Northwind Labs? Z góry dziękuję.", "Polish"),
        ("パスワード", "Northwind Labs のパスワードをリセットする方法を教えてください。", "Japanese"),
    ],
)
def test_a_ticket_in_a_language_the_knowledge_base_is_not_in_is_held_naming_it(
    analyser: RetrievalAnalyser, subject: str, body: str, language: str
) -> None:
    result = analyser.analyse(text_snapshot(body, subject=subject))
    assert f"written in {language}; the knowledge base is in English" in result.guards, result.guards


def test_a_how_to_whose_second_sentence_asks_in_another_language_is_held(analyser: RetrievalAnalyser) -> None:
    """Drafted or not, a person sees the sentence's language named (its quote: tests/engine/trust/test_decision.py)."""
    polish = "Proszę też zmienić mój numer telefonu."
    result = analyser.analyse(text_snapshot(f"{HOW_TO} {polish}", subject="Inviting colleagues"))
    assert any("Polish" in guard for guard in result.guards), result.guards


def test_a_table_gives_its_rows_as_lines_and_a_heading_alone_gives_no_step() -> None:
    table = (
        "Common errors\n| Response | Cause | Fix |\n|----------|-------|-----|\n"
        "| 401 `invalid_api_key` | Key mistyped, revoked or expired | Create a new key |\n"
        "| 429 `rate_limited` | Too many requests | Honour `Retry-After` |"
    )
    assert resolution_steps(table) == [
        "Response: Cause; Fix",
        "401 invalid_api_key: Key mistyped, revoked or expired; Create a new key",
        "429 rate_limited: Too many requests; Honour Retry-After",
    ]
    assert resolution_steps("Common errors") == []
    bullets = "Before you start\n- an **Admin** role\n- the workspace ID\nBoth are under Settings."
    assert resolution_steps(bullets) == ["an Admin role", "the workspace ID"]


def test_a_draft_carries_the_table_of_its_section_and_passes_the_final_check(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """The section's prose and its table are separate chunks; the draft quotes the table whichever one is found."""
    reset_caches()
    with session_factory() as session:
        for name in (
            "sso-saml-setup-northwind-cloud.md",
            "api-keys-northwind-cloud.md",
            "invite-users-northwind-cloud.md",
            "vpn-setup.md",
            "plans-billing-invoices-northwind-cloud.md",
        ):
            add_document(own_transactions(session), settings, name, (ARTICLES / name).read_bytes())
    settings.AUTOPILOT_ENABLED = True
    settings.AUTO_SEND_MIN_CONFIDENCE = 0.5
    question = "Which values do I enter in our identity provider for SAML single sign-on?"
    with session_factory.begin() as session:
        ingest(session, ticket_in(subject="SAML values", body=question, category="product_howto"), settings)
    process_pending(session_factory, settings, RetrievalAnalyser(session_factory, settings), worker="w")
    with session_factory() as session:
        analysis = session.scalars(select(Analysis)).one()
        assert "Values to enter in your identity provider" in analysis.evidence[0]["location"]
        assert "Name ID format: EmailAddress" in analysis.resolution_steps
        assert not any(step == "Values to enter in your identity provider" for step in analysis.resolution_steps)
        assert session.scalar(select(Ticket.status)) == TicketStatus.RESOLVED, "the final check let it go out"
        sent = session.scalar(select(OutboxMessage.body_text).where(OutboxMessage.kind == "resolution"))
        assert "2. Entity ID / Audience URI: https://app.northwind-cloud.example/saml/metadata/<workspace-id>" in sent
    reset_caches()


def test_an_invoice_question_is_asked_about_the_invoice_not_an_error_message(analyser: RetrievalAnalyser) -> None:
    result = analyser.analyse(
        text_snapshot("The invoice you sent us is wrong. Please correct.", subject="Invoice wrong", category="billing")
    )
    assert result.decision == "ask"
    assert result.information_gaps == ["invoice", "discrepancy"]
    assert "screenshot" not in (result.draft_body or "").lower()
    assert "Which invoice or subscription is this about (its number or date)?" in (result.draft_body or "")


@pytest.mark.parametrize(
    ("record", "persons_answer", "held"),
    [
        (None, True, True),
        (TrackRecord("learned:1", approved=1), True, True),
        (TrackRecord("learned:1", approved=1, confirmed=1), True, False),
        (TrackRecord("learned:1", approved=2), True, False),
        (None, False, False),
        (TrackRecord("kb:1:", approved=0), False, False),
    ],
)
def test_a_persons_answer_given_to_another_question_for_the_first_time_is_a_draft(
    settings: Settings, record: TrackRecord | None, persons_answer: bool, held: bool
) -> None:
    """A learned answer or a resolved ticket's passage, approved only when it was taught, waits for a person at any
    confidence; an article's section is not held for that."""
    reasons = held_answer(record, settings, persons_answer=persons_answer)
    assert any("for the first time" in reason for reason in reasons) is held


def test_an_answer_re_opened_twice_is_held_on_either_route(settings: Settings) -> None:
    record = TrackRecord("learned:1", approved=9, reopened=2, reopened_since_review=2)
    for persons_answer in (True, False):
        assert held_answer(record, settings, persons_answer=persons_answer) == [
            "this answer was re-opened 2× by customers: a lead looks at it first"
        ]
