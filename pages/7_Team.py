"""The team: who belongs to which team (for "My team's" and notifications) and the desk's canned replies.

Everyone reads it; leads and admins change it, and every change is in the audit log.
"""

import pandas as pd
import streamlit as st

from engine.core.db import transaction
from engine.core.enums import Role
from engine.operators.assignment import operator_teams, set_operator_team
from engine.operators.permissions import PermissionDeniedError
from engine.operators.queries import teams
from ui.auth import allowed
from ui.components import flash, page, role_hint, show_flash
from ui.macros import canned_reply_editor
from ui.tables import show_table

runtime, actor = page("Team")
LEADS_ONLY = role_hint(actor, Role.LEAD)
CAN_LEAD = allowed(actor, Role.LEAD)
NO_TEAM = "no team"

st.title("Team")
show_flash()

with runtime.factory() as session:
    people = operator_teams(session)
    known_teams = sorted({*teams(session), runtime.settings.DEFAULT_TEAM})

st.subheader("Operators and their teams")
show_table(
    pd.DataFrame(
        [{"operator": name, "role": role, "team": team or NO_TEAM} for name, role, team in people],
        columns=["operator", "role", "team"],
    ),
    hide_index=True,
    width="stretch",
    column_config={
        "operator": st.column_config.TextColumn("Operator"),
        "role": st.column_config.TextColumn("Role"),
        "team": st.column_config.TextColumn("Team"),
    },
)
with st.form("team_membership"):
    columns = st.columns([2, 2, 1], vertical_alignment="bottom")
    who = columns[0].selectbox("Operator", [name for name, _, _ in people], key="team_operator", disabled=not CAN_LEAD)
    team = columns[1].selectbox("Team", [NO_TEAM, *known_teams], key="team_team", disabled=not CAN_LEAD)
    if columns[2].form_submit_button("Save", disabled=not CAN_LEAD, help=LEADS_ONLY, key="team_save"):
        try:
            with transaction(runtime.factory) as session:
                set_operator_team(session, actor, who, None if team == NO_TEAM else team)
        except (PermissionDeniedError, LookupError) as error:
            flash(f"Not saved: {error}", "error")
        else:
            flash(f"{who} is now in {'no team' if team == NO_TEAM else 'the team ' + team}.")
        st.rerun()

st.divider()
canned_reply_editor(runtime, actor, known_teams)
