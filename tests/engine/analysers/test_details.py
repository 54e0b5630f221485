"""What a request for information asks: the details the kind of request needs that the customer has not given."""

from engine.analysers.details import information_gaps
from engine.core.templates import GAP_QUESTIONS
from tests.factories import text_snapshot


def test_a_workspace_the_customer_named_is_not_asked_for() -> None:
    report = "The dashboard shows a blank page. Nothing loads."
    gaps, _ = information_gaps(text_snapshot(report, subject="Blank dashboard", category="product_bug"))
    assert "workspace" in gaps
    gaps, questions = information_gaps(
        text_snapshot(f"{report} Workspace ws_91fa3d.", subject="Blank dashboard", category="product_bug")
    )
    assert "workspace" not in gaps and GAP_QUESTIONS["workspace"] not in questions
    assert gaps == ["error", "steps", "browser"]


def test_an_invoice_needs_its_number_and_what_is_wrong_never_an_error_message() -> None:
    gaps, questions = information_gaps(
        text_snapshot("The invoice you sent us is wrong. Please correct.", subject="Invoice wrong", category="billing")
    )
    assert gaps == ["invoice", "discrepancy"]
    assert not any("error" in question or "screenshot" in question.lower() for question in questions)
    given = "Invoice NWC-INV-004812 charges 18 seats instead of 12."
    assert information_gaps(text_snapshot(given, subject="Invoice wrong", category="billing")) == ([], [])


def test_an_attached_file_answers_which_error_and_a_date_answers_since_when() -> None:
    report = "Printing fails on the third floor printer since Monday."
    gaps, _ = information_gaps(text_snapshot(report, subject="Printer", category="hardware"))
    assert gaps == ["error", "device"]
    gaps, _ = information_gaps(
        text_snapshot(report, subject="Printer", category="hardware", attachments=("screenshot.png",))
    )
    assert gaps == ["device"]


def test_a_how_to_question_lacks_nothing_and_an_unknown_kind_asks_the_general_details() -> None:
    assert information_gaps(text_snapshot("How do I export a report to CSV?", category="product_howto")) == ([], [])
    gaps, _ = information_gaps(text_snapshot("It is broken again, please fix", subject="broken"))
    assert gaps == ["error", "steps", "since", "affected"]


def test_a_question_of_an_unknown_kind_is_not_asked_for_a_fault_reports_details() -> None:
    for question in (
        "The light on the box glows purple, what does that mean?",
        "Is your company hiring software developers?",
        "my laptop drops the wifi every ten minutes but my phone is fine, any idea why?",
    ):
        assert information_gaps(text_snapshot(question, subject="")) == ([], [])
    gaps, _ = information_gaps(text_snapshot("The light on the box glows purple and nothing loads.", subject="box"))
    assert gaps == ["error", "steps", "since", "affected"]


def test_a_question_of_a_known_kind_is_still_asked_what_its_kind_needs() -> None:
    gaps, _ = information_gaps(
        text_snapshot("The dashboard is blank after the update, why does that happen?", category="product_bug")
    )
    assert gaps == ["error", "steps", "workspace", "browser"]


def test_can_you_asks_the_desk_to_act_and_lacks_what_a_fault_report_lacks() -> None:
    """ "Can you help?" is no how-to question: a vague plea on a known kind of request is asked its details."""
    plea = text_snapshot("My calendar is not right. Can you help?", subject="Calendar", category="email")
    gaps, _ = information_gaps(plea)
    assert gaps == ["error", "since", "mailbox"]
    assert information_gaps(text_snapshot("Can I share my calendar with my team?", category="email")) == ([], [])
