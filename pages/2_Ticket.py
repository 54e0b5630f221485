"""One ticket's workspace: conversation, timeline, evidence, escalation score, attachments, mail, and every decision.

Approvals bind to the draft version on screen (engine/operators/actions.py refuses a stale one). Anything that writes
to a customer asks for confirmation first. Ticket text is shown as text, never as markdown or HTML.
"""

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from connectors.base import OutgoingAttachment
from engine.analysers.retrieval_analyser import citation
from engine.core.analysis import RETRIEVAL_ONLY, draft_label
from engine.core.db import transaction
from engine.core.desk_policy import current_policy
from engine.core.enums import Role, TicketStatus
from engine.core.lifecycle import IllegalTransitionError
from engine.operators.actions import (
    PRIORITIES,
    StaleDraftError,
    approve_draft,
    assign,
    edit_draft,
    override_decision,
    reject_draft,
    request_reanalysis,
    resolve_uncertain_message,
    send_manual_reply,
    set_status,
    take_over,
)
from engine.operators.permissions import PermissionDeniedError
from engine.operators.queries import TicketStory, sla_label, teams, ticket_story
from engine.operators.reply_extras import MAX_CC, MAX_FILES, cc_addresses, reply_files
from kb.search import search
from ui import glossary, ticket_workspace
from ui.auth import allowed, session_alive
from ui.components import ago, flash, held_text, page, plain, role_hint, show_flash
from ui.learned import answer_records
from ui.tables import show_table

runtime, actor = page("Ticket")
AGENT_ONLY = role_hint(actor, Role.AGENT)
KEEP = "no change"
CAN_ACT = allowed(actor, Role.AGENT)

raw_id = st.query_params.get("id") or st.session_state.get("ticket_id")
typed = st.sidebar.text_input("Open ticket", placeholder="TCKT-123", key="ticket_open")
if typed.strip():
    raw_id = typed.strip().upper().removeprefix("TCKT-")
if not raw_id or not str(raw_id).isdigit():
    st.title("Ticket")
    st.info("Pick a ticket on the Queue page, or type its TCKT-id in the sidebar.")
    st.stop()
ticket_id = int(raw_id)
st.session_state["ticket_id"] = ticket_id
if st.query_params.get("id") != str(ticket_id):
    st.query_params["id"] = str(ticket_id)

with runtime.factory() as session:
    story = ticket_story(session, ticket_id)
    known_teams = sorted({*teams(session), runtime.settings.DEFAULT_TEAM})
    policy = current_policy(session, runtime.settings)
if story is None:
    st.title(f"TCKT-{ticket_id}")
    st.warning(f"TCKT-{ticket_id} does not exist (or was deleted).")
    st.stop()
ticket = story.ticket
analysis = story.latest_analysis
escalation = story.latest_escalation
draft = story.open_draft


def act(label: str, operation: Any) -> None:
    """Run one operator action in its own transaction and report the outcome after the rerun."""
    try:
        with transaction(runtime.factory) as session:
            operation(session)
    except PermissionDeniedError as error:
        flash(f"Refused: {error}", "error")
    except StaleDraftError as error:
        flash(f"The draft changed since you looked at it, nothing was sent: {error}. Review the new version.", "error")
    except (IllegalTransitionError, ValueError, LookupError) as error:
        flash(f"{label} failed: {error}", "error")
    else:
        flash(f"{label}: done. It is in the timeline and the audit log.")
    st.session_state.pop("ticket_confirm", None)
    st.rerun()


def ask_confirmation(op: str, **details: Any) -> None:
    st.session_state["ticket_confirm"] = {"op": op, "ticket": ticket.id, **details}


st.title(f"{ticket.reference} · {plain(ticket.subject) or '(no subject)'}")
st.markdown(
    f"{glossary.status_badge(ticket.status)} &nbsp; from **{plain(ticket.requester_name or ticket.email)}** "
    f"({plain(ticket.email)}) via **{plain(ticket.source)}** · received {ago(ticket.created_at)}"
)
show_flash()
ticket_workspace.who_else_is_here(runtime, actor, ticket)
ticket_workspace.merged_conversations(runtime, ticket)
if story.claimed is not None:
    st.warning(
        f"Its first message claimed to continue [{story.claimed.reference}](?id={story.claimed.id}), but "
        f"{plain(ticket.email)} is not on that ticket: kept as its own ticket and held for a person, since a reply to "
        "someone else's ticket is a phishing signal. Nothing was changed or sent on the other ticket.",
        icon="🔗",
    )
