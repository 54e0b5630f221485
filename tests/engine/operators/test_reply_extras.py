"""The copies and files a person adds to a reply: what is accepted, and the reason for what is not."""

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import OutgoingAttachment
from engine.core.enums import MessageKind, Role
from engine.core.models import AuditEntry, OutboxMessage
from engine.core.settings import Settings
from engine.operators.actions import send_manual_reply
from engine.operators.permissions import Actor
from engine.operators.reply_extras import MAX_CC, MAX_FILES, cc_addresses, reply_files
from tests.factories import new_ticket

DESK = "support@desk.example"
CUSTOMER = "rita@customer.example"


def test_copies_are_read_from_commas_semicolons_and_spaces_once_each_without_the_requester() -> None:
    typed = (
        "Boss@Customer.example; it@customer.example,\nboss@customer.example  <ops@customer.example> "
        "RITA@customer.example"
    )
    assert cc_addresses(typed, CUSTOMER, DESK) == [
        "boss@customer.example",
        "it@customer.example",
        "ops@customer.example",
    ]
    assert cc_addresses("  ", CUSTOMER, DESK) == []


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("boss@customer", "CC: “boss@customer” is not an e-mail address"),
        ("Boss Person", "CC: “Boss” is not an e-mail address"),
        ("a@b@customer.example", "CC: “a@b@customer.example” is not an e-mail address"),
        (
            "noreply@customer.example",
            "CC: noreply@customer.example is an automatic mailbox; a copy is never sent there",
        ),
        ("Support@Desk.example", "CC: recipient is this desk itself; a copy is never sent there"),
    ],
)
def test_a_copy_that_cannot_be_sent_is_refused_with_the_reason(typed: str, reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        cc_addresses(typed, CUSTOMER, DESK)
    assert str(refused.value) == reason


def test_at_most_max_cc_copies() -> None:
    many = ", ".join(f"person{n}@customer.example" for n in range(MAX_CC + 1))
    assert len(cc_addresses(many.rsplit(", ", 1)[0], CUSTOMER, DESK)) == MAX_CC
    with pytest.raises(ValueError, match=f"21 addresses, a reply may copy at most {MAX_CC}"):
        cc_addresses(many, CUSTOMER, DESK)


def test_files_keep_a_bare_name_and_a_real_content_type() -> None:
    [file] = reply_files([OutgoingAttachment("C:\\Users\\ann\\steps\x07.pdf", "Application/PDF", b"%PDF")], 1000)
    assert (file.filename, file.content_type, file.data) == ("steps.pdf", "application/pdf", b"%PDF")
    [unknown] = reply_files([OutgoingAttachment("notes", "not a type", b"x")], 1000)
    assert unknown.content_type == "application/octet-stream"


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        (
            [OutgoingAttachment("big.zip", "application/zip", b"x" * 2048)],
            "big.zip is 2 KB, over the 1 KB limit for one file",
        ),
        (
            [OutgoingAttachment(f"part{n}.txt", "text/plain", b"x" * 400) for n in range(3)],
            "the files together are 1 KB, over the 1 KB limit for one reply",
        ),
        ([OutgoingAttachment("empty.txt", "text/plain", b"")], "empty.txt is empty"),
        ([OutgoingAttachment("../", "text/plain", b"x")], "an attached file has no name"),
        (
            [OutgoingAttachment(f"{n}.txt", "text/plain", b"x") for n in range(MAX_FILES + 1)],
            f"{MAX_FILES + 1} files attached, a reply may carry at most {MAX_FILES}",
        ),
    ],
)
def test_files_over_the_limits_are_refused_with_the_reason(files: list[OutgoingAttachment], reason: str) -> None:
    with pytest.raises(ValueError) as refused:
        reply_files(files, 1024)
    assert str(refused.value) == reason


def test_a_refused_copy_queues_nothing_and_a_sent_one_is_audited(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    ticket_id = new_ticket(session_factory, settings)
    ann = Actor("ann", Role.AGENT)
    with pytest.raises(ValueError, match="is not an e-mail address"), session_factory.begin() as session:
        send_manual_reply(session, settings, ann, ticket_id, subject="Hi", body="Body", cc="boss@")
    with session_factory.begin() as session:
        assert session.scalar(select(OutboxMessage).where(OutboxMessage.kind == MessageKind.MANUAL_REPLY)) is None
        send_manual_reply(
            session,
            settings,
            ann,
            ticket_id,
            subject="Hi",
            body="Body",
            cc="boss@customer.example",
            files=[OutgoingAttachment("steps.txt", "text/plain", b"reboot")],
        )
    with session_factory() as session:
        entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "manual_reply"))
        assert entry.details["cc"] == ["boss@customer.example"] and entry.details["files"] == ["steps.txt"]
