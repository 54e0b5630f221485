"""Builders for test data and test doubles shared by several test modules, so tests say only what matters to them.

Tickets and their history; an analyser that proposes a fixed decision and a write-back target with scripted
answers; scripted chat models and a fake knowledge-base search for the LLM analyser; an embedder that knows the
synthetic topics of the self-test's knowledge bases; Mailgun webhook signatures; dashboard sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import SourceUpdate, TicketIn
from connectors.http import ConnectorError
from engine.analysers.llm_confidence import MODEL_CONFIDENCE_EVENT, calibrate
from engine.core.analysis import AnalysisResult, TicketSnapshot
from engine.core.desk_policy import DeskPolicy
from engine.core.enums import ActionKind, ActionState, MessageKind, OutcomeState, Role, TicketStatus
from engine.core.models import Action, Analysis, Escalation, OperatorSession, ResolutionOutcome, Ticket, utcnow
from engine.core.settings import Settings
from engine.core.templates import acknowledgement
from engine.core.timeline import record_event
from engine.delivery.outbox import enqueue_email
from engine.evaluate import Case
from engine.intake.ingest import ingest
from engine.operators.actions import send_manual_reply
from engine.operators.auth import create_first_admin, create_operator
from engine.operators.permissions import Actor
from engine.operators.sessions import StartedSession, exchange_handoff, start_session
from engine.pipeline import process_pending
from kb.self_test import SelfTestCorpus
from tests.mail_servers import CUSTOMER_DOMAIN, DESK

if TYPE_CHECKING:
    from tests.emulators.imap import ImapEmulator
    from tests.emulators.openai_api import OpenAIEmulator

_counter = itertools.count(1)


def ticket_in(**overrides: Any) -> TicketIn:
    """A plausible new ticket from a person; override any field."""
    number = next(_counter)
    fields: dict[str, Any] = {
        "source": "test",
        "external_id": f"EXT-{number}",
        "requester_email": f"user{number}@customer.example",
        "requester_name": f"User {number}",
        "subject": f"Cannot log in to the portal ({number})",
        "body": "Since this morning the portal says 'invalid password' although I reset it yesterday.",
    }
    fields.update(overrides)
    return TicketIn(**fields)


def email_in(**overrides: Any) -> TicketIn:
    """An e-mail message (new or reply, depending on its subject and thread)."""
    number = next(_counter)
    fields: dict[str, Any] = {
        "kind": "email",
        "external_id": f"msg-{number}",
        "message_id": f"<msg-{number}@customer.example>",
    }
    fields.update(overrides)
    return ticket_in(**fields)


ROUTING_VOCABULARY = {
    "Network": [
        "vpn tunnel drops",
        "wifi access point",
        "switch port down",
        "firewall rule blocks",
        "dns lookup fails",
    ],
    "Identity & Access": [
        "password reset",
        "account locked out",
        "mfa token lost",
        "sso login loop",
        "ad group access",
    ],
    "Messaging": [
        "outlook mailbox full",
        "shared mailbox missing",
        "distribution list",
        "calendar invite",
        "mail rule",
    ],
    "Service Desk": ["question about my laptop", "how do i order", "general request", "new starter kit", "desk phone"],
}
"""Three specialist teams and the first line (Settings.DEFAULT_TEAM), each with its own words."""


def customer_mail(
    subject: str,
    message_id: str,
    sender: str = f"pat@{CUSTOMER_DOMAIN}",
    *,
    body: str = "The printer on floor 3 shows E42 when I print.",
    **headers: str,
) -> bytes:
    """A customer's e-mail to the desk's mailbox on the real mail servers (tests/mail_servers.py), as bytes; extra
    headers by keyword (`In_Reply_To=` for In-Reply-To)."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, DESK, subject
    message["Message-ID"] = message_id
    message["Date"] = "Mon, 07 Dec 2026 03:00:00 +0000"
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content(body)
    return bytes(message)


