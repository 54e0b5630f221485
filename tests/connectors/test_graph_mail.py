"""Outlook mailbox through Microsoft Graph: msal against the identity emulator (TLS), delta paging, threading."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from connectors.graph_mail import GraphMailSource, configuration_problems
from connectors.http import AuthenticationError, ConnectorError, MalformedResponseError
from engine.core.models import EmailInteraction, Ticket
from engine.core.settings import Settings
from engine.jobs import poll_source
from kb.extract import extract
from tests.connectors.conftest import Sleeps, graph_values, with_settings
from tests.emulators.base import Response
from tests.emulators.graph import GraphEmulator, IdentityEmulator, file_attachment, graph_error, item_attachment


@pytest.fixture
def make_source(
    plain_settings: Settings, identity: IdentityEmulator, graph: GraphEmulator, tls_files: tuple[Path, Path, Path]
):
    def build(settings: Settings | None = None, sleeps: Sleeps | None = None, **values: object) -> GraphMailSource:
        configured = with_settings(
            settings or plain_settings, **{**graph_values(identity, graph, tls_files[0]), **values}
        )
        return GraphMailSource(configured, sleep=sleeps if sleeps is not None else Sleeps())

    return build


def items_of(pages) -> list:
    return [item for page in pages for item in page.items]


def test_delta_pages_each_message_once_and_resumes(
    make_source, graph: GraphEmulator, identity: IdentityEmulator
) -> None:
    sent = [graph.deliver(f"user{n}@example.com", f"Question {n}") for n in range(23)]
    source = make_source(CONNECTOR_PAGE_SIZE=5)
    pages = list(source.poll(None))
    assert [item.external_id for item in items_of(pages)] == [m["id"] for m in sent]
    assert "$deltatoken" in pages[-1].cursor
    assert len(identity.issued) == 1, "one token, cached by msal for every call"
    assert all(message["isRead"] for message in graph.messages.values())
    later = graph.deliver("late@example.com", "Arrived later")
    again = items_of(make_source(CONNECTOR_PAGE_SIZE=5).poll(pages[-1].cursor))
    ids = [item.external_id for item in again]
    assert later["id"] in ids
    assert set(ids) - {later["id"]} <= {m["id"] for m in sent}, "read-marks come back as changes, ingest dedupes them"


def test_restart_mid_round_continues_from_the_next_link(make_source, graph: GraphEmulator) -> None:
    sent = [graph.deliver(f"user{n}@example.com", f"Question {n}") for n in range(12)]
    first = next(make_source(CONNECTOR_PAGE_SIZE=5).poll(None))
    assert "$skiptoken" in first.cursor
    rest = list(make_source(CONNECTOR_PAGE_SIZE=5).poll(first.cursor))
    assert [i.external_id for i in [*first.items, *items_of(rest)]] == [m["id"] for m in sent]


FORWARDED = (
    b"From: ann@example.com\r\nTo: pat@example.com\r\nSubject: Invoice 7\r\nMessage-ID: <inner-1@example.com>\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nThe invoice total looks wrong.\r\n"
)
"""An attached message's raw contents, as Graph serves them at `/attachments/{id}/$value` (MIME)."""
VERIFIED = "contoso.mail.protection.outlook.com; spf=pass smtp.mailfrom=example.com; dmarc=pass header.from=example.com"


def test_message_fields_threading_headers_and_attachments(make_source, graph: GraphEmulator) -> None:
    graph.deliver(
        "Casey@Example.com",
        "RE: VPN [TCKT-5]",
        "<p>Still <b>broken</b></p>",
        html=True,
        conversation="conv-1",
        headers={
            "In-Reply-To": "<ack-5@desk>",
            "References": "<orig@x> <ack-5@desk>",
            "Received": "ignored",
            "Authentication-Results": VERIFIED,
        },
        attachments=[
            file_attachment("log.pdf", b"%PDF-1.4"),
            file_attachment("shot.png", b"PNG", "image/png", True),
            item_attachment("Forwarded mail", FORWARDED),
        ],
    )
    [item] = items_of(make_source().poll(None))
    assert item.kind == "email" and item.requester_email == "casey@example.com"
    assert item.body == "Still \nbroken" or ("Still" in item.body and "<b>" not in item.body)
    assert item.thread_id == "conv-1" and item.in_reply_to == "<ack-5@desk>"
    assert item.references == ["<orig@x>", "<ack-5@desk>"]
    assert item.message_id and item.updated_at is not None
    assert [(a.filename, a.data) for a in item.attachments] == [
        ("log.pdf", b"%PDF-1.4"),
        ("shot.png", b"PNG"),
        ("Forwarded mail.eml", FORWARDED),
    ]
    assert item.additional_info == {}, "nothing skipped"
    forwarded = extract("Forwarded mail.eml", item.attachments[2].data, max_bytes=10_000_000)
    assert "The invoice total looks wrong." in " ".join(section.text for section in forwarded.sections)
    assert item.headers["Authentication-Results"] == VERIFIED, "for the sender check (MAIL_AUTHSERV_ID)"


