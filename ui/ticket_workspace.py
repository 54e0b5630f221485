"""The ticket page's workspace panels: who the ticket is assigned to, and the other things a person working it needs
beside the conversation. Each panel reads through engine.operators and acts through the page's `act`, which runs
one action in its own transaction and reports the outcome."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import streamlit as st

from engine.core.db import transaction
from engine.core.enums import Role
from engine.core.models import OutboxMessage, Ticket
from engine.operators.assignment import assign_to_person, assignable_operators
from engine.operators.history import requester_history
from engine.operators.macros import canned_replies, fill
from engine.operators.merging import (
    known_tags,
    link_tickets,
    linked_tickets,
    merge_ticket,
    merged_into,
    set_tags,
    ticket_tags,
)
from engine.operators.notes import add_note, ticket_notes
from engine.operators.permissions import Actor
from engine.operators.presence import mark_viewing, others_viewing
from engine.runtime import Runtime
from ui import glossary
from ui.auth import allowed, session_alive
from ui.components import ago, plain, role_hint

Act = Callable[[str, Callable[[Any], object]], None]
NOBODY = "nobody"
HEARTBEATS_MISSED = 3
"""Someone counts as gone after this many refresh periods without a heartbeat."""
OUTGOING_COLUMNS = {
    "what": st.column_config.TextColumn("what", width=110),
    "to": st.column_config.TextColumn("to", width="medium"),
    "cc": st.column_config.TextColumn("copy to", width="medium"),
    "files": st.column_config.TextColumn("attached", width="medium"),
    "subject": st.column_config.TextColumn("subject", width="large"),
    "delivery": st.column_config.TextColumn("delivery", width=120),
    "by": st.column_config.TextColumn("sent by", width=90),
    "attempts": st.column_config.NumberColumn("tries", width=60),
    "sent": st.column_config.TextColumn("sent (UTC)", width=110),
    "error": st.column_config.TextColumn("error", width="medium"),
}
"""The Outgoing mail table: short headers and set widths, so no column is cut to "…" at 1440 px."""


def assignment(runtime: Runtime, actor: Actor, ticket: Ticket, act: Act) -> None:
    """Assign the ticket to a person (or to nobody); "Assign to me" in one click."""
    with runtime.factory() as session:
        people = assignable_operators(session)
    choices = [NOBODY, *people]
    can_act = allowed(actor, Role.AGENT)
    chosen = st.selectbox(
        "Assigned to",
        choices,
        index=choices.index(ticket.assignee) if ticket.assignee in choices else 0,
        key=f"ticket_assignee_{ticket.id}_{ticket.assignee}",  # a new assignee shows, whatever was picked before
        disabled=not can_act,
        help=role_hint(actor, Role.AGENT),
    )
    target = None if chosen == NOBODY else chosen
    left, right = st.columns(2)
    if left.button(
        "Save assignee", key="ticket_assign_person", disabled=not can_act or target == ticket.assignee, width="stretch"
    ):
        act("Assigned", lambda session: assign_to_person(session, actor, ticket.id, target))
    if right.button(
        "Assign to me",
        key="ticket_assign_me",
        disabled=not can_act or ticket.assignee == actor.username,
        width="stretch",
    ):
        act("Assigned to you", lambda session: assign_to_person(session, actor, ticket.id, actor.username))


def internal_notes(runtime: Runtime, actor: Actor, ticket: Ticket, act: Act) -> None:
    """Notes for operators only, newest last, and a box to add one; @name tells that operator."""
    with runtime.factory() as session:
        notes = ticket_notes(session, ticket.id)
    st.subheader("Internal notes")
    st.caption("Only operators see these; they go to the source as internal comments, never to the customer.")
    for note in notes:
        with st.container(border=True):
            mentioned = f" · for {', '.join(note.mentions)}" if note.mentions else ""
            st.caption(f"{note.author} · {ago(note.created_at)}{mentioned}")
            st.text(note.body)
    can_act = allowed(actor, Role.AGENT)
    with st.form(f"ticket_note_{ticket.id}", clear_on_submit=True):
        body = st.text_area(
            "New note",
            key=f"ticket_note_body_{ticket.id}",
            height=90,
            disabled=not can_act,
            placeholder="Write @username to tell a colleague.",
        )
        if st.form_submit_button("Add note", disabled=not can_act, help=role_hint(actor, Role.AGENT)):
            act("Note added", lambda session: add_note(session, actor, ticket.id, body))


OUTCOME = {
    "pending": "answer awaited",
    "confirmed": "customer confirmed it solved",
    "assumed": "no answer, assumed solved",
    "reopened": "customer said not solved",
    "durable": "stayed solved",
}
"""What became of a past ticket's resolution, in words (engine/core/enums.py OutcomeState)."""


def requester_tickets(runtime: Runtime, ticket: Ticket) -> None:
    """The requester's other tickets and how they ended, newest first, each a link."""
    with runtime.factory() as session:
        history = requester_history(session, ticket)
    st.subheader("This requester's other tickets")
    if not history.total:
        st.caption("No other tickets: this is their first.")
        return
    for past in history.tickets:
        outcome = f" · {OUTCOME.get(past.outcome, past.outcome)}" if past.outcome else ""
        rated = f" · rated {past.csat}/5" if past.csat else ""
        st.markdown(
            f"[TCKT-{past.id}](?id={past.id}) · {glossary.status(past.status)}{outcome}{rated} · "
            f"{ago(past.created_at)} · {plain(past.subject) or '(no subject)'}"
        )
    if history.total > len(history.tickets):
        st.caption(f"and {history.total - len(history.tickets):,} older ones.")