def routing_history(per_team: int, *, seed: int = 0) -> list[tuple[str, str, str]]:
    """(subject, description, team) of resolved tickets whose words tell the team apart, in a shuffled order."""
    rng = random.Random(seed)
    rows = []
    for team, phrases in ROUTING_VOCABULARY.items():
        for _ in range(per_team):
            first, second = rng.sample(phrases, 2)
            rows.append((first, f"Hello, {first} since this morning and {second}. Regards, Sam", team))
    rng.shuffle(rows)
    return rows


def resolved_ticket(session: Session, subject: str, description: str, team: str) -> Ticket:
    """A ticket a person resolved under `team`: what the routing model learns from."""
    number = next(_counter)
    ticket = Ticket(
        source="test",
        external_id=f"RES-{number}",
        email=f"user{number}@customer.example",
        subject=subject,
        description=description,
        status=TicketStatus.RESOLVED,
        team=team,
        human_touched_at=utcnow(),
        resolved_at=utcnow(),
    )
    session.add(ticket)
    return ticket


def routed_ticket(session: Session, *, routed_to: str | None) -> int:
    """A ticket as the engine leaves it after escalating it to `routed_to`, the served routing model's choice (None:
    the model left it with the first line): escalated, with that team; its id."""
    number = next(_counter)
    ticket = Ticket(
        source="test",
        external_id=f"ROUTED-{number}",
        email=f"user{number}@customer.example",
        subject="vpn tunnel drops",
        description="Hello, vpn tunnel drops. Regards, Sam",
        status=TicketStatus.ESCALATED,
        team=routed_to or "Service Desk",
    )
    session.add(ticket)
    session.flush()
    analysis = Analysis(ticket_id=ticket.id, analyser="test", decision="escalate", confidence=0.2, evidence=[])
    session.add(analysis)
    session.flush()
    route = {"team": routed_to, "probability": 0.9, "specialist_probability": 0.9, "reason": "test"}
    session.add(Escalation(ticket_id=ticket.id, analysis_id=analysis.id, team=routed_to, route=route))
    session.add(
        Action(
            ticket_id=ticket.id,
            analysis_id=analysis.id,
            kind=ActionKind.ESCALATE,
            state=ActionState.EXECUTED,
            team=routed_to or "Service Desk",
            decided_by="engine",
        )
    )
    session.flush()
    return ticket.id


def resolution_outcome(
    session: Session, *, category: str, state: OutcomeState, automated: bool = True, confidence: float = 0.9
) -> ResolutionOutcome:
    """A resolved ticket of `category` and what became of its resolution."""
    ticket = resolved_ticket(session, f"{category} question", "How do I do it?", "Service Desk")
    ticket.category = category
    session.flush()
    outcome = ResolutionOutcome(
        ticket_id=ticket.id,
        automated=automated,
        source=ticket.source,
        category=category,
        confidence=confidence,
        state=state,
    )
    session.add(outcome)
    return outcome


def analysed_ticket(session: Session, subject: str, *, confidence: float, evidence: bool) -> int:
    """A resolved ticket whose analysis had `confidence`, with or without evidence: what knowledge gaps read."""
    ticket = resolved_ticket(session, subject, subject + ". Please help.", "Service Desk")
    session.flush()
    session.add(
        Analysis(
            ticket_id=ticket.id,
            analyser="test",
            decision="escalate",
            confidence=confidence,
            evidence=[{"title": "kb.md"}] if evidence else [],
        )
    )
    return ticket.id


def proposed_resolution(
    session: Session,
    *,
    confidence: float,
    state: ActionState | None = ActionState.EXECUTED,
    decided_by: str = "engine",
    edited: bool = False,
    outcome: OutcomeState | None = None,
    answer: str | None = None,
    guards: tuple[str, ...] = (),
    decision: str = "resolve",
    source: str = "test",
) -> Analysis:
    """A stored analysis (a resolution proposal by default) with its draft in `state` (None: no draft) and, when
    sent, what the customer made of it: the history the threshold what-if replays."""
    ticket = resolved_ticket(session, "How do I reset my password?", "Please help.", "Service Desk")
    ticket.source = source
    session.flush()
    analysis = Analysis(
        ticket_id=ticket.id,
        analyser="test",
        decision=decision,
        confidence=confidence,
        evidence=[{"title": "Resetting your password"}],
        guards=list(guards),
    )
    session.add(analysis)
    session.flush()
    if state is None:
        return analysis
    action = Action(
        ticket_id=ticket.id,
        analysis_id=analysis.id,
        kind=ActionKind.PROPOSE_RESOLUTION,
        state=state,
        version=2 if edited else 1,
        decided_by=None if state == ActionState.AWAITING_APPROVAL else decided_by,
    )
    session.add(action)
    session.flush()
    if outcome is not None:
        session.add(
            ResolutionOutcome(
                ticket_id=ticket.id,
                action_id=action.id,
                automated=decided_by == "engine",
                source=source,
                confidence=confidence,
                state=outcome,
                answer=answer,
            )
        )
    return analysis


