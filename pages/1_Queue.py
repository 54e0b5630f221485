"""The ticket queue: filter, search, sort and page on the server; select rows to approve, assign or close them.

The page shows a snapshot (the rows the operator selected from never shift under them); a live counter
says when new tickets arrived, and Refresh loads them.
"""

from datetime import timedelta

import pandas as pd
import streamlit as st

from engine.actions import PRIORITIES, bulk_approve, bulk_assign, bulk_close
from engine.db import transaction
from engine.enums import Role, TicketStatus
from engine.queries import QueueFilter, queue_page, sources, teams
from ui.auth import allowed, session_alive
from ui.components import flash, page, page_buttons, role_hint, show_flash

runtime, actor = page("Queue")
PAGE_SIZE = runtime.settings.DASHBOARD_PAGE_SIZE
st.title("Queue")
show_flash()

with runtime.factory() as session:
    known_sources, known_teams = sources(session), teams(session)
known_teams = sorted({*known_teams, runtime.settings.DEFAULT_TEAM})

filters = st.columns([2, 2, 2, 2, 3, 2])
statuses = filters[0].multiselect("Status", [s.value for s in TicketStatus], key="queue_status", placeholder="Any")
chosen_sources = filters[1].multiselect("Source", known_sources, key="queue_source", placeholder="Any")
chosen_teams = filters[2].multiselect("Team", known_teams, key="queue_team", placeholder="Any")
chosen_priorities = filters[3].multiselect("Priority", PRIORITIES, key="queue_priority", placeholder="Any")
search = filters[4].text_input("Search", key="queue_search", placeholder="Subject, requester or TCKT-id")
sort = filters[5].selectbox("Sort", ["newest", "oldest", "recently updated"], key="queue_sort")
queue = QueueFilter(
    statuses=tuple(statuses),
    sources=tuple(chosen_sources),
    teams=tuple(chosen_teams),
    priorities=tuple(chosen_priorities),
    search=search,
    sort=sort,
)

if st.session_state.get("queue_filter_seen") != queue:
    st.session_state["queue_filter_seen"] = queue
    st.session_state["queue_page"] = 1
page_number = int(st.session_state.get("queue_page", 1))
snapshot_key = (queue, page_number, st.session_state.get("queue_refreshes", 0))
if st.session_state.get("queue_snapshot", {}).get("key") != snapshot_key:
    with runtime.factory() as session:
        rows, total = queue_page(
            session,
            queue,
            offset=(page_number - 1) * PAGE_SIZE,
            limit=PAGE_SIZE,
            sla_hours=runtime.settings.SLA_RESOLUTION_HOURS,
        )
    st.session_state["queue_snapshot"] = {"key": snapshot_key, "rows": rows, "total": total}
    st.session_state.pop("queue_table", None)