if story.claimants:
    st.warning(
        "People not on this ticket wrote as if continuing it, each kept as their own ticket (nothing changed here): "
        + ", ".join(f"[{other.reference}](?id={other.id}) from {plain(other.email)}" for other in story.claimants),
        icon="🔗",
    )
if ticket.taken_over_by:
    st.info(
        f"{plain(ticket.taken_over_by)} owns this ticket: automation is stopped for it"
        + (", the AI draft stays as a starting point." if draft else "."),
        icon="✋",
    )

cards = st.columns(5)
cards[0].metric("Priority", ticket.priority or "—", border=True)
cards[1].metric("Team", ticket.team or "—", border=True)
cards[2].metric(
    "AI confidence",
    "—" if analysis is None or analysis.analyser == "none" else glossary.confidence(analysis.confidence),
    border=True,
)
cards[3].metric(
    "Escalation score",
    "—" if escalation is None else f"{escalation.weighted_score:.1f}",
    delta=None if escalation is None else f"escalates at {escalation.threshold:.0f}",
    delta_color="off",
    delta_arrow="off",
    border=True,
)
cards[4].metric(
    "SLA",
    sla_label(ticket.created_at, ticket.priority, ticket.resolved_at, runtime.settings.SLA_RESOLUTION_HOURS),
    border=True,
)

main, side = st.columns([3, 2], gap="large")


def thread(story: TicketStory) -> list[tuple[datetime, bool, str, str]]:
    """The conversation in time order, each message once: (when, inbound, heading, text).

    The ticket's description is the first message (the stored copy of it is skipped); mail the desk sent is
    shown from the outbox with its delivery state, so its copy in the conversation log is skipped too.
    """
    sent_ids = {message.message_id for message in story.outbox}
    entries = [
        (
            story.ticket.created_at,
            True,
            f"{plain(story.ticket.email)} · {glossary.message_kind('original')}",
            story.ticket.description,
        )
    ]
    for message in story.messages:
        if message.email_type in ("original", "initial") or message.message_id in sent_ids:
            continue
        inbound = message.direction == "inbound"
        entries.append(
            (
                message.received_at,
                inbound,
                f"{plain(message.from_address)} · {glossary.message_kind(message.email_type)}",
                message.body,
            )
        )
    for outgoing in story.outbox:
        entries.append(
            (
                outgoing.created_at,
                False,
                f"to {plain(outgoing.to_address)} · {glossary.message_kind(outgoing.kind)} · "
                f"{glossary.delivery_badge(outgoing.state)}",
                f"{outgoing.subject}\n\n{outgoing.body_text}",
            )
        )
    return sorted(entries, key=lambda entry: entry[0])


def conversation(story: TicketStory) -> None:
    for when, inbound, heading, text in thread(story):
        with st.chat_message("user" if inbound else "assistant", avatar="🙋" if inbound else "🎧"):
            st.markdown(f"{heading} · {when:%Y-%m-%d %H:%M}")
            st.text(text)


