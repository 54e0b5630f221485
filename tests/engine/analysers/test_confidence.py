"""What a ticket asks: its subject and asking sentences, without greetings and the story around them."""

from __future__ import annotations

from engine.analysers.confidence import question_focus


def test_the_focus_of_a_friendly_ticket_is_its_subject_and_its_question() -> None:
    ticket = (
        "Moving Authenticator to new phone\nHi team,\nI'm getting a new phone on Friday, a work upgrade. "
        "How do I move the Microsoft Authenticator app over so I don't get locked out? "
        "The old phone keeps working until I hand it in.\nThanks, Lukas"
    )
    assert question_focus(ticket) == (
        "Moving Authenticator to new phone "
        "How do I move the Microsoft Authenticator app over so I don't get locked out?"
    )


def test_a_question_that_says_too_little_alone_keeps_the_sentence_before_it() -> None:
    ticket = (
        "Outlook on my iPhone\nOutlook on my personal iPhone says the device does not meet the requirements. "
        "My colleague has the same phone. Is there a way around this?"
    )
    assert question_focus(ticket) == "Outlook on my iPhone My colleague has the same phone. Is there a way around this?"


def test_a_report_without_a_question_is_focused_on_its_subject_and_first_sentence() -> None:
    ticket = "Monitors flicker\nBoth monitors go black every few minutes. It started last week. I use the dock."
    assert question_focus(ticket) == "Monitors flicker Both monitors go black every few minutes."
    assert question_focus("How do I connect the TV to Wi-Fi?") == "How do I connect the TV to Wi-Fi?"