def model_judged(
    session: Session,
    *,
    stated: float,
    retrieval: float,
    decided_by: str = "engine",
    state: ActionState = ActionState.EXECUTED,
    edited: bool = False,
    outcome: OutcomeState | None = None,
) -> Analysis:
    """A resolution the AI model drafted, with the record of its stated confidence that
    engine/analysers/llm_confidence.py learns from, and what a person or the customer made of it."""
    record = calibrate(stated, retrieval, None)
    analysis = proposed_resolution(
        session, confidence=record["calibrated"], state=state, decided_by=decided_by, outcome=outcome
    )
    ticket = session.get(Ticket, analysis.ticket_id)
    assert ticket is not None
    record_event(session, ticket, MODEL_CONFIDENCE_EVENT, "model confidence", analysis_id=analysis.id, **record)
    if edited:
        action = session.scalars(select(Action).where(Action.analysis_id == analysis.id)).one()
        action.policy = {"edited_by": "lead"}
    session.flush()
    return analysis


# Tickets through the pipeline, with an analyser double


@dataclass
class Proposes:
    """An analyser double returning a fixed decision, recording what it saw."""

    decision: str = "resolve"
    confidence: float = 0.95
    name: str = "fixed"
    error: str | None = None
    seen: list[TicketSnapshot] = field(default_factory=list)

    def analyse(self, ticket: TicketSnapshot, policy: DeskPolicy | None = None) -> AnalysisResult:
        self.seen.append(ticket)
        return AnalysisResult(
            analyser=self.name,
            decision=self.decision,
            reason="test",
            confidence=self.confidence,  # type: ignore[arg-type]
            draft_subject=f"Re: your request [{ticket.reference}]",
            draft_body="1. Restart the VPN client.",
            evidence=[{"source_kind": "kb", "title": "vpn.md", "text": "Restart the VPN client.", "cited": True}],
            error=self.error,
        )


def new_ticket(factory: sessionmaker[Session], settings: Settings, **fields: object) -> int:
    """A new ticket from a person, ingested; override any field of `ticket_in`: its id."""
    with factory.begin() as session:
        return ingest(session, ticket_in(**fields), settings).ticket_id


def drafted(factory: sessionmaker[Session], settings: Settings, **fields: object) -> tuple[int, int]:
    """A ticket whose resolution draft, citing evidence, awaits approval: (ticket id, action id)."""
    ticket_id = new_ticket(factory, settings, **fields)
    process_pending(factory, settings, Proposes(confidence=0.5), worker="w")
    with factory() as session:
        return ticket_id, session.scalar(select(Action.id).where(Action.ticket_id == ticket_id))


def resolved_automatically(factory: sessionmaker[Session], settings: Settings) -> int:
    """A "network" ticket the autopilot resolved with `Proposes` (confidence 0.95): its id."""
    settings.AUTOPILOT_ENABLED = True
    ticket_id = new_ticket(factory, settings, category="network")
    process_pending(factory, settings, Proposes(), worker="w")
    return ticket_id


INVOICE_QUESTION = (
    "Change the e-mail address on invoices",
    "How do I change the e-mail address our invoices are sent to?",
)
INVOICE_PARAPHRASE = (
    "Invoices to another e-mail address",
    "How can I get our invoices sent to a different e-mail address?",
)
INVOICE_ANSWER = (
    "Hello,\n\nOpen Billing > Invoice settings and enter the new address under Invoice e-mail. "
    "Invoices sent from then on go to it.\n\nKind regards,\nAnn"
)


