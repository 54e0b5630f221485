"""What the desk learned from its people, on the pages: the track record of the answers a ticket's draft cites
(Ticket), and the learned answers, their records, the ones waiting for a lead and the article drafts
(Knowledge Base). Everything is read through engine.operators.queries and done through engine.operators.actions;
the learned questions are customers' words, shown as plain text only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from engine.core.db import transaction
from engine.core.enums import Role
from engine.operators.actions import mark_learned_answer_general, publish_learned_article, restore_answer
from engine.operators.permissions import Actor, PermissionDeniedError
from engine.operators.queries import (
    LearnedAnswerView,
    cited_answer_records,
    learned_answer_views,
    record_line,
    section_record_rows,
)
from engine.outcomes.learned import article_candidates, learned_subject
from engine.runtime import Runtime
from ui.auth import allowed
from ui.components import flash, plain, role_hint
from ui.tables import show_table

TITLE_CHARS = 120
REFUSED = (LookupError, ValueError, PermissionDeniedError)


def answer_records(runtime: Runtime, evidence: list[dict[str, Any]]) -> None:
    """Under a ticket's evidence: how each cited answer fared so far ("this answer: approved 14×, ...")."""
    with runtime.factory() as session:
        views = cited_answer_records(session, evidence, runtime.settings.LEARNED_REOPENS_TO_HOLD)
    for view in views:
        st.caption(f"This answer ({plain(view.label)}): {record_line(view.record)}")
        if view.held:
            st.warning(
                f"Not sent on its own: customers re-opened it {view.record.reopened_since_review}× since a lead last "
                "looked at it. A lead can restore it on the Knowledge Base page."
            )


def _done(factory: sessionmaker[Session], message: str, operation: Callable[[Session], object]) -> None:
    """Run a lead's action in one transaction; its outcome shows after the rerun."""
    try:
        with transaction(factory) as session:
            operation(session)
        flash(message)
    except REFUSED as refused:
        flash(f"Not done: {refused}", "error")
    st.rerun()


def learned_answers_tab(runtime: Runtime, actor: Actor) -> None:
    """The Knowledge Base page's tab: article drafts, learned answers with their records, sections' records."""
    st.caption(
        "Answers people approved, edited or wrote, and automatic answers their customer confirmed. The desk gives one "
        "again when a new question closely matches the questions it answered, with more confidence the better its "
        "record. The questions are customers' words: they are matched, never sent."
    )
    _article_drafts(runtime, actor)
    with runtime.factory() as session:
        views = learned_answer_views(session, runtime.settings.LEARNED_REOPENS_TO_HOLD)
        sections = section_record_rows(session, runtime.settings.LEARNED_REOPENS_TO_HOLD)
    st.markdown("**Learned answers**")
    if not views:
        st.info("Nothing learned yet: answers are learned as people approve, edit or write them.")
    for view in views:
        _learned_answer(runtime.factory, view, actor)
    st.markdown("**Track record of knowledge-base passages**")
    if not sections:
        st.caption("No passage has been approved, edited, rejected, confirmed or re-opened yet.")
        return
    show_table(
        pd.DataFrame(sections).drop(columns=["subject"]).rename(columns={"reopened": "re-opened"}),
        hide_index=True,
        width="stretch",
        key="learned_sections",
    )
    for row in [row for row in sections if row["held for a lead"]]:
        st.warning(f"{plain(row['answer'])}: not sent on its own after customers re-opened it.")
        if st.button(
            "Restore automatic answers",
            key=f"learned_restore_{row['subject']}",
            disabled=not allowed(actor, Role.LEAD),
            help=role_hint(actor, Role.LEAD),
        ):
            _done(
                runtime.factory,
                "Restored: it may be sent on its own again.",
                lambda s, r=row: restore_answer(s, actor, r["subject"]),
            )


