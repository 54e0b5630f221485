"""Canned replies on the Team page: the list, a form to add or change one, delete, and seeding from the
resolutions people approved."""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st
from sqlalchemy.orm import Session

from engine.core.db import transaction
from engine.core.enums import Role
from engine.operators.macros import (
    PLACEHOLDERS,
    canned_replies,
    delete_canned_reply,
    save_canned_reply,
    seed_from_approved_answers,
)
from engine.operators.permissions import Actor, PermissionDeniedError
from engine.runtime import Runtime
from ui.auth import allowed
from ui.components import flash, role_hint

NEW = 0
EVERY_TEAM = "every team"


def _run(runtime: Runtime, change: Callable[[Session], object], done: Callable[[object], str]) -> None:
    """One change in its own transaction; `done(result)` or the refusal shows after the rerun."""
    try:
        with transaction(runtime.factory) as session:
            result = change(session)
    except (PermissionDeniedError, ValueError, LookupError) as error:
        flash(f"Not saved: {error}", "error")
    else:
        flash(done(result))
    st.rerun()


def _added(count: object) -> str:
    return f"{count} canned {'reply' if count == 1 else 'replies'} added from approved answers."


def canned_reply_editor(runtime: Runtime, actor: Actor, known_teams: list[str]) -> None:
    can_lead = allowed(actor, Role.LEAD)
    leads_only = role_hint(actor, Role.LEAD)
    with runtime.factory() as session:
        replies = {reply.id: reply for reply in canned_replies(session)}
    st.subheader("Canned replies")
    st.caption(
        "Operators start a reply from one in Write a reply. Placeholders: "
        + " · ".join(f"{{{name}}} {meaning}" for name, meaning in PLACEHOLDERS.items())
    )
    if not replies:
        st.info("No canned replies yet: write one below, or take them from answers people approved.")
    for reply in replies.values():
        with st.expander(f"{reply.title} · {reply.team or EVERY_TEAM}"):
            st.text(reply.body)
    picked = st.selectbox(
        "Change",
        [NEW, *replies],
        format_func=lambda reply_id: "a new canned reply" if reply_id == NEW else replies[reply_id].title,
        key="macro_pick",
        disabled=not can_lead,
    )
    current = replies.get(picked)
    teams = [EVERY_TEAM, *known_teams]
    with st.form(f"macro_form_{picked}"):
        title = st.text_input("Title", value=current.title if current else "", disabled=not can_lead)
        body = st.text_area(
            "Text",
            value=current.body if current else "Hello {requester_name},\n\n\n\nBest regards,\n{operator}",
            height=180,
            disabled=not can_lead,
        )
        team = st.selectbox(
            "For",
            teams,
            index=teams.index(current.team) if current and current.team in teams else 0,
            disabled=not can_lead,
        )
        if st.form_submit_button("Save canned reply", disabled=not can_lead, help=leads_only):
            _run(
                runtime,
                lambda session: save_canned_reply(
                    session,
                    actor,
                    title=title,
                    body=body,
                    team=None if team == EVERY_TEAM else team,
                    reply_id=current.id if current else None,
                ),
                lambda _: f"Canned reply “{title.strip()}” saved.",
            )
    left, right = st.columns(2)
    if current and left.button("Delete it", key="macro_delete", disabled=not can_lead, help=leads_only):
        _run(
            runtime,
            lambda session: delete_canned_reply(session, actor, current.id),
            lambda _: f"Canned reply “{current.title}” deleted.",
        )
    if right.button(
        "Add from approved answers",
        key="macro_seed",
        disabled=not can_lead,
        help=leads_only or "Resolutions a person approved, on tickets that stayed solved, as canned replies.",
    ):
        _run(runtime, lambda session: seed_from_approved_answers(session, actor), _added)
