"""The ticket queue: saved views, filter, search, sort and page on the server; one click opens a ticket; tick
rows to approve, assign or close them; j / k / Enter / a / e work from the keyboard.

The page shows a snapshot (the rows the operator selected from never shift under them); a live counter
says when new tickets arrived, and Refresh loads them.
"""

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pandas as pd
import streamlit as st

from engine.core.db import transaction
from engine.core.enums import Role, TicketStatus
from engine.operators.actions import PRIORITIES, bulk_approve, bulk_assign, bulk_close
from engine.operators.assignment import operator_team
from engine.operators.merging import known_tags
from engine.operators.permissions import Actor
from engine.operators.queries import QueueFilter, held_draft_reasons, queue_page, sources, teams
from engine.operators.sla import SlaTargets
from ui import glossary
from ui.auth import allowed, live_actor, session_alive
from ui.components import flash, page, page_buttons, plain, role_hint, show_flash, why_drafts_wait
from ui.queue_words import confirmation_text, queue_count_line, result_text
from ui.tables import show_table

VIEWS = ("All tickets", "Needs approval", "Assigned to me", "My team's", "Escalated to my team", "Breaching soon")
KEEP = "no change"
PARTS = ("team", "priority")  # what Assign sets, each from its box (queue_bulk_<part>) unless that box says KEEP
SHORTCUTS = {"j": "queue_down", "k": "queue_up", "Enter": "queue_open", "a": "queue_approve", "e": "queue_edit"}
# Keys press the queue's own buttons, so a shortcut does nothing a click could not; typing in a field is left alone.
# The script runs in the page itself (st.html, no iframe) and replaces any listener an earlier run left, so the keys
# work after the sidebar or Back brought the operator here, not only after a reload.
KEYBOARD = """<script>
const doc = window.document;
if (doc.queueShortcuts) doc.removeEventListener("keydown", doc.queueShortcuts);
doc.queueShortcuts = (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey || target.isContentEditable) return;
  if (["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName)) return;
  const key = SHORTCUTS[event.key];
  const button = key && doc.querySelector(`.st-key-${key} button`);
  if (button && !button.disabled) { event.preventDefault(); button.click(); }
};
doc.addEventListener("keydown", doc.queueShortcuts);
</script>""".replace("SHORTCUTS", json.dumps(SHORTCUTS))


def with_view(queue: QueueFilter, view: str, actor: Actor, team: str, own_team: str | None) -> QueueFilter:
    """The saved view narrows the filters: drafts to approve, tickets assigned to the operator, their own team's
    tickets, or a team's escalations."""
    if view == "Needs approval":
        return replace(queue, statuses=(TicketStatus.AWAITING_APPROVAL,))
    if view == "Assigned to me":
        return replace(queue, assignee=actor.username)
    if view == "My team's":
        return replace(queue, teams=(own_team or "",))
    if view == "Breaching soon":
        return replace(queue, breaching_soon=True, sort="time left")
    if view == "Escalated to my team":
        return replace(queue, statuses=(TicketStatus.ESCALATED,), teams=(team,))
    return queue


runtime, actor = page("Queue")
PAGE_SIZE = runtime.settings.DASHBOARD_PAGE_SIZE
SLA = SlaTargets.of(runtime.settings)
st.title("Queue")
show_flash()
st.html(KEYBOARD, unsafe_allow_javascript=True)

with runtime.factory() as session:
    known_sources, known_teams, tags = sources(session), teams(session), known_tags(session)
    held = held_draft_reasons(session)
    own_team = operator_team(session, actor.username)
why_drafts_wait(held)
known_teams = sorted({*known_teams, runtime.settings.DEFAULT_TEAM})

views = st.columns([5, 2])
view = views[0].segmented_control("View", VIEWS, default=VIEWS[0], key="queue_view", bind="query-params") or VIEWS[0]
my_team = views[1].selectbox(
    "My team",
    known_teams,
    index=known_teams.index(runtime.settings.DEFAULT_TEAM),
    key="queue_my_team",
    disabled=view != "Escalated to my team",
    help="For the view Escalated to my team.",
)
filters = st.columns([2, 2, 2, 2, 2, 3, 2])
statuses = filters[0].multiselect(
    "Status", list(TicketStatus), format_func=glossary.status, key="queue_status", placeholder="Any"
)
chosen_sources = filters[1].multiselect("Source", known_sources, key="queue_source", placeholder="Any")
chosen_teams = filters[2].multiselect("Team", known_teams, key="queue_team", placeholder="Any")
chosen_priorities = filters[3].multiselect("Priority", PRIORITIES, key="queue_priority", placeholder="Any")
chosen_tags = filters[4].multiselect(
    "Tags", tags, key="queue_tags", placeholder="Any", help="Tickets with any of the chosen tags."
)
search = filters[5].text_input(
    "Search", key="queue_search", placeholder="Any words in the ticket, a requester or TCKT-id"
)
sort = filters[6].selectbox("Sort", ["newest", "oldest", "recently updated", "time left"], key="queue_sort")
queue = QueueFilter(
    statuses=tuple(statuses),
    sources=tuple(chosen_sources),
    teams=tuple(chosen_teams),
    priorities=tuple(chosen_priorities),
    search=search,
    sort=sort,
    tags=tuple(chosen_tags),
)
queue = with_view(queue, view, actor, my_team, own_team)
if view == "My team's":
    st.caption(
        f"Tickets of the team {own_team}." if own_team else "You are in no team: a lead sets teams on the Team page."
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
            sla=SLA,
        )
    st.session_state["queue_snapshot"] = {"key": snapshot_key, "rows": rows, "total": total}
    st.session_state.pop("queue_table", None)