def answered_by_a_person(
    factory: sessionmaker[Session],
    settings: Settings,
    question: tuple[str, str] = INVOICE_QUESTION,
    answer: str = INVOICE_ANSWER,
    **fields: object,
) -> int:
    """A ticket asking `question` (subject, body) that an agent answered by hand with `answer`: its id."""
    ticket_id = new_ticket(factory, settings, subject=question[0], body=question[1], **fields)
    with factory.begin() as session:
        send_manual_reply(session, settings, Actor("ann", Role.AGENT), ticket_id, subject="Re: invoices", body=answer)
    return ticket_id


def outcome_of(factory: sessionmaker[Session], ticket_id: int) -> ResolutionOutcome:
    """The latest resolution outcome of a ticket."""
    with factory() as session:
        return session.scalars(
            select(ResolutionOutcome).where(ResolutionOutcome.ticket_id == ticket_id).order_by(ResolutionOutcome.id)
        ).all()[-1]


def reply(factory: sessionmaker[Session], settings: Settings, ticket_id: int, body: str) -> Ticket:
    """The customer answers the ticket by e-mail with `body`: the ticket afterwards."""
    with factory.begin() as session:
        ticket = session.get(Ticket, ticket_id)
        ingest(session, email_in(requester_email=ticket.email, subject=f"Re: {ticket.reference}", body=body), settings)
    with factory() as session:
        return session.get(Ticket, ticket_id)


# Write-back and delivery


@dataclass
class FakeSource:
    """A write-back target whose answers for each ticket (external id) are scripted, in order."""

    name: str = "test"
    answers: dict[str, list[ConnectorError]] = field(default_factory=dict)
    pushed: list[tuple[str, int, bool]] = field(default_factory=list)

    def push(self, update: SourceUpdate, *, check_first: bool = False) -> None:
        if self.answers.get(update.external_id):
            raise self.answers[update.external_id].pop(0)
        self.pushed.append((update.external_id, update.event_id, check_first))


def queue(session_factory: sessionmaker[Session], settings: Settings) -> int:
    """A demo ticket whose acknowledgement waits in the outbox: the message's id."""
    with session_factory() as session, session.begin():
        item = TicketIn(
            source="demo",
            external_id="t1",
            requester_email="customer@example.com",
            subject="VPN broken",
            body="It does not connect",
        )
        ticket = session.get(Ticket, ingest(session, item, settings).ticket_id)
        assert ticket is not None
        content = acknowledgement(ticket, settings.SUPPORT_SIGNATURE)
        return enqueue_email(session, settings, ticket, MessageKind.ACKNOWLEDGEMENT, content, dedupe_key="ack").id


def sign(key: str, timestamp: str, token: str) -> str:
    """The Mailgun webhook signature of `timestamp` and `token` under the signing `key`."""
    return hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()


# The LLM analyser: scripted chat models, a fake knowledge-base search, what the analyser sees


class ScriptedModel(GenericFakeChatModel):
    """A fake chat model without tool calling that remembers every prompt it was sent."""

    seen: list[list[BaseMessage]] = []

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        return super()._generate(messages, *args, **kwargs)


class ToolCallingModel(ScriptedModel):
    """The same, with tool calling: `bind_tools` records the tools and answers come as scripted tool calls."""

    bound: list[list[str]] = []

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingModel:  # type: ignore[override]
        self.bound.append([getattr(tool, "name", None) or getattr(tool, "__name__", str(tool)) for tool in tools])
        return self


def usage(prompt: int = 100, completion: int = 20) -> dict[str, int]:
    return {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion}


def said(content: str, prompt: int = 100, completion: int = 20) -> AIMessage:
    return AIMessage(content=content, usage_metadata=usage(prompt, completion))


def calls(name: str, prompt: int = 100, completion: int = 20, **arguments: Any) -> AIMessage:
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": arguments, "id": f"call-{name}", "type": "tool_call"}],
        usage_metadata=usage(prompt, completion),
    )


def scripted(*answers: AIMessage | str) -> ScriptedModel:
    return ScriptedModel(messages=iter(answers), seen=[])