def canned_reply_picker(runtime: Runtime, actor: Actor, ticket: Ticket) -> None:
    """Start "Write a reply" from a canned reply of the ticket's team (or of every team), placeholders filled in."""
    if not allowed(actor, Role.AGENT):
        return
    with runtime.factory() as session:
        replies = {reply.id: reply for reply in canned_replies(session, ticket.team)}
    if not replies:
        return
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    chosen = left.selectbox(
        "Canned reply",
        list(replies),
        format_func=lambda reply_id: replies[reply_id].title,
        index=None,
        placeholder="Start your reply from a canned one",
        key=f"ticket_canned_{ticket.id}",
    )
    if right.button("Use", key="ticket_canned_use", disabled=chosen is None, width="stretch") and chosen:
        text = fill(replies[chosen].body, ticket, actor, runtime.settings.DEFAULT_TEAM)
        st.session_state[f"reply_body_{ticket.id}"] = text
        st.session_state["ticket_canned_used"] = replies[chosen].title
        st.rerun()
    if used := st.session_state.pop("ticket_canned_used", None):
        st.caption(f"“{used}” is in Write a reply below: read it and change what this ticket needs before sending.")


def who_else_is_here(runtime: Runtime, actor: Actor, ticket: Ticket) -> None:
    """Renew this operator's presence on the ticket every refresh and name anyone else who has it open."""
    refresh = runtime.settings.DASHBOARD_REFRESH_SECONDS

    @st.fragment(run_every=timedelta(seconds=refresh))
    def heartbeat() -> None:
        if not session_alive():
            return
        with transaction(runtime.factory) as session:
            mark_viewing(session, actor, ticket.id)
            others = others_viewing(
                session, ticket.id, actor.username, within=timedelta(seconds=refresh * HEARTBEATS_MISSED)
            )
        if others:
            names = ", ".join(name for name, _ in others)
            verb = "has" if len(others) == 1 else "have"
            st.warning(f"{names} {verb} this ticket open too: agree who answers before you send.", icon="👥")

    heartbeat()


def merged_conversations(runtime: Runtime, ticket: Ticket) -> None:
    """Where a merged duplicate went, or what was merged into this ticket, its messages shown here."""
    if ticket.merged_into_id:
        st.info(
            f"Merged into [TCKT-{ticket.merged_into_id}](?id={ticket.merged_into_id}): "
            "its conversation continues there.",
            icon="🔀",
        )
    with runtime.factory() as session:
        duplicates = merged_into(session, ticket.id)
        links = linked_tickets(session, ticket.id)
    if links:
        st.markdown(
            "Linked: " + ", ".join(f"[{other.reference}](?id={other.id}) {plain(other.subject)}" for other in links)
        )
    for duplicate in duplicates:
        count = len(duplicate.messages) + 1
        with st.expander(f"Merged in: {duplicate.ticket.reference} · {count} message{'' if count == 1 else 's'}"):
            st.caption(f"{duplicate.ticket.created_at:%Y-%m-%d %H:%M} · original request")
            st.text(duplicate.ticket.description)
            for message in duplicate.messages:
                st.caption(f"{message.received_at:%Y-%m-%d %H:%M} · {glossary.message_kind(message.email_type)}")
                st.text(message.body)


def merge_link_and_tags(runtime: Runtime, actor: Actor, ticket: Ticket, act: Act) -> None:
    """Tags, and merging or linking this ticket with another one."""
    can_act = allowed(actor, Role.AGENT)
    hint = role_hint(actor, Role.AGENT)
    with runtime.factory() as session:
        current, every = ticket_tags(session, ticket.id), known_tags(session)
    with st.expander("Tags, merge and link" + (f" · {', '.join(current)}" if current else "")):
        chosen = st.multiselect(
            "Tags",
            sorted({*every, *current}),
            default=current,
            accept_new_options=True,
            key=f"ticket_tags_{ticket.id}",
            disabled=not can_act,
            placeholder="Pick or type a tag",
        )
        if st.button("Save tags", key="ticket_save_tags", disabled=not can_act or chosen == current, help=hint):
            act("Tags saved", lambda session: set_tags(session, actor, ticket.id, list(chosen)))
        other = st.number_input(
            "Other ticket (TCKT- number)",
            min_value=1,
            step=1,
            value=None,
            key=f"ticket_other_{ticket.id}",
            disabled=not can_act,
        )
        merge, link = st.columns(2)
        if merge.button(
            "Merge this one into it",
            key="ticket_merge",
            disabled=not can_act or other is None or ticket.merged_into_id is not None,
            help=hint or "For a duplicate from the same requester: this ticket closes and points there.",
            width="stretch",
        ):
            act("Merged", lambda session: merge_ticket(session, actor, ticket.id, int(other or 0)))
        if link.button(
            "Link them",
            key="ticket_link",
            disabled=not can_act or other is None,
            help=hint or "Both stay open; each shows the other.",
            width="stretch",
        ):
            act("Linked", lambda session: link_tickets(session, actor, ticket.id, int(other or 0)))


def outgoing_row(message: OutboxMessage) -> dict[str, Any]:
    """One outgoing message as the Outgoing mail table shows it (OUTGOING_COLUMNS): whom it was sent to and copied
    to, the names of the files a person attached, and where its delivery stands."""
    awaiting = message.state == "sending" and not message.claim_token
    return {
        "what": glossary.message_kind(message.kind),
        "to": message.to_address,
        "cc": ", ".join(message.cc_addresses or []) or "—",
        "files": ", ".join(str(file.get("filename", "")) for file in message.attachments or []) or "—",
        "subject": message.subject,
        "delivery": "awaiting confirmation" if awaiting else glossary.delivery(message.state),
        "by": "the desk" if message.automated else "a person",
        "attempts": message.attempts,
        "sent": message.sent_at.strftime("%d %b %H:%M") if message.sent_at else "not yet",
        "error": message.last_error or "",
    }
