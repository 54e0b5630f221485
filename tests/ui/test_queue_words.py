from ui.queue_words import confirmation_text, queue_count_line, result_text, tickets


def test_a_confirmation_names_the_tickets_it_acts_on() -> None:
    assert confirmation_text({"op": "approve", "drafts": {4: (1, 1)}}) == (
        "Send the draft on TCKT-4 exactly as drafted to its customer?"
    )
    assert confirmation_text({"op": "approve", "drafts": {9: (1, 1), 4: (2, 1)}}) == (
        "Send the 2 drafts on TCKT-4 and TCKT-9 exactly as drafted to their customers?"
    )
    assert confirmation_text({"op": "close", "ids": list(range(1, 9))}) == (
        "Close TCKT-1, TCKT-2, TCKT-3, TCKT-4, TCKT-5 and 3 more? Open drafts on them are voided."
    )
    assert tickets([7]) == "TCKT-7"


def test_results_and_counts_read_in_words() -> None:
    assert result_text("approve", [3, 1], {}) == "Sent: TCKT-1 and TCKT-3"
    assert result_text("close", [], {5: "already closed"}) == "Closed: none · skipped TCKT-5: already closed"
    assert queue_count_line(1, 1, 1) == "1 ticket · page 1 of 1"