def tool_calling(*answers: AIMessage | str) -> ToolCallingModel:
    return ToolCallingModel(messages=iter(answers), seen=[], bound=[])


def kb_item(number: int, text: str, title: str = "", kind: str = "kb") -> dict[str, Any]:
    return {
        "source_kind": kind,
        "source_id": number,
        "title": title or f"article-{number}.md",
        "location": "",
        "location_data": {},
        "text": text,
        "fused_score": 0.03 - number * 0.001,
        "vector_rank": number,
        "vector_score": 0.5,
        "bm25_rank": number,
        "bm25_score": 3.0,
        "chunk_id": number,
    }


class FakeKb:
    """Stands in for kb.search: answers every query with the next batch and records the queries."""

    def __init__(self, *batches: list[dict[str, Any]]) -> None:
        self.batches = list(batches)
        self.queries: list[list[str]] = []

    def __call__(self, session: Session, settings: Settings, query: str, queries: list[str]) -> list[dict[str, Any]]:
        self.queries.append(queries)
        return self.batches.pop(0) if self.batches else []


def snapshot(**overrides: Any) -> TicketSnapshot:
    """What the LLM analyser sees of a VPN ticket (TCKT-7); override any field."""
    fields: dict[str, Any] = {
        "id": 7,
        "reference": "TCKT-7",
        "subject": "VPN does not connect",
        "description": "Since this morning the VPN client on my Windows laptop says 'error 809' when I connect.",
        "email": "ann@customer.example",
        "requester_name": "Ann",
        "source": "email",
        "priority": None,
        "category": None,
        "team": None,
        "follow_up_count": 0,
    }
    fields.update(overrides)
    return TicketSnapshot(**fields)


def text_snapshot(text: str, **fields: object) -> TicketSnapshot:
    """What an analyser sees of a ticket (TCKT-1) whose description is `text`; override any field."""
    values: dict[str, object] = {
        "id": 1,
        "reference": "TCKT-1",
        "subject": "",
        "description": text,
        "email": "ann@contoso.example",
        "requester_name": "Ann",
        "source": "demo",
        "priority": None,
        "category": None,
        "team": None,
        "follow_up_count": 0,
    }
    values.update(fields)
    return TicketSnapshot(**values)  # type: ignore[arg-type]


def openai_settings(settings: Settings, emulator: OpenAIEmulator, **values: object) -> Settings:
    """`settings` for the OpenAI provider pointed at the chat-completions emulator."""
    return settings.model_copy(
        update={
            "OPENAI_BASE_URL": emulator.openai_base_url,
            "OPENAI_API_KEY": SecretStr(emulator.api_key),
            "OPENAI_CHAT_MODEL": "emulated-gpt",
            "LLM_TIMEOUT_SECONDS": 5.0,
            "LLM_MAX_RETRIES": 2,
            **values,
        }
    )


# Synthetic knowledge bases for the self-test: topic i is named by the word kw{i}a (or kw{i}b)


TOPICS = 12
DIMENSION = 32
TOPIC_WORD = re.compile(r"\bkw(\d+)[ab]\b")


class TopicEmbedder:
    """Knows that kw{i}a and kw{i}b mean topic i: what a good embedding model does for a paraphrase."""

    def dimension(self) -> int:
        return DIMENSION

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        vectors = 0.05 + 0.02 * noise(texts)
        for row, text in enumerate(texts):
            for topic in TOPIC_WORD.findall(text):
                vectors[row, int(topic)] += 1.0
        return vectors

    embed_queries = embed_documents


def noise(texts: Sequence[str]) -> np.ndarray:
    seeds = [int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) for text in texts]
    return np.array([np.random.default_rng(seed).normal(size=DIMENSION) for seed in seeds], dtype=np.float32)