def evidence(story: TicketStory) -> None:
    items = analysis.evidence if analysis else []
    if analysis is None:
        st.info("No analysis yet: the engine has not looked at this ticket.")
    elif not items:
        st.info(
            "No evidence cited: the knowledge base had nothing relevant for this ticket."
            + (" The desk runs retrieval-only (no AI model configured)." if analysis.analyser in RETRIEVAL_ONLY else "")
        )
    if analysis is not None and (analysis.summary or analysis.resolution_steps):
        with st.container(border=True):
            st.caption("AI summary")
            st.text(analysis.summary)
            for number, step in enumerate(analysis.resolution_steps, 1):
                st.text(f"{number}. {step}")
            for gap in analysis.information_gaps:
                st.text(f"Missing: {glossary.gap(gap)}")
    if items:
        table = pd.DataFrame(
            [
                {
                    "#": number,
                    "title": item.get("title", ""),
                    "where": item.get("location", ""),
                    "fused": item.get("fused_score"),
                    "meaning rank": f"#{item['vector_rank']}" if item.get("vector_rank") else "—",
                    "keyword rank": f"#{item['bm25_rank']}" if item.get("bm25_rank") else "—",
                }
                for number, item in enumerate(items, 1)
            ]
        )
        with st.expander("How the knowledge base ranked these"):
            show_table(
                table,
                hide_index=True,
                width="stretch",
                column_config={"fused": st.column_config.NumberColumn("combined score", format="%.3f")},
            )
        for number, item in enumerate(items, 1):
            with st.expander(f"[{number}] {plain(citation({'title': '', **item}))}"):
                held_text(str(item.get("text", "")))
        answer_records(runtime, items)
    if st.button("Preview what the knowledge base would cite now", key="ticket_preview_evidence"):
        with runtime.factory() as session:
            found = search(session, runtime.settings, f"{ticket.subject}\n{ticket.description}", k=5)
        if not found:
            st.caption("The knowledge base has nothing for this ticket.")
        for hit in found:
            with st.container(border=True):
                st.caption(f"{plain(hit.title)} · {plain(hit.location)}")
                st.text(hit.text[:600])


