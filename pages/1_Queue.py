"""The live ticket queue: filter, search, page; pick a ticket to read its timeline and conversation."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from engine.enums import TicketStatus
from engine.queries import QueueFilter, queue_page, sources, ticket_story
from ui.runtime import app_runtime

st.set_page_config(page_title="Queue · No-Touch Support", page_icon="🎫", layout="wide")
runtime = app_runtime()
st.title("Queue")
PAGE_SIZE = 50

with runtime.factory() as session:
    known_sources = sources(session)
filters = st.columns([2, 2, 3, 1])
statuses = filters[0].multiselect("Status", [status.value for status in TicketStatus], key="queue_status")
chosen_sources = filters[1].multiselect("Source", known_sources, key="queue_source")
search = filters[2].text_input("Search subject, requester or TCKT-id", key="queue_search")
sort = filters[3].selectbox("Sort", ["newest", "oldest", "updated"], key="queue_sort")
queue = QueueFilter(statuses=tuple(statuses), sources=tuple(chosen_sources), search=search, sort=sort)


@st.fragment(run_every=timedelta(seconds=5))
def ticket_table() -> None:
    page = st.session_state.get("queue_page", 1)
    with runtime.factory() as session:
        rows, total = queue_page(session, queue, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, -(-total // PAGE_SIZE))
    st.caption(f"{total} tickets · page {page} of {pages} · refreshes every 5 s")
    if not rows:
        st.info("No tickets match. New tickets appear here as the sources deliver them.")
        return
    frame = pd.DataFrame(rows).drop(columns=["id"])
    picked = st.dataframe(
        frame, hide_index=True, width="stretch", on_select="rerun", selection_mode="single-row", key="queue_table"
    )
    if picked and picked.selection.rows:
        st.session_state["queue_ticket"] = rows[picked.selection.rows[0]]["id"]


st.number_input("Page", min_value=1, step=1, key="queue_page")
ticket_table()

ticket_id = st.session_state.get("queue_ticket")
if ticket_id is not None:
    with runtime.factory() as session:
        story = ticket_story(session, ticket_id)
    if story is None:
        st.warning(f"TCKT-{ticket_id} no longer exists.")
    else:
        ticket = story.ticket
        st.subheader(f"{ticket.reference} · {ticket.subject}")
        st.caption(f"{ticket.status} · from {ticket.email} via {ticket.source} · team {ticket.team or '—'}")
        conversation, timeline, outbox = st.tabs(["Conversation", "Timeline", "Outgoing mail"])
        with conversation:
            st.text(ticket.description)
            for message in story.messages:
                with st.container(border=True):
                    st.caption(
                        f"{message.direction} · {message.email_type} · {message.from_address} · "
                        f"{message.received_at:%Y-%m-%d %H:%M}"
                    )
                    st.text(message.body)
        with timeline:
            st.dataframe(
                pd.DataFrame(
                    [{"when": e.timestamp, "event": e.type, "what": e.title, "by": e.actor} for e in story.timeline]
                ),
                hide_index=True,
                width="stretch",
            )
        with outbox:
            if story.outbox:
                st.dataframe(
                    pd.DataFrame(
                        [
                            {
                                "kind": m.kind,
                                "state": m.state,
                                "to": m.to_address,
                                "subject": m.subject,
                                "attempts": m.attempts,
                                "sent": m.sent_at,
                                "error": m.last_error or "",
                            }
                            for m in story.outbox
                        ]
                    ),
                    hide_index=True,
                    width="stretch",
                )
            else:
                st.info("No outgoing mail for this ticket.")
