import pytest

from engine.intake.reply_classifier import classify_reply, reply_text


@pytest.mark.parametrize(
    "body",
    [
        "Thanks, that did it!",
        "Thank you so much, it works now.",
        "Perfect, all good.\n\nOn Mon, 3 Nov 2026 support@desk.example wrote:\n> It still fails? Reply to this e-mail.",
        "Problem solved, cheers",
        "Danke, funktioniert jetzt!",
    ],
)
def test_a_short_thanks_or_confirmation_is_solved(body: str) -> None:
    assert classify_reply(body) == "solved"


@pytest.mark.parametrize(
    "body",
    [
        "Thanks, but it still does not work.",
        "It didn't help, same error as before.",
        "Unfortunately the VPN drops again after an hour.",
        "I tried the steps; the problem persists.",
        "Thanks! It doesn't work though",
    ],
)
def test_a_reply_saying_the_problem_goes_on_is_unsolved(body: str) -> None:
    assert classify_reply(body) == "unsolved"


@pytest.mark.parametrize(
    "body", ["Thanks. Can you also reset my colleague's password?", "Here is the screenshot you asked for.", ""]
)
def test_questions_and_anything_else_are_unclear(body: str) -> None:
    assert classify_reply(body) == "unclear"


def test_quoted_lines_are_not_the_customers_words() -> None:
    assert reply_text("Great, fixed.\n> still broken?\n-----Original Message-----\nnot working") == "Great, fixed."