def escalation_breakdown() -> None:
    if escalation is None:
        st.info("No escalation score yet: the analyser has not scored this ticket's escalation criteria.")
        st.caption(
            "Weights in force: "
            + ", ".join(f"{glossary.criterion(k)} {v:.2f}" for k, v in policy.escalation_weights.items())
        )
        return
    components = escalation.components or {}
    names = list(components)
    weighted = [float(components[name].get("weighted", 0)) for name in names]
    verdict = "escalate to a person" if escalation.escalate else "below the threshold: not escalated"
    st.markdown(
        f"Score **{escalation.weighted_score:.1f}** against threshold **{escalation.threshold:.0f}** → **{verdict}**"
    )
    for reason in escalation.reasons:
        st.markdown(f"- {plain(glossary.words(reason))}")
    figure = go.Figure()
    for name, value in zip(names, weighted, strict=True):
        part = components[name]
        figure.add_bar(
            y=[""],
            x=[value],
            name=f"{glossary.criterion(name)} {float(part.get('score', 0)):.0f} × {float(part.get('weight', 0)):.2f}"
            f" = {value:.1f}",
            orientation="h",
        )
    figure.add_vline(
        x=escalation.threshold,
        line_dash="dash",
        line_color="#dc2626",
        annotation_text=f"threshold {escalation.threshold:.0f}",
        annotation_position="top",
    )
    figure.update_layout(
        barmode="stack",
        height=200 + 22 * len(names),
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        xaxis={"range": [0, max(100, escalation.threshold + 5, sum(weighted))], "title": None},
        legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0},
        showlegend=True,
    )
    st.plotly_chart(figure, width="stretch", key="ticket_escalation_chart")
    show_table(
        pd.DataFrame(
            [
                {
                    "criterion": glossary.criterion(name),
                    "score": float(components[name].get("score") or 0),
                    "weight": float(components[name].get("weight") or 0),
                    "weighted": float(components[name].get("weighted") or 0),
                    "reading": str((escalation.criteria or {}).get(name, "")),
                }
                for name in names
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={
            "score": st.column_config.NumberColumn("score (0–100)", format="%.0f"),
            "weight": st.column_config.NumberColumn("weight", format="%.2f"),
            "weighted": st.column_config.NumberColumn("weighted", format="%.1f"),
        },
    )


def timeline(story: TicketStory) -> None:
    """Every event as a line of its own, newest last; long titles wrap instead of being cut."""
    for event in story.timeline:
        st.markdown(
            f"`{event.timestamp:%m-%d %H:%M:%S}` **{glossary.event(event.type)}** · "
            f"{plain(glossary.words(event.title))} · _{plain(glossary.actor(event.actor))}_"
        )


def attachments(story: TicketStory) -> None:
    if not story.attachments:
        st.caption("No attachments.")
    for attachment in story.attachments:
        with st.expander(f"📎 {plain(attachment.filename)} · {attachment.size:,} bytes · {attachment.status}"):
            if attachment.error:
                st.warning(attachment.error)
            st.text((attachment.extracted_text or "(no text extracted)")[:5000])


def outgoing(story: TicketStory) -> None:
    if not story.outbox:
        st.caption("No outgoing mail for this ticket.")
        return
    show_table(
        pd.DataFrame([ticket_workspace.outgoing_row(m) for m in story.outbox]),
        hide_index=True,
        width="stretch",
        column_config=ticket_workspace.OUTGOING_COLUMNS,
    )
    for message in story.outbox:
        if message.state == "uncertain":
            st.warning(
                f"Delivery of the {glossary.message_kind(message.kind)} (#{message.id}) is uncertain: "
                "the mail service could not confirm it."
            )
            resend, delivered, _ = st.columns([1, 1, 3])
            if resend.button("Send again", key=f"ticket_resend_{message.id}", disabled=not CAN_ACT, help=AGENT_ONLY):
                act("Resend", lambda s, m=message.id: resolve_uncertain_message(s, actor, m, resend=True))
            if delivered.button(
                "It arrived", key=f"ticket_arrived_{message.id}", disabled=not CAN_ACT, help=AGENT_ONLY
            ):
                act("Mark delivered", lambda s, m=message.id: resolve_uncertain_message(s, actor, m, resend=False))


# The record this run of the page has just read, behind its sign-in gate: the fragment's call in this run draws it,
# and only the fragment's own reruns check the session and read the ticket again (not the same queries twice).
unread = [story]


@st.fragment(run_every=timedelta(seconds=runtime.settings.DASHBOARD_REFRESH_SECONDS))
def live_ticket() -> None:
    """The ticket's record, read again every few seconds: a send shows as delivered without a reload."""
    if unread:
        fresh = unread.pop()
    elif not session_alive():
        return
    else:
        with runtime.factory() as session:
            fresh = ticket_story(session, ticket_id) or story
    if fresh.headline != story.headline:  # a new analysis, draft or status landed: header and draft panel too
        st.rerun(scope="app")
    tabs = st.tabs(
        ["Conversation", "Timeline", "Evidence", "Escalation score", "Attachments", "Outgoing mail"],
        key="ticket_tab",
        on_change="rerun",
    )
    with tabs[0]:
        conversation(fresh)
    with tabs[1]:
        timeline(fresh)
    with tabs[2]:
        evidence(fresh)
    with tabs[3]:
        escalation_breakdown()
    with tabs[4]:
        attachments(fresh)
    with tabs[5]:
        outgoing(fresh)


with main:
    live_ticket()

with side:
    st.subheader("AI draft")
    if draft is None:
        st.caption(
            "No draft awaiting approval."
            + (
                " Retrieval-only mode (no AI model): write a reply or override below."
                if analysis and analysis.analyser in RETRIEVAL_ONLY
                else ""
            )
        )
    else:
        st.caption(
            f"{glossary.draft_kind(draft.kind).capitalize()} · version {draft.version} · "
            + (glossary.words("; ".join(draft.policy.get("reasons", []))) or "held for approval")
        )
        if analysis is not None and "edited_by" not in (draft.policy or {}):
            st.caption(draft_label(analysis.analyser) + " · not part of the message")
        subject = st.text_input(
            "Subject",
            value=draft.subject or "",
            key=f"draft_subject_{draft.id}_{draft.version}",
            disabled=not CAN_ACT,
            help=AGENT_ONLY,
        )
        body = st.text_area(
            "Message",
            value=draft.body or "",
            height=220,
            key=f"draft_body_{draft.id}_{draft.version}",
            disabled=not CAN_ACT,
            help=AGENT_ONLY,
        )
        edited = subject != (draft.subject or "") or body != (draft.body or "")
        send, save = st.columns(2)
        if send.button(
            "Send edited" if edited else "Approve and send",
            type="primary",
            disabled=not CAN_ACT,
            help=AGENT_ONLY,
            key="ticket_approve",
            width="stretch",
        ):
            ask_confirmation(
                "approve", action=draft.id, version=draft.version, edited=edited, subject=subject, body=body
            )
        if save.button(
            "Save edit", disabled=not CAN_ACT or not edited, help=AGENT_ONLY, key="ticket_save_edit", width="stretch"
        ):
            act(
                "Edit saved",
                lambda s: edit_draft(s, actor, draft.id, draft.version, subject=subject, body=body),
            )
        with st.popover("Reject…", disabled=not CAN_ACT, help=AGENT_ONLY, width="stretch"):
            reason = st.text_input("Why is this draft wrong?", key=f"reject_reason_{draft.id}")
            if st.button("Reject draft", key="ticket_reject", disabled=not reason.strip()):
                act(
                    "Rejected",
                    lambda s: reject_draft(
                        s, actor, draft.id, draft.version, reason=reason, team=runtime.settings.DEFAULT_TEAM
                    ),
                )

    confirm = st.session_state.get("ticket_confirm")
    if confirm and confirm.get("ticket") == ticket.id:
        with st.container(border=True):
            if confirm["op"] == "approve":
                st.warning(f"Send {'your edited version' if confirm['edited'] else 'this draft'} to {ticket.email}?")
            elif confirm["op"] == "reply":
                extras = "".join(
                    [
                        f", with a copy to {', '.join(confirm['cc'])}" if confirm["cc"] else "",
                        f", attaching {', '.join(file.filename for file in confirm['files'])}"
                        if confirm["files"]
                        else "",
                    ]
                )
                st.warning(f"Send your reply to {ticket.email}{extras}?")
            else:
                st.warning(
                    f"Override the decision with **{glossary.DECISION[confirm['decision']]}** for {ticket.reference}?"
                )
            yes, no = st.columns(2)
            if yes.button(
                "Confirm and send" if confirm["op"] != "override" else "Confirm",
                type="primary",
                key="ticket_confirm_yes",
            ):

                def confirmed(session: Any) -> None:
                    if confirm["op"] == "approve":
                        version = confirm["version"]
                        if confirm["edited"]:
                            version = edit_draft(
                                session,
                                actor,
                                confirm["action"],
                                version,
                                subject=confirm["subject"],
                                body=confirm["body"],
                            ).version
                        approve_draft(session, runtime.settings, actor, confirm["action"], version)
                    elif confirm["op"] == "reply":
                        send_manual_reply(
                            session,
                            runtime.settings,
                            actor,
                            ticket.id,
                            subject=confirm["subject"],
                            body=confirm["body"],
                            cc=", ".join(confirm["cc"]),
                            files=confirm["files"],
                        )
                    else:
                        override_decision(
                            session,
                            runtime.settings,
                            actor,
                            ticket.id,
                            confirm["decision"],
                            reason=confirm["reason"],
                            subject=confirm["subject"],
                            body=confirm["body"],
                            team=confirm["team"],
                            priority=confirm["priority"],
                        )

                act(
                    {"approve": "Sent", "reply": "Reply sent", "override": "Decision overridden"}[confirm["op"]],
                    confirmed,
                )
            if no.button("Cancel", key="ticket_confirm_no"):
                st.session_state.pop("ticket_confirm", None)
                st.rerun()

    st.subheader("Ticket")
    ticket_workspace.assignment(runtime, actor, ticket, act)
    buttons = st.columns(2)
    if buttons[0].button(
        "Take over",
        disabled=not CAN_ACT or ticket.taken_over_by == actor.username,
        help=AGENT_ONLY or "You own the ticket: automation stops, the AI draft stays as your starting point.",
        key="ticket_take_over",
        width="stretch",
    ):
        act("Taken over", lambda s: take_over(s, actor, ticket.id))
    if buttons[1].button(
        "Re-analyse",
        disabled=not CAN_ACT,
        help=AGENT_ONLY or "Hand the ticket back to the engine for a fresh analysis.",
        key="ticket_reanalyse",
        width="stretch",
    ):
        act("Re-analysis requested", lambda s: request_reanalysis(s, actor, ticket.id))
    if buttons[0].button("Mark resolved", disabled=not CAN_ACT, help=AGENT_ONLY, key="ticket_resolve", width="stretch"):
        act("Resolved", lambda s: set_status(s, actor, ticket.id, TicketStatus.RESOLVED, reason="resolved by hand"))
    if buttons[1].button("Close", disabled=not CAN_ACT, help=AGENT_ONLY, key="ticket_close", width="stretch"):
        act("Closed", lambda s: set_status(s, actor, ticket.id, TicketStatus.CLOSED, reason="closed by hand"))

    ticket_workspace.internal_notes(runtime, actor, ticket, act)
    ticket_workspace.merge_link_and_tags(runtime, actor, ticket, act)
    ticket_workspace.requester_tickets(runtime, ticket)

    with st.expander("Assign team or priority"), st.form("ticket_assign"):
        team_choice = st.selectbox(
            "Team", known_teams, index=known_teams.index(ticket.team) if ticket.team in known_teams else 0
        )
        priority_choice = st.selectbox(
            "Priority",
            PRIORITIES,
            index=PRIORITIES.index(ticket.priority) if ticket.priority in PRIORITIES else 2,
            key="ticket_assign_priority",
        )
        if st.form_submit_button("Assign", disabled=not CAN_ACT, help=AGENT_ONLY):
            act("Assigned", lambda s: assign(s, actor, ticket.id, team=team_choice, priority=priority_choice))

    with st.expander("Override the decision"), st.form("ticket_override"):
        decision = st.radio(
            "Decision",
            list(glossary.DECISION),
            format_func=glossary.DECISION.get,
            horizontal=True,
            key=f"override_decision_{ticket.id}",
            disabled=not CAN_ACT,
        )
        override_team = st.selectbox(
            "Team", [KEEP, *known_teams], key=f"override_team_{ticket.id}", disabled=not CAN_ACT
        )
        override_priority = st.selectbox(
            "Priority", [KEEP, *PRIORITIES], key=f"override_priority_{ticket.id}", disabled=not CAN_ACT
        )
        override_subject = st.text_input(
            "Subject (resolve / ask)", key=f"override_subject_{ticket.id}", disabled=not CAN_ACT
        )
        override_body = st.text_area(
            "Message to the customer (resolve / ask)", key=f"override_body_{ticket.id}", disabled=not CAN_ACT
        )
        override_reason = st.text_input(
            "Reason (for the audit log)", key=f"override_reason_{ticket.id}", disabled=not CAN_ACT
        )
        if st.form_submit_button("Override…", disabled=not CAN_ACT, help=AGENT_ONLY):
            ask_confirmation(
                "override",
                decision=decision,
                team=None if override_team == KEEP else override_team,
                priority=None if override_priority == KEEP else override_priority,
                subject=override_subject,
                body=override_body,
                reason=override_reason,
            )
            st.rerun()

    ticket_workspace.canned_reply_picker(runtime, actor, ticket)
    with st.expander("Write a reply", expanded=draft is None and CAN_ACT), st.form("ticket_reply"):
        reply_subject = st.text_input(
            "Subject", value=f"Re: {ticket.subject}"[:200], key=f"reply_subject_{ticket.id}", disabled=not CAN_ACT
        )
        reply_body = st.text_area("Message", key=f"reply_body_{ticket.id}", height=160, disabled=not CAN_ACT)
        reply_cc = st.text_input(
            "CC",
            key=f"reply_cc_{ticket.id}",
            disabled=not CAN_ACT,
            placeholder="colleague@example.com, manager@example.com",
            help=f"People who get a copy of this reply, at most {MAX_CC}, separated by commas.",
        )
        reply_uploads = st.file_uploader(
            "Attach files",
            accept_multiple_files=True,
            key=f"reply_files_{ticket.id}",
            max_upload_size=max(1, runtime.settings.MAX_ATTACHMENT_BYTES // (1024 * 1024)),
            disabled=not CAN_ACT,
            help=f"At most {MAX_FILES} files, together no larger than "
            f"{runtime.settings.MAX_ATTACHMENT_BYTES // (1024 * 1024)} MB.",
        )
        if st.form_submit_button("Send reply…", disabled=not CAN_ACT, help=AGENT_ONLY):
            uploaded = [OutgoingAttachment(u.name, u.type or "", u.getvalue()) for u in reply_uploads or []]
            try:
                copies = cc_addresses(reply_cc, ticket.email, runtime.settings.from_address)
                files = reply_files(uploaded, runtime.settings.MAX_ATTACHMENT_BYTES)
            except ValueError as error:
                st.error(f"Not sent: {error}.")
            else:
                ask_confirmation("reply", subject=reply_subject, body=reply_body, cc=copies, files=files)
                st.rerun()