def test_an_attachment_larger_than_it_says_is_not_imported(make_source, graph: GraphEmulator) -> None:
    understated = file_attachment("dump.bin", b"x" * 5000)
    understated["size"] = 10
    graph.deliver("casey@example.com", "Logs", attachments=[understated, file_attachment("ok.txt", b"ok")])
    [item] = items_of(make_source(MAX_ATTACHMENT_BYTES=1000).poll(None))
    files = {a.filename: a for a in item.attachments}
    assert files["ok.txt"].data == b"ok"
    assert (files["dump.bin"].left_at_source, files["dump.bin"].data) == ("too_large", b"")
    assert "1000-byte limit (MAX_ATTACHMENT_BYTES)" in files["dump.bin"].reason


@pytest.mark.parametrize("link_base", ["other-port", "userinfo"])
def test_links_off_graphs_origin_are_not_followed_with_the_token(
    make_source, graph: GraphEmulator, link_base: str
) -> None:
    with running_emulator(GraphEmulator()) as other:
        graph.link_base = {
            "other-port": other.url,
            "userinfo": other.url.replace("://", f"://{graph.url.split('://')[1]}@"),
        }[link_base]
        for n in range(7):
            graph.deliver(f"user{n}@example.com", f"Question {n}")
        with pytest.raises(MalformedResponseError, match="not on MS_GRAPH_BASE_URL"):
            list(make_source(CONNECTOR_PAGE_SIZE=5).poll(None))
        assert other.requests == []


