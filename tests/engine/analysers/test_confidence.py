"""What a ticket asks: its subject and asking sentences, without greetings and the story around them; and whether
a cited passage answers each of its requests."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.analysers.confidence import (
    RequestCoverage,
    answered_questions,
    judged_drafts,
    operator_verdicts,
    question_focus,
    request_answered,
)
from engine.core.enums import ActionState, Role
from engine.core.models import Action, Ticket
from engine.core.settings import Settings, load_settings
from engine.delivery.execution import void_open_drafts
from engine.operators.actions import override_decision
from engine.operators.permissions import Actor
from engine.trust.requests import Request
from kb.embed import get_embedder
from kb.self_test import AnsweredQuestion
from tests.factories import drafted, kb_item, proposed_resolution

ANN = Actor("ann", Role.AGENT)


def test_the_focus_of_a_friendly_ticket_is_its_subject_and_its_question() -> None:
    ticket = (
        "Moving Authenticator to new phone\nHi team,\nI'm getting a new phone on Friday, a work upgrade. "
        "How do I move the Microsoft Authenticator app over so I don't get locked out? "
        "The old phone keeps working until I hand it in.\nThanks, Lukas"
    )
    assert question_focus(ticket) == (
        "Moving Authenticator to new phone\n"
        "How do I move the Microsoft Authenticator app over so I don't get locked out?"
    )


def test_a_question_that_says_too_little_alone_keeps_the_sentence_before_it() -> None:
    ticket = (
        "Outlook on my iPhone\nOutlook on my personal iPhone says the device does not meet the requirements. "
        "My colleague has the same phone. Is there a way around this?"
    )
    assert question_focus(ticket) == (
        "Outlook on my iPhone\nMy colleague has the same phone.\nIs there a way around this?"
    )


def test_a_report_without_a_question_is_focused_on_its_subject_and_first_sentence() -> None:
    ticket = "Monitors flicker\nBoth monitors go black every few minutes. It started last week. I use the dock."
    assert question_focus(ticket) == "Monitors flicker\nBoth monitors go black every few minutes."
    assert question_focus("How do I connect the TV to Wi-Fi?") == "How do I connect the TV to Wi-Fi?"


API_KEYS = (
    "Northwind Cloud: creating and managing API keys\nOpen Settings > API keys and choose Create key; copy it once."
)
WEBHOOKS = "Northwind Cloud: webhooks\nEvery webhook request is signed; compare the signature header with your secret."
MFA = "Enrolling in MFA\nInstall the Authenticator app, scan the code and approve the test sign-in."


@pytest.fixture(scope="module")
def coverage() -> RequestCoverage:
    settings = load_settings(_env_file=None)
    return RequestCoverage(get_embedder(settings), settings.REQUEST_SIMILARITY_FLOOR)


def test_a_question_in_other_words_is_answered_by_the_passage_it_means(coverage: RequestCoverage) -> None:
    question = Request("Where do I generate an API token?")
    assert not request_answered(question, API_KEYS), "the words alone do not say it"
    assert coverage(question, [API_KEYS], [WEBHOOKS])


def test_a_passage_another_found_passage_beats_does_not_answer_by_meaning(coverage: RequestCoverage) -> None:
    assert not coverage(Request("Where do I generate an API token?"), [WEBHOOKS], [API_KEYS])


def test_an_off_topic_question_is_answered_by_nothing(coverage: RequestCoverage) -> None:
    assert not coverage(Request("What is on the canteen menu on Friday?"), [API_KEYS], [WEBHOOKS])


def test_a_request_to_act_is_answered_only_by_a_passage_that_names_it(coverage: RequestCoverage) -> None:
    directive = Request(
        "One more thing: please turn off the second sign-in step on my account, I keep losing my phone."
    )
    assert not coverage(directive, [MFA], [WEBHOOKS])


def test_questions_people_answered_bind_the_ticket_and_the_passage_an_approved_draft_cited(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        approved = proposed_resolution(session, confidence=0.6, decided_by="ann")
        edited = proposed_resolution(session, confidence=0.6, decided_by="ann")
        sent_by_engine = proposed_resolution(session, confidence=0.9)
        rejected = proposed_resolution(session, confidence=0.6, state=ActionState.REJECTED, decided_by="ann")
        for number, analysis in enumerate((approved, edited, sent_by_engine, rejected), 1):
            analysis.evidence = [kb_item(number, "Open the self-service portal and choose Reset.")]
        session.scalar(select(Action).where(Action.analysis_id == edited.id)).policy = {"edited_by": "ann"}
        session.commit()
        pairs = answered_questions(session)
    question = "How do I reset my password?\nPlease help."
    assert sorted(pairs, key=lambda pair: pair.source) == [
        AnsweredQuestion(question, ("kb", 1)),
        AnsweredQuestion(question, ("ticket", approved.ticket_id)),
        AnsweredQuestion(question, ("ticket", edited.ticket_id)),
    ], "an edited answer binds the question to the ticket (its sent text) but not to the draft's passage"


def test_a_draft_a_person_overrode_is_a_verdict_against_it_and_other_voided_drafts_are_none(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    """A person who escalates instead of sending the draft judged it; a draft voided by a re-analysis was never
    judged by anyone."""
    overridden, _ = drafted(session_factory, settings, subject="Refund", body="Please refund the duplicate charge.")
    superseded, draft_id = drafted(session_factory, settings, subject="VPN", body="How do I set up the VPN?")
    with session_factory.begin() as session:
        override_decision(session, settings, ANN, overridden, "escalate", reason="billing decides refunds")
        void_open_drafts(session, session.get(Ticket, superseded), reason="superseded by a new analysis")
    with session_factory() as session:
        assert session.get(Action, draft_id).state == ActionState.VOIDED
        verdicts = operator_verdicts(session)
        judged = judged_drafts(session)
    refund = "Refund\nPlease refund the duplicate charge."
    assert [(question, label) for question, _, label in verdicts] == [(refund, 0)]
    assert judged == 1, "the calibrate job's count of judged drafts counts the drafts the verdicts come from"
