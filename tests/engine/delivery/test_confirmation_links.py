"""The "Did this solve your problem?" links over real HTTP: a resolution e-mail's links clicked when valid,
expired, forged, replayed, and the other link after one was used; "no" re-opens the ticket for a person."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.core.enums import OutcomeState, TicketStatus
from engine.core.models import OutboxMessage, ResolutionOutcome, Ticket, TimelineEvent, utcnow
from engine.core.settings import Settings
from engine.delivery.confirmation_links import check_link, link_secret, sign_link
from engine.delivery.webhooks import start_webhook_server
from engine.pipeline import process_pending
from tests.app_process import free_port
from tests.factories import Proposes, new_ticket

LINK = re.compile(r"(http://desk\.example:8443/r/(\S+))")


@pytest.fixture
def desk(settings: Settings) -> Settings:
    settings.DESK_PUBLIC_URL = "http://desk.example:8443"
    settings.AUTOPILOT_ENABLED = True
    return settings


@pytest.fixture
def endpoint(session_factory: sessionmaker[Session], desk: Settings) -> Iterator[str]:
    server = start_webhook_server(free_port(), session_factory, desk)
    try:
        yield f"http://127.0.0.1:{server.server_port}/r/"
    finally:
        server.shutdown()


def resolved_with_links(factory: sessionmaker[Session], settings: Settings) -> tuple[int, str, str]:
    """An automatically resolved ticket and the tokens of its yes and no links, as the e-mail carries them."""
    ticket_id = new_ticket(factory, settings)
    process_pending(factory, settings, Proposes(), worker="w")
    with factory() as session:
        body = session.scalar(select(OutboxMessage.body_text).where(OutboxMessage.kind == "resolution"))
    (_, yes), (_, no) = LINK.findall(body)
    return ticket_id, yes, no


def outcome_of(factory: sessionmaker[Session], ticket_id: int) -> ResolutionOutcome:
    with factory() as session:
        return session.scalars(select(ResolutionOutcome).where(ResolutionOutcome.ticket_id == ticket_id)).one()


def test_the_resolution_email_carries_signed_links_on_the_public_host(
    session_factory: sessionmaker[Session], desk: Settings
) -> None:
    ticket_id, yes, no = resolved_with_links(session_factory, desk)
    key = link_secret(desk)
    assert check_link(key, yes).answer == "yes" and check_link(key, no).answer == "no"
    assert "desk.example" in desk.own_domains()
    with session_factory() as session:
        assert "/r/" not in (session.get(Ticket, ticket_id).resolution or "")


def test_no_links_without_a_public_url(session_factory: sessionmaker[Session], settings: Settings) -> None:
    settings.AUTOPILOT_ENABLED = True
    ticket_id = new_ticket(session_factory, settings)
    process_pending(session_factory, settings, Proposes(), worker="w")
    with session_factory() as session:
        body = session.scalar(select(OutboxMessage.body_text).where(OutboxMessage.kind == "resolution"))
    assert "/r/" not in body and "Did this solve" not in body
    assert outcome_of(session_factory, ticket_id).state == OutcomeState.PENDING


def test_yes_confirms_once_with_a_rating_and_the_other_link_changes_nothing(
    session_factory: sessionmaker[Session], desk: Settings, endpoint: str
) -> None:
    ticket_id, yes, no = resolved_with_links(session_factory, desk)
    page = requests.get(endpoint + yes, timeout=10)
    assert page.status_code == 200 and "Did this solve your problem?" in page.text
    assert f"TCKT-{ticket_id}" not in page.text
    assert outcome_of(session_factory, ticket_id).answer is None  # opening the link records nothing
    answered = requests.post(endpoint + yes, data={"rating": "5"}, timeout=10)
    assert answered.status_code == 200 and "glad it is solved" in answered.text
    replayed = requests.post(endpoint + yes, data={"rating": "1"}, timeout=10)
    other = requests.post(endpoint + no, data={"comment": "changed my mind"}, timeout=10)
    assert "already have your answer" in replayed.text and "already have your answer" in other.text
    outcome = outcome_of(session_factory, ticket_id)
    assert (outcome.state, outcome.answer, outcome.csat, outcome.comment) == (OutcomeState.CONFIRMED, "yes", 5, None)
    with session_factory() as session:
        assert session.get(Ticket, ticket_id).status == TicketStatus.RESOLVED


def test_no_reopens_the_ticket_for_a_person_with_the_comment(
    session_factory: sessionmaker[Session], desk: Settings, endpoint: str
) -> None:
    ticket_id, _, no = resolved_with_links(session_factory, desk)
    answered = requests.post(endpoint + no, data={"comment": "Still the same error", "rating": "2"}, timeout=10)
    assert answered.status_code == 200 and "A person from our team" in answered.text
    with session_factory() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket.status == TicketStatus.ESCALATED and ticket.action_required and ticket.pending_since is None
        rejected = session.scalars(
            select(TimelineEvent).where(
                TimelineEvent.ticket_id == ticket_id, TimelineEvent.type == "resolution_rejected"
            )
        ).one()
        assert rejected.data["comment"] == "Still the same error"
        assert rejected.title == "Customer says the resolution did not solve it, rated 2/5: “Still the same error”"
    assert outcome_of(session_factory, ticket_id).state == OutcomeState.REOPENED


@pytest.mark.parametrize("tamper", ["signature", "answer", "expiry", "garbage"])
def test_forged_links_are_refused_and_change_nothing(
    session_factory: sessionmaker[Session], desk: Settings, endpoint: str, tamper: str
) -> None:
    ticket_id, yes, _ = resolved_with_links(session_factory, desk)
    outcome, answer, expiry, signature = yes.split(".")
    forged = {
        "signature": f"{outcome}.{answer}.{expiry}.{signature[::-1]}",
        "answer": f"{outcome}.n.{expiry}.{signature}",
        "expiry": f"{outcome}.{answer}.{int(expiry) + 86400}.{signature}",
        "garbage": "<script>alert(1)</script>",
    }[tamper]
    status = 400 if tamper == "garbage" else 404  # not even of our links' shape, or of it but not signed by us
    for method in (requests.get, requests.post):
        answered = method(endpoint + forged, timeout=10)
        assert answered.status_code == status and "<script>" not in answered.text
        assert "This link is not valid" in answered.text
    assert outcome_of(session_factory, ticket_id).answer is None


@pytest.mark.parametrize(
    "tamper",
    ["non-ascii signature", "percent-encoded non-ascii", "unicode digits", "superscript digit", "fullwidth letters"],
)
def test_a_link_with_characters_outside_our_alphabet_is_a_clear_400_logged_without_the_token(
    session_factory: sessionmaker[Session],
    desk: Settings,
    endpoint: str,
    tamper: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticket_id, yes, _ = resolved_with_links(session_factory, desk)
    outcome, answer, expiry, signature = yes.split(".")
    forged = {
        "non-ascii signature": f"{outcome}.{answer}.{expiry}.{signature[:-2]}é€",
        "percent-encoded non-ascii": f"{outcome}.{answer}.{expiry}.{signature[:-1]}%C3%A9",
        "unicode digits": f"{'١' * len(outcome)}.{answer}.{expiry}.{signature}",
        "superscript digit": f"{outcome}.{answer}.{expiry[:-1]}².{signature}",
        "fullwidth letters": f"{outcome}.{answer}.{expiry}.{'Ａ' * len(signature)}",
    }[tamper]
    caplog.set_level(logging.INFO)
    for method in (requests.get, requests.post):
        answered = method(endpoint + forged, timeout=10)
        assert answered.status_code == 400, answered.text
        assert "This link is not valid" in answered.text and "Traceback" not in answered.text
    assert check_link(link_secret(desk), forged).verdict == "malformed"
    assert outcome_of(session_factory, ticket_id).answer is None
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "confirmation link refused" in logged
    assert signature[:-2] not in logged and expiry not in logged


def test_an_expired_link_says_so_and_changes_nothing(
    session_factory: sessionmaker[Session], desk: Settings, endpoint: str
) -> None:
    ticket_id, yes, _ = resolved_with_links(session_factory, desk)
    outcome_id = int(yes.split(".")[0])
    expired = sign_link(link_secret(desk), outcome_id, "no", utcnow() - timedelta(minutes=1))
    answered = requests.post(endpoint + expired, data={"comment": "late"}, timeout=10)
    assert answered.status_code == 410 and "expired" in answered.text
    assert outcome_of(session_factory, ticket_id).answer is None
    with session_factory() as session:
        assert session.get(Ticket, ticket_id).status == TicketStatus.RESOLVED


def test_a_bad_rating_is_refused_and_the_link_stays_usable(
    session_factory: sessionmaker[Session], desk: Settings, endpoint: str
) -> None:
    ticket_id, yes, _ = resolved_with_links(session_factory, desk)
    refused = requests.post(endpoint + yes, data={"rating": "11"}, timeout=10)
    assert refused.status_code == 400 and "1 to 5" in refused.text
    assert requests.post(endpoint + yes, data={}, timeout=10).status_code == 200
    assert outcome_of(session_factory, ticket_id).answer == "yes"


def test_the_link_key_is_generated_once_and_kept(desk: Settings) -> None:
    first = link_secret(desk)
    assert len(first) >= 32 and link_secret(desk) == first
    assert (desk.DATA_DIR / "link_secret").stat().st_mode & 0o077 == 0