def test_a_stored_delta_link_off_graphs_origin_starts_the_folder_again(
    make_source, graph: GraphEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    sent = graph.deliver("casey@example.com", "Question")
    foreign = "https://graph.example.net/v1.0/users/x/mailFolders/inbox/messages/delta?$deltatoken=abc"
    pages = list(make_source().poll(foreign))
    assert [item.external_id for item in items_of(pages)] == [sent["id"]]
    assert "stored delta link is not on MS_GRAPH_BASE_URL" in caplog.text


@contextmanager
def running_emulator(emulator: GraphEmulator) -> Iterator[GraphEmulator]:
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def test_wrong_secret_is_named_but_not_shown(make_source, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "not-the-secret-000"
    with pytest.raises(AuthenticationError, match=r"invalid_client.*MS_GRAPH_CLIENT_SECRET") as raised:
        list(make_source(MS_GRAPH_CLIENT_SECRET=SecretStr(wrong)).poll(None))
    assert wrong not in str(raised.value) and wrong not in caplog.text


def test_unknown_tenant(make_source) -> None:
    with pytest.raises(AuthenticationError, match="MS_GRAPH_TENANT_ID"):
        list(make_source(MS_GRAPH_TENANT_ID="nobody").poll(None))


def test_expired_token_is_renewed_once(make_source, graph: GraphEmulator, identity: IdentityEmulator) -> None:
    graph.deliver("a@example.com", "One")
    source = make_source()
    list(source.poll(None))
    graph.expired_tokens.update(identity.issued)
    graph.deliver("b@example.com", "Two")
    assert [i.subject for i in items_of(source.poll(None))][-1] == "Two"
    assert len(identity.issued) == 2


def test_throttling_and_expired_delta_links(make_source, graph: GraphEmulator, sleeps: Sleeps) -> None:
    graph.deliver("a@example.com", "One")
    graph.fail(
        graph_error(429, "TooManyRequests", "Please retry again later.", **{"Retry-After": "4"}), path="/v1.0/users"
    )
    source = make_source(sleeps=sleeps, CONNECTOR_MAX_RETRY_AFTER_SECONDS=30)
    pages = list(source.poll(None))
    assert sleeps == [4.0] and len(items_of(pages)) == 1
    graph.changes.clear()
    assert [i.subject for i in items_of(source.poll(pages[-1].cursor))] == [], "410 restarts the round"
    graph.fail(Response(200, b"<html>proxy error</html>"), path="/v1.0/users")
    with pytest.raises(ConnectorError, match="not JSON"):
        list(source.poll(None))


def test_configuration_problems(plain_settings: Settings) -> None:
    problems = configuration_problems(
        with_settings(plain_settings, MS_GRAPH_MAILBOX="support", MS_GRAPH_AUTHORITY_HOST="http://login.example")
    )
    assert "MS_GRAPH_CLIENT_ID: not set" in problems
    assert "MS_GRAPH_MAILBOX: must be the mailbox address, e.g. support@company.com" in problems
    assert "MS_GRAPH_AUTHORITY_HOST: must be an https URL (msal accepts no other)" in problems


def test_new_conversations_and_replies_through_the_poll_job(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, make_source, graph: GraphEmulator
) -> None:
    first = graph.deliver("casey@example.com", "Printer offline", conversation="conv-9")
    source = make_source(settings)
    assert poll_source(engine, session_factory, settings, source) == {"created": 1}
    graph.deliver("casey@example.com", "RE: Printer offline", "It is back", conversation="conv-9")
    assert poll_source(engine, session_factory, settings, source) == {"duplicate": 1, "reply": 1}
    assert poll_source(engine, session_factory, settings, source) == {"duplicate": 1}, "the read-mark echo"
    assert poll_source(engine, session_factory, settings, source) == {}
    with session_factory() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.external_id == first["id"] and ticket.thread_key == "conv-9"
        assert len(session.scalars(select(EmailInteraction)).all()) == 2


@pytest.mark.parametrize(
    ("status", "code"),
    [(410, "SyncStateNotFound"), (400, "syncStateNotFound"), (400, "syncStateInvalid"), (400, "resyncRequired")],
)
def test_an_expired_delta_link_restarts_the_round(
    make_source, graph: GraphEmulator, status: int, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    sent = [graph.deliver(f"user{n}@example.com", f"Question {n}") for n in range(3)]
    source = make_source(CONNECTOR_PAGE_SIZE=2)
    cursor = list(source.poll(None))[-1].cursor
    graph.expire_delta_links(status, code)
    later = graph.deliver("late@example.com", "After the token expired")
    pages = list(source.poll(cursor))
    assert {i.external_id for i in items_of(pages)} == {m["id"] for m in [*sent, later]}
    assert f"outlook (Microsoft Graph, mailbox {graph.mailbox})" in caplog.text and code in caplog.text
    echoes = items_of(source.poll(pages[-1].cursor))
    assert {i.external_id for i in echoes} <= {later["id"]}, "the fresh delta link works: only the read-mark echo"


def test_other_bad_requests_are_not_taken_for_an_expired_link(make_source, graph: GraphEmulator) -> None:
    graph.deliver("a@example.com", "One")
    source = make_source()
    cursor = list(source.poll(None))[-1].cursor
    graph.expire_delta_links(400, "BadRequest")
    with pytest.raises(ConnectorError, match=r"outlook: .*400"):
        list(source.poll(cursor))


def test_a_mailbox_the_app_may_not_read_names_what_to_grant(make_source, graph: GraphEmulator) -> None:
    graph.denied = True
    for attempt in (lambda s: list(s.poll(None)), lambda s: s.ping()):
        with pytest.raises(AuthenticationError) as refused:
            attempt(make_source())
        message = str(refused.value)
        assert message.startswith(f"outlook: mailbox {graph.mailbox}: Microsoft Graph refused access (403")
        for needed in ("Mail.ReadWrite application permission", "admin consent", "New-ApplicationAccessPolicy"):
            assert needed in message


def test_a_restarted_round_creates_nothing_twice(
    engine: Engine, session_factory: sessionmaker[Session], settings: Settings, make_source, graph: GraphEmulator
) -> None:
    for n in range(3):
        graph.deliver(f"user{n}@example.com", f"Question {n}")
    source = make_source(settings)
    assert poll_source(engine, session_factory, settings, source) == {"created": 3}
    graph.expire_delta_links(400, "syncStateNotFound")
    graph.deliver("late@example.com", "After the token expired")
    assert poll_source(engine, session_factory, settings, source) == {"created": 1, "duplicate": 3}
    with session_factory() as session:
        assert len(session.scalars(select(Ticket)).all()) == 4