def _learned_answer(factory: sessionmaker[Session], view: LearnedAnswerView, actor: Actor) -> None:
    answer, lead = view.answer, allowed(actor, Role.LEAD)
    with st.container(border=True):
        status = "given again" if view.reusable and not view.held else "waiting for a lead"
        st.markdown(f"**Learned answer {answer.id}** · {status} · {record_line(view.record)}")
        st.text(answer.answer)
        if view.questions:
            st.caption("Questions it answered (customers' words)")
            for question in view.questions[:5]:
                st.text(f"• {question}")
        if not view.reusable:
            st.warning(
                "It names the first customer's particulars ("
                + ", ".join(answer.particulars)
                + "): a lead rewrites it without them, or marks it general, before it is given to anyone else."
            )
            text = st.text_area(
                "General wording", value=answer.answer, key=f"learned_text_{answer.id}", disabled=not lead
            )
            if st.button(
                "Mark general", key=f"learned_general_{answer.id}", disabled=not lead, help=role_hint(actor, Role.LEAD)
            ):
                _done(
                    factory,
                    f"Learned answer {answer.id} may now be given to other customers.",
                    lambda s: mark_learned_answer_general(
                        s, actor, answer.id, text=None if text == answer.answer else text
                    ),
                )
        if view.held:
            st.warning(f"Customers re-opened it {view.record.reopened_since_review}×: it is not sent on its own.")
            if st.button(
                "Restore automatic answers",
                key=f"learned_restore_{answer.id}",
                disabled=not lead,
                help=role_hint(actor, Role.LEAD),
            ):
                _done(
                    factory,
                    f"Learned answer {answer.id} may be sent on its own again.",
                    lambda s: restore_answer(s, actor, learned_subject(answer.id)),
                )
        if len(view.by_category) > 1:
            show_table(pd.DataFrame(view.by_category), hide_index=True, key=f"learned_categories_{answer.id}")


def _article_drafts(runtime: Runtime, actor: Actor) -> None:
    """Learned answers approved often enough to become an article. A lead reads, edits or drops every question
    variant (customers' words, cleaned of their particulars) before publishing: nothing a customer wrote becomes
    knowledge unread, and publishing refuses a title or variant that still names a customer's particulars."""
    minimum = runtime.settings.LEARNED_ARTICLE_MIN_APPROVALS
    with runtime.factory() as session:
        offered = article_candidates(session, minimum)
    if not offered:
        return
    st.markdown(f"**Article drafts** (learned answers approved {minimum}× or more)")
    lead = allowed(actor, Role.LEAD)
    for answer, record, questions in offered:
        with (
            st.expander(f"Draft from learned answer {answer.id} · {record_line(record)}"),
            st.form(f"learned_article_{answer.id}"),
        ):
            title = st.text_input(
                "Title", value=(questions[0] if questions else "")[:TITLE_CHARS], key=f"learned_title_{answer.id}"
            )
            st.caption(
                "Questions it answers: customers' words, with the particulars found replaced by their kind. "
                "Read each one; edit it or untick it to leave it out of the article."
            )
            variants = []
            for number, question in enumerate(questions, 1):
                keep = st.checkbox(f"Keep question {number}", value=True, key=f"learned_keep_{answer.id}_{number}")
                text = st.text_area(f"Question {number}", value=question, key=f"learned_q_{answer.id}_{number}")
                if keep:
                    variants.append(text)
            st.caption("Answer")
            st.text(answer.answer)
            if st.form_submit_button(
                "Publish to the knowledge base",
                key=f"learned_publish_{answer.id}",
                disabled=not lead,
                help=role_hint(actor, Role.LEAD),
            ):
                try:
                    document = publish_learned_article(
                        runtime.factory, runtime.settings, actor, answer.id, title=title, questions=variants
                    )
                    flash(f"Published as {document.filename} ({document.status}).")
                except REFUSED as refused:
                    flash(f"Not published: {refused}", "error")
                st.rerun()