def topic_corpus(embedder: TopicEmbedder, *, body_word: str) -> SelfTestCorpus:
    """One single-chunk document per topic: heading, first sentence naming the topic, a body with `body_word`
    and a mention of the previous topic (documents of different lengths, so keyword scores differ)."""
    texts = [
        f"Guide to kw{i}a setup\nThe kw{i}a feature needs configuring once per account. "
        f"It is not to be confused with kw{(i - 1) % TOPICS}a. "
        f"Open the settings panel and follow the steps for kw{i}{body_word}; save the kw{i}{body_word} options "
        "and restart the account settings panel." + " Then check the panel again." * (i % 4)
        for i in range(TOPICS)
    ]
    return SelfTestCorpus(
        ids=[str(i) for i in range(TOPICS)],
        texts=texts,
        sources=[("kb", i) for i in range(TOPICS)],
        vectors=embedder.embed_documents(texts),
    )


class _AfterTheTest(sessionmaker[Session]):
    """Opens a session only once the test's own has ended its transaction (SQLite has one writer, and the new session
    must see what the test wrote); the test's objects then reload what the function writes."""

    def __init__(self, test_session: Session) -> None:
        super().__init__(bind=test_session.get_bind(), expire_on_commit=False)
        self.test_session = test_session

    def __call__(self, **options: Any) -> Session:
        self.test_session.commit()
        self.test_session.expire_all()
        return super().__call__(**options)


def own_transactions(session: Session) -> sessionmaker[Session]:
    """The factory given to a function that opens its own transactions, in a test that holds `session`."""
    return _AfterTheTest(session)


def operator_session(
    factory: sessionmaker[Session],
    settings: Settings,
    username: str,
    *,
    method: str = "password",
    now: datetime | None = None,
) -> StartedSession:
    """A session of `username` as a sign-in starts it: the browser has not fetched its cookie yet."""
    with factory.begin() as session:
        return start_session(session, settings, username, method, client_hint="test browser", now=now)


def session_cookie(
    factory: sessionmaker[Session], settings: Settings, username: str, *, now: datetime | None = None
) -> tuple[int, str]:
    """A session whose browser fetched its cookie: (session id, the cookie's token)."""
    started = operator_session(factory, settings, username, now=now)
    with factory.begin() as session:
        cookie = exchange_handoff(session, settings, started.handoff, now=now)
    assert cookie is not None
    return started.id, cookie.token


def age_session(
    factory: sessionmaker[Session],
    session_id: int,
    *,
    idle: timedelta = timedelta(0),
    signed_in: timedelta = timedelta(0),
) -> None:
    """Move a session back in time: its last activity `idle` ago, its sign-in (and absolute expiry) `signed_in`
    earlier, as if the clock had moved on while nobody used it."""
    with factory.begin() as session:
        row = session.get(OperatorSession, session_id)
        assert row is not None
        row.last_seen_at = utcnow() - idle
        row.created_at -= signed_in
        row.expires_at -= signed_in


# Replay


def replay_case(case_id: str, body: str, expected_action: str = "resolve", *evidence: str, **fields: Any) -> Case:
    """One labelled case for engine/replay.py; a case that expects a resolution gets a person's answer by default."""
    answer = fields.pop("answer", f"Here is how to do it: {body.rstrip('?')}." if expected_action == "resolve" else "")
    return Case(
        id=case_id,
        subject=fields.pop("subject", body[:40]),
        body=body,
        category=fields.pop("category", "uncategorised"),
        expected_action=expected_action,
        expected_evidence=evidence,
        answer=answer,
        **fields,
    )


DESK_PASSWORD = "correct horse battery"


def desk_operators(factory: sessionmaker[Session], *people: tuple[str, Role]) -> Actor:
    """The first admin (ada) and `people`, all with one password; returns ada, who created them."""
    admin = Actor("ada", Role.ADMIN)
    with factory.begin() as session:
        create_first_admin(session, admin.username, DESK_PASSWORD)
        for name, role in people:
            create_operator(session, admin, name, role, password=DESK_PASSWORD)
    return admin


def imap_values(server: ImapEmulator) -> dict[str, object]:
    """Settings that point the IMAP source at `server` (tests/emulators/imap.py), reading all its mail."""
    return {
        "IMAP_HOST": "127.0.0.1",
        "IMAP_PORT": server.port,
        "IMAP_SECURITY": "none",
        "IMAP_USERNAME": server.username,
        "IMAP_PASSWORD": SecretStr(server.password),
        "IMAP_START_AT": "2000-01-01 00:00:00",
    }
