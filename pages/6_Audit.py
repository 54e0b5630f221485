"""The audit log: who did what, when, to which ticket, draft, document, policy or operator; filter and export."""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from engine.core.enums import Role
from engine.operators.exports import to_safe_csv
from engine.operators.queries import AuditFilter, audit_page, audit_vocabulary
from ui import glossary
from ui.components import page, page_buttons
from ui.tables import show_table

runtime, actor = page("Audit", Role.LEAD)
PAGE_SIZE = 100
EXPORT_LIMIT = 50_000
st.title("Audit log")

with runtime.factory() as session:
    actors, actions = audit_vocabulary(session)
today = date.today()
filters = st.columns([2, 2, 2, 2])
who = filters[0].multiselect("Who", actors, format_func=glossary.actor, key="audit_who", placeholder="Anyone")
what = filters[1].multiselect(
    "Action", actions, format_func=glossary.audit_action, key="audit_what", placeholder="Any action"
)
target = filters[2].text_input("Target id", key="audit_target", placeholder="TCKT-42 or an id")
dates = filters[3].date_input("Dates", value=(today - timedelta(days=30), today), key="audit_dates")
start_day, end_day = (dates[0], dates[-1]) if isinstance(dates, tuple) and dates else (today, today)
audit = AuditFilter(
    actors=tuple(who),
    actions=tuple(what),
    search=target,
    start=datetime.combine(start_day, time.min, UTC),
    end=datetime.combine(end_day + timedelta(days=1), time.min, UTC),
)
page_number = int(st.session_state.get("audit_page", 1))
with runtime.factory() as session:
    rows, total = audit_page(session, audit, offset=(page_number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
pages = max(1, -(-total // PAGE_SIZE))


def readable(entries: list[dict[str, Any]]) -> pd.DataFrame:
    """Audit rows in people's words: who, what they did, to what (the ticket, linked, when there is one), with which
    details."""
    return pd.DataFrame(
        [
            {
                "when": entry["when"],
                "who": glossary.actor(entry["who"]),
                "action": glossary.audit_action(entry["action"], entry["details"]),
                "target": glossary.audit_target(entry["target_type"], entry["target_id"], entry["details"]),
                "ticket": f"Ticket?id={entry['ticket']}#TCKT-{entry['ticket']}" if entry["ticket"] else None,
                "details": glossary.details({k: v for k, v in entry["details"].items() if k != "ticket"}),
            }
            for entry in entries
        ],
        columns=["when", "who", "action", "target", "ticket", "details"],
    )


st.caption(f"{total:,} entries · page {page_number} of {pages:,}")
if not rows:
    st.info("No audit entries match.")
else:
    show_table(
        readable(rows),
        hide_index=True,
        width="stretch",
        column_config={
            "when": st.column_config.DatetimeColumn("when", format="YYYY-MM-DD HH:mm:ss"),
            "ticket": st.column_config.LinkColumn("ticket", display_text=r"#(TCKT-\d+)$", help="Opens the ticket."),
        },
    )
pager = st.columns([1, 1, 4, 2])
page_buttons(pager, "audit", page_number, pages, ("← Newer", "Older →"))
if total and pager[3].button("Prepare CSV export", key="audit_export"):
    with runtime.factory() as session:
        everything, _ = audit_page(session, audit, limit=EXPORT_LIMIT)
    st.download_button(
        f"Download {len(everything):,} entries (CSV)",
        to_safe_csv(readable(everything)),
        file_name=f"audit_{start_day}_{end_day}.csv",
        mime="text/csv",
        key="audit_download",
        icon=":material/download:",
    )