rows = st.session_state["queue_snapshot"]["rows"]
total = st.session_state["queue_snapshot"]["total"]
pages = max(1, -(-total // PAGE_SIZE))


@st.fragment(run_every=timedelta(seconds=runtime.settings.DASHBOARD_REFRESH_SECONDS))
def new_arrivals() -> None:
    """Says when the queue changed; never reloads the table under an operator's selection."""
    if not session_alive():
        return
    with runtime.factory() as session:
        _, now_total = queue_page(session, queue, limit=0)
    if now_total != total:
        st.info(f"{now_total - total:+,} tickets since this page loaded · press Refresh to see them", icon="🔔")


bar = st.columns([6, 1])
bar[0].caption(f"{total:,} tickets · page {page_number} of {pages:,}")
if bar[1].button("Refresh", key="queue_refresh", icon=":material/refresh:", width="stretch"):
    st.session_state["queue_refreshes"] = st.session_state.get("queue_refreshes", 0) + 1
    st.rerun()
new_arrivals()

if not rows:
    st.info("No tickets match. New tickets appear here as the sources deliver them.")
    st.stop()

frame = pd.DataFrame(rows)
frame["draft"] = frame["draft"].map(lambda draft: "awaiting approval" if draft else "")
picked = st.dataframe(
    frame,
    hide_index=True,
    width="stretch",
    height=min(38 + 35 * len(rows), 740),
    on_select="rerun",
    selection_mode="multi-row",
    key="queue_table",
    column_order=[
        "ticket",
        "status",
        "subject",
        "requester",
        "source",
        "priority",
        "team",
        "age_hours",
        "sla",
        "confidence",
        "escalation_score",
        "draft",
        "held_by",
    ],
    column_config={
        "ticket": st.column_config.TextColumn("Ticket", width="small"),
        "status": st.column_config.TextColumn("Status"),
        "subject": st.column_config.TextColumn("Subject", width="large"),
        "requester": st.column_config.TextColumn("Requester"),
        "source": st.column_config.TextColumn("Source", width="small"),
        "priority": st.column_config.TextColumn("Priority", width="small"),
        "team": st.column_config.TextColumn("Team"),
        "age_hours": st.column_config.NumberColumn("Age (h)", format="%.1f", width="small"),
        "sla": st.column_config.TextColumn("SLA", width="small"),
        "confidence": st.column_config.ProgressColumn("Confidence", min_value=0.0, max_value=1.0, format="%.2f"),
        "escalation_score": st.column_config.ProgressColumn("Escalation", min_value=0, max_value=100, format="%.0f"),
        "draft": st.column_config.TextColumn("Draft"),
        "held_by": st.column_config.TextColumn("Held by", width="small"),
    },
)
selected = [rows[index] for index in (picked.selection.rows if picked else []) if index < len(rows)]

pager = st.columns([1, 1, 2, 6])
page_buttons(pager, "queue", page_number, pages, ("← Previous", "Next →"))
jump = pager[2].number_input(
    "Go to page",
    min_value=1,
    max_value=pages,
    value=page_number,
    key=f"queue_jump_{page_number}_{pages}",
    label_visibility="collapsed",
)
if jump != page_number:
    st.session_state["queue_page"] = int(jump)
    st.rerun()

if not selected:
    st.caption("Select rows to open a ticket or act on several at once.")
    st.stop()

st.divider()
st.subheader(f"{len(selected)} selected")
ids = [row["id"] for row in selected]
drafts = {row["id"]: row["draft"] for row in selected if row["draft"]}
no_right = role_hint(actor, Role.AGENT)
actions = st.columns([1, 1, 2, 2, 1])
if len(selected) == 1 and actions[0].button("Open ticket", type="primary", key="queue_open"):
    st.switch_page("pages/2_Ticket.py", query_params={"id": str(ids[0])})
if actions[1].button(
    f"Approve {len(drafts)} draft(s)",
    disabled=not drafts or not allowed(actor, Role.AGENT),
    help=no_right,
    key="queue_bulk_approve",
):
    st.session_state["queue_confirm"] = {"op": "approve", "drafts": drafts}
team = actions[2].selectbox("Team", ["(keep)", *known_teams], key="queue_bulk_team", label_visibility="collapsed")
priority = actions[3].selectbox(
    "Priority", ["(keep)", *PRIORITIES], key="queue_bulk_priority", label_visibility="collapsed"
)
if actions[4].button("Assign", disabled=not allowed(actor, Role.AGENT), help=no_right, key="queue_bulk_assign"):
    st.session_state["queue_confirm"] = {
        "op": "assign",
        "ids": ids,
        "team": None if team == "(keep)" else team,
        "priority": None if priority == "(keep)" else priority,
    }
if st.button(
    f"Close {len(ids)} ticket(s)", disabled=not allowed(actor, Role.AGENT), help=no_right, key="queue_bulk_close"
):
    st.session_state["queue_confirm"] = {"op": "close", "ids": ids}

confirm = st.session_state.get("queue_confirm")
if confirm:
    what = {
        "approve": f"Send the {len(confirm.get('drafts', {}))} draft(s) exactly as drafted to their customers?",
        "assign": f"Set team {confirm.get('team') or '(unchanged)'} and priority "
        f"{confirm.get('priority') or '(unchanged)'} on {len(confirm.get('ids', []))} ticket(s)?",
        "close": f"Close {len(confirm.get('ids', []))} ticket(s)? Open drafts on them are voided.",
    }[confirm["op"]]
    with st.container(border=True):
        st.warning(what)
        yes, no, _ = st.columns([1, 1, 6])
        if yes.button("Confirm", type="primary", key="queue_confirm_yes"):
            st.session_state.pop("queue_confirm")
            try:
                with transaction(runtime.factory) as session:
                    if confirm["op"] == "approve":
                        result = bulk_approve(
                            session, runtime.settings, actor, {int(k): tuple(v) for k, v in confirm["drafts"].items()}
                        )
                    elif confirm["op"] == "assign":
                        result = bulk_assign(
                            session, actor, confirm["ids"], team=confirm["team"], priority=confirm["priority"]
                        )
                    else:
                        result = bulk_close(
                            session, actor, confirm["ids"], reason=f"closed from the queue by {actor.username}"
                        )
            except PermissionError as error:
                flash(str(error), "error")
            else:
                skipped = "; ".join(f"TCKT-{t}: {why}" for t, why in result.skipped.items())
                flash(
                    f"{confirm['op'].capitalize()}: {len(result.done)} done"
                    + (f" · skipped {skipped}" if skipped else ""),
                    "warning" if result.skipped else "success",
                )
            st.session_state["queue_refreshes"] = st.session_state.get("queue_refreshes", 0) + 1
            st.rerun()
        if no.button("Cancel", key="queue_confirm_no"):
            st.session_state.pop("queue_confirm")
            st.rerun()