rows = st.session_state["queue_snapshot"]["rows"]
total = st.session_state["queue_snapshot"]["total"]
pages = max(1, -(-total // PAGE_SIZE))


@st.fragment(run_every=timedelta(seconds=runtime.settings.DASHBOARD_REFRESH_SECONDS))
def new_arrivals() -> None:
    """Says when the queue changed, on the count's own line: nothing above the table moves, and the table never
    reloads under an operator's selection."""
    if not session_alive():
        return
    with runtime.factory() as session:
        _, now_total = queue_page(session, queue, limit=0, sla=SLA)
    st.caption(
        queue_count_line(total, page_number, pages, searched=bool(queue.search.strip()))
        + (
            f" · :orange[**🔔 {now_total - total:+,} since this page loaded: press Refresh**]"
            if now_total != total
            else ""
        )
    )


bar = st.columns([6, 1], vertical_alignment="center")
if bar[1].button("Refresh", key="queue_refresh", icon=":material/refresh:", width="stretch"):
    st.session_state["queue_refreshes"] = st.session_state.get("queue_refreshes", 0) + 1
    st.rerun()
with bar[0]:
    new_arrivals()


def ask(confirm: dict[str, Any]) -> None:
    """A button's callback: the confirmation shows in the run its click starts, with no second run."""
    st.session_state["queue_confirm"] = confirm


def ask_assign(ids: list[int]) -> None:
    """Assign's callback: the team and priority as the two boxes beside it read at the click."""
    chosen = {part: None if (value := st.session_state[f"queue_bulk_{part}"]) == KEEP else value for part in PARTS}
    ask({"op": "assign", "ids": ids, **chosen})


def move_focus(cursor: int) -> None:
    """j / k's callback: the focus has moved before the run the key starts, so one run draws it."""
    st.session_state["queue_cursor"] = cursor


def confirm_panel(actor: Actor) -> None:
    """The confirmation every bulk or keyboard action waits for; nothing is sent or changed before it."""
    confirm = st.session_state.get("queue_confirm")
    if not confirm:
        return
    what = confirmation_text(confirm)
    with st.container(border=True):
        st.warning(what)
        yes, no, _ = st.columns([1, 1, 6])
        no.button("Cancel", key="queue_confirm_no", on_click=st.session_state.pop, args=("queue_confirm",))
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
                flash(
                    result_text(confirm["op"], result.done, result.skipped),
                    "warning" if result.skipped else "success",
                )
            st.session_state["queue_refreshes"] = st.session_state.get("queue_refreshes", 0) + 1
            st.rerun(scope="app")  # the whole page: the snapshot reloads and the notice shows at the top


def focus_bar(actor: Actor, rows: list[dict[str, Any]], cursor: int) -> None:
    """The focused row and what the keys do to it; the keys press these buttons (KEYBOARD)."""
    focus = rows[cursor]
    bar = st.columns([5, 1, 1, 1.4, 2, 1.3], vertical_alignment="center")
    bar[0].markdown(f"▶ **{focus['ticket']}** · {plain(focus['subject'])}")
    for column, key, label, step in ((bar[1], "queue_up", "↑ k", -1), (bar[2], "queue_down", "↓ j", 1)):
        column.button(
            label,
            key=key,
            disabled=not 0 <= cursor + step < len(rows),
            width="stretch",
            on_click=move_focus,
            args=(cursor + step,),
        )
    if bar[3].button("Open ↵", key="queue_open", type="primary", width="stretch"):
        st.switch_page("pages/2_Ticket.py", query_params={"id": str(focus["id"])})
    bar[4].button(
        "Approve draft (a)",
        key="queue_approve",
        disabled=not focus["draft"] or not allowed(actor, Role.AGENT),
        help=role_hint(actor, Role.AGENT) or "Send this ticket's draft, after a confirmation.",
        width="stretch",
        on_click=ask,
        args=({"op": "approve", "drafts": {focus["id"]: focus["draft"]}},),
    )
    if bar[5].button("Edit (e)", key="queue_edit", help="Open the ticket at its draft.", width="stretch"):
        st.switch_page("pages/2_Ticket.py", query_params={"id": str(focus["id"])})


def queue_table(rows: list[dict[str, Any]], cursor: int) -> list[dict[str, Any]]:
    """The page's rows, the focused one highlighted; a clicked cell opens its ticket; returns the ticked rows."""
    frame = pd.DataFrame(rows)
    frame["status"] = frame["status"].map(glossary.status).where(frame["waiting"] == "", frame["waiting"]) + frame[
        "attention"
    ].map({True: " · needs you", False: ""})
    frame["draft"] = frame["draft"].map(lambda draft: "✓" if draft else "")
    frame["confidence"] = frame["confidence"].map(lambda value: glossary.confidence(None if pd.isna(value) else value))
    frame["escalation_score"] = frame["escalation_score"].map(lambda value: "—" if pd.isna(value) else f"{value:.0f}")
    styled = frame.style.apply(
        lambda row: ["background-color: rgba(255, 196, 0, 0.25)" if row.name == cursor else ""] * len(row), axis=1
    )
    picked = show_table(
        styled,
        hide_index=True,
        width="stretch",
        height=min(38 + 35 * len(rows), 640),
        on_select="rerun",
        selection_mode=["multi-row", "single-cell"],
        key="queue_table",
        column_order=[
            "ticket",
            "status",
            "subject",
            "priority",
            "team",
            "age_hours",
            "sla",
            "confidence",
            "escalation_score",
            "draft",
            "assignee",
        ],
        column_config={
            "ticket": st.column_config.TextColumn("Ticket", width=80, help="Click a cell to open the ticket."),
            "status": st.column_config.TextColumn("Status", width=150),
            "subject": st.column_config.TextColumn("Subject", width=158),
            "priority": st.column_config.TextColumn("Priority", width=65),
            "team": st.column_config.TextColumn("Team", width=85),
            "age_hours": st.column_config.NumberColumn("Age (h)", format="%.1f", width=60),
            "sla": st.column_config.TextColumn("SLA", width=72),
            "confidence": st.column_config.TextColumn("Confidence", width=75),
            "escalation_score": st.column_config.TextColumn("Escalation", width=70),
            "draft": st.column_config.TextColumn("Draft", width=50),
            "assignee": st.column_config.TextColumn("Assigned to", width=75),
        },
    )
    clicked = picked.selection.cells if picked else []
    if clicked and clicked[0][0] < len(rows):
        st.switch_page("pages/2_Ticket.py", query_params={"id": str(rows[clicked[0][0]]["id"])})
    return [rows[index] for index in (picked.selection.rows if picked else []) if index < len(rows)]


def bulk_actions(actor: Actor, selected: list[dict[str, Any]]) -> None:
    """Approve, assign or close the ticked rows, each after the confirmation above the table."""
    st.divider()
    st.subheader(f"{len(selected)} selected")
    ids = [row["id"] for row in selected]
    drafts = {row["id"]: row["draft"] for row in selected if row["draft"]}
    no_right = role_hint(actor, Role.AGENT)
    may_act = allowed(actor, Role.AGENT)
    actions = st.columns([2, 2, 2, 1, 2], vertical_alignment="bottom")
    actions[0].button(
        f"Approve {glossary.plural(len(drafts), 'draft')}",
        disabled=not drafts or not may_act,
        help=no_right,
        key="queue_bulk_approve",
        width="stretch",
        on_click=ask,
        args=({"op": "approve", "drafts": drafts},),
    )
    actions[1].selectbox("Set team", [KEEP, *known_teams], key="queue_bulk_team")
    actions[2].selectbox("Set priority", [KEEP, *PRIORITIES], key="queue_bulk_priority")
    actions[3].button(
        "Assign",
        disabled=not may_act,
        help=no_right,
        key="queue_bulk_assign",
        width="stretch",
        on_click=ask_assign,
        args=(ids,),
    )
    actions[4].button(
        f"Close {glossary.plural(len(ids), 'ticket')}",
        disabled=not may_act,
        help=no_right,
        key="queue_bulk_close",
        width="stretch",
        on_click=ask,
        args=({"op": "close", "ids": ids},),
    )


@st.fragment
def workspace() -> None:
    """The focus, the table and what to do with its rows. A key, a click or a ticked row reruns only this part:
    the filters above and their queries stay as they are, so the keys answer at once."""
    actor = live_actor(activity=True)
    if actor is None:
        return
    rows = st.session_state["queue_snapshot"]["rows"]
    cursor = min(int(st.session_state.get("queue_cursor", 0)), len(rows) - 1)
    focus_bar(actor, rows, cursor)
    confirm_panel(actor)  # above the table, where the key or button that asked for it was pressed
    st.space("small")  # room for the table's toolbar, which would otherwise cover "Edit (e)"
    selected = queue_table(rows, cursor)
    pager = st.columns([2, 2, 2, 6])
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
        st.rerun(scope="app")
    if selected:
        bulk_actions(actor, selected)
    else:
        st.caption("Click a cell to open its ticket; tick rows to act on several at once.")


if not rows:
    st.info("No tickets match. New tickets appear here as the sources deliver them.")
    st.stop()
workspace()
