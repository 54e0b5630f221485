"""The desk's policy (autopilot, thresholds, escalation weights, templates), connectors, engine jobs and operators.

Everyone signed in may read; leads change the policy; admins test connectors and manage operators. Each save
is a new policy version in the audit log.
"""

from string import Template

import pandas as pd
import streamlit as st
from pydantic import ValidationError

from engine.analysers.routing import routing_summary
from engine.connector_status import connector_names
from engine.core.db import transaction
from engine.core.desk_policy import SEED_WEIGHTS, DeskPolicy, current_policy
from engine.core.enums import Role
from engine.core.templates import SAMPLE_VALUES, TEMPLATES
from engine.operators.actions import change_policy
from engine.operators.auth import (
    OperatorError,
    create_operator,
    lift_sign_in_delay,
    list_operators,
    sign_in_wait_seconds,
    update_operator,
)
from engine.operators.permissions import PermissionDeniedError
from engine.operators.queries import categories, job_statuses, policy_history, sources
from ui import glossary
from ui.auth import allowed, sessions_panel
from ui.components import flash, page, plain, role_hint, show_flash
from ui.connectors import connector_cards, connector_variables, test_connection
from ui.routing import routing_panel
from ui.tables import edit_table, in_words, show_table

runtime, actor = page("Settings")
IS_LEAD, IS_ADMIN = allowed(actor, Role.LEAD), allowed(actor, Role.ADMIN)
SAMPLE = {**SAMPLE_VALUES, "signature": runtime.settings.SUPPORT_SIGNATURE}

st.title("Settings")
show_flash()
with runtime.factory() as session:
    policy = current_policy(session, runtime.settings)
    history = policy_history(session)
    known_sources = sources(session)
    known_categories = categories(session)
    jobs = job_statuses(session)

policy_tab, templates_tab, connectors_tab, operators_tab = st.tabs(
    ["Policy", "E-mail templates", "Connectors & engine", "Operators"], key="settings_tab", on_change="rerun"
)


def entries(text: str) -> list[str]:
    """The non-empty lines of a one-per-line text area."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def save(new_policy: dict[str, object], what: str, warning: str = "") -> None:
    try:
        validated = DeskPolicy.model_validate({**policy.model_dump(), **new_policy})
        with transaction(runtime.factory) as session:
            version = change_policy(session, actor, validated, previous=policy)
    except ValidationError as error:
        st.error("Not saved: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()))
        return
    except PermissionDeniedError as error:
        st.error(f"Refused: {error}")
        return
    flash(
        f"{what} saved as policy version {version}." + (f" {warning}" if warning else ""),
        "warning" if warning else "success",
    )
    st.rerun()


with policy_tab:
    if not IS_LEAD:
        st.info(f"Changing the policy needs the lead role; you are {actor.role.value}.")
    if history:
        st.caption(
            f"Version {history[0]['version']} by {history[0]['changed by']} · {history[0]['when']:%Y-%m-%d %H:%M}"
        )
    else:
        st.caption("The server's defaults: no one has saved a policy yet.")
    with st.form("policy_form"):
        st.markdown(
            "**Autopilot**: which messages may go out without a person, by source and category (`*` = any). "
            "Add a row with the + under the table; categories are the ones tickets have had so far."
        )
        switches = pd.DataFrame(
            [
                {"source": key.split(":", 1)[0], "category": key.split(":", 1)[1], "autopilot": on}
                for key, on in policy.autopilot.items()
            ],
            columns=["source", "category", "autopilot"],
        )
        edited = edit_table(
            switches,
            num_rows="dynamic",
            hide_index=True,
            width="stretch",
            key="policy_autopilot",
            column_config={
                "source": st.column_config.SelectboxColumn("source", options=["*", *known_sources], required=True),
                "category": st.column_config.SelectboxColumn(
                    "category",
                    options=sorted({"*", *known_categories, *(key.split(":", 1)[1] for key in policy.autopilot)}),
                    required=True,
                    default="*",
                ),
                "autopilot": st.column_config.CheckboxColumn("autopilot", default=False),
            },
            disabled=not IS_LEAD,
        )
        columns = st.columns(3)
        confidence = columns[0].slider(
            "Auto-send minimum confidence",
            0.0,
            1.0,
            float(policy.auto_send_min_confidence),
            0.01,
            key="policy_confidence",
            disabled=not IS_LEAD,
        )
        threshold = columns[1].slider(
            "Escalation threshold",
            0.0,
            100.0,
            float(policy.escalation_threshold),
            1.0,
            key="policy_threshold",
            disabled=not IS_LEAD,
        )
        follow_ups = columns[2].number_input(
            "Follow-up questions before escalating",
            0,
            20,
            int(policy.follow_up_limit),
            key="policy_follow_ups",
            disabled=not IS_LEAD,
        )
        st.markdown("**Escalation weights**: how much each criterion counts towards the score.")
        weight_columns = st.columns(3)
        weights = {
            name: weight_columns[index % 3].number_input(
                glossary.criterion(name),
                0.0,
                1.0,
                float(policy.escalation_weights.get(name, SEED_WEIGHTS[name])),
                0.05,
                key=f"policy_weight_{name}",
                disabled=not IS_LEAD,
            )
            for index, name in enumerate(SEED_WEIGHTS)
        }
        total_weight = sum(weights.values())
        st.caption(
            f"Weights add up to {total_weight:.2f}" + ("" if abs(total_weight - 1) < 1e-6 else " (usually 1.00)")
        )
        st.markdown("**What an automatic message may contain**")
        st.caption(
            "Automatic messages are built only from the knowledge base, approved resolutions and your templates, "
            "never from what a customer wrote. Links and e-mail addresses in them must point at the desk's own "
            f"domains ({', '.join(sorted(runtime.settings.own_domains())) or 'none configured'}) or at one listed "
            "here. Always held for a person, whatever is set on this page: suspected attacks, access changes "
            "(passwords, MFA, phone numbers, privileges), payment or bank-detail changes, gift cards, vouchers and "
            "crypto, requests for other people's data, legal threats and security incidents."
        )
        domains_text = st.text_area(
            "Other allowed domains (one per line; subdomains included)",
            "\n".join(policy.allowed_domains),
            key="policy_allowed_domains",
            disabled=not IS_LEAD,
        )
        st.caption(
            "Phone numbers and e-mail addresses go out on their own only when they are the desk's own contact points "
            "(always: "
            + (", ".join(sorted(DeskPolicy().contact_point_set(runtime.settings))) or "none")
            + "); a knowledge-base passage with any other one waits in quarantine until a lead approves it."
        )
        contacts_text = st.text_area(
            "Other contact points (one per line: phone numbers with their country code, e-mail addresses)",
            "\n".join(policy.contact_points),
            key="policy_contact_points",
            disabled=not IS_LEAD,
        )
        quote_summary = st.checkbox(
            "Name the customer's subject in drafts (a few words, without links, addresses or digits); a draft that "
            "quotes it always waits for a person's approval, and acknowledgements never quote it",
            value=policy.quote_customer_summary,
            key="policy_quote_summary",
            disabled=not IS_LEAD,
        )
        if st.form_submit_button("Save policy", type="primary", disabled=not IS_LEAD, help=role_hint(actor, Role.LEAD)):
            rows = edited.dropna(subset=["source"]).to_dict("records")
            unknown = sorted(
                {str(r["category"]).strip().lower() for r in rows}
                - {"*", "", *known_categories, *(key.split(":", 1)[1] for key in policy.autopilot)}
            )
            save(
                {
                    "autopilot": {
                        f"{r['source']}:{str(r['category'] or '*').strip().lower()}": bool(r["autopilot"]) for r in rows
                    },
                    "auto_send_min_confidence": confidence,
                    "escalation_threshold": threshold,
                    "follow_up_limit": int(follow_ups),
                    "escalation_weights": weights,
                    "allowed_domains": entries(domains_text),
                    "contact_points": entries(contacts_text),
                    "quote_customer_summary": quote_summary,
                },
                "Policy",
                f"No ticket has had the category {', '.join(unknown)} yet: its switch applies only once one does."
                if unknown
                else "",
            )
    with st.form("durable_floor_form"):
        st.markdown(
            "**Durable floor**: when fewer of a category's automatic answers stay solved (not re-opened within "
            f"{runtime.settings.OUTCOME_DURABLE_DAYS:g} days) than this share, the engine switches that category's "
            "autopilot off and tells the leads on the Home page (`*` = every category)."
        )
        floors = edit_table(
            pd.DataFrame(
                [{"category": category, "floor": share} for category, share in policy.durable_floor.items()],
                columns=["category", "floor"],
            ),
            num_rows="dynamic",
            hide_index=True,
            width="stretch",
            key="policy_durable_floor",
            column_config={
                "category": st.column_config.TextColumn("category", required=True, default="*"),
                "floor": st.column_config.NumberColumn("floor", min_value=0.0, max_value=1.0, step=0.05, default=0.8),
            },
            disabled=not IS_LEAD,
        )
        judged_after = st.number_input(
            "Judge a category after this many durable or re-opened automatic answers",
            1,
            10_000,
            int(policy.durable_floor_min_resolutions),
            key="policy_floor_min",
            disabled=not IS_LEAD,
        )
        if st.form_submit_button("Save floor", disabled=not IS_LEAD, help=role_hint(actor, Role.LEAD)):
            rows = floors.dropna().to_dict("records")
            save(
                {
                    "durable_floor": {str(r["category"]).strip() or "*": float(r["floor"]) for r in rows},
                    "durable_floor_min_resolutions": int(judged_after),
                },
                "Durable floor",
            )
    with runtime.factory() as session:
        routing_panel(
            routing_summary(session),
            target=runtime.settings.ROUTING_TARGET_PRECISION,
            minimum_history=runtime.settings.ROUTING_MIN_HISTORY,
        )
    if history:
        with st.expander("Policy history"):
            show_table(pd.DataFrame(history), hide_index=True, width="stretch")

with templates_tab:
    st.caption(
        "Placeholders: $name, $reference, $summary, $signature; $steps and $sources (resolution); "
        "$questions (request for information)."
    )
    kind = st.selectbox("Template", list(TEMPLATES), format_func=glossary.template, key="template_kind")
    text = st.text_area(
        "Text",
        value=policy.templates.get(kind, TEMPLATES[kind].template),
        height=260,
        key=f"template_text_{kind}",
        disabled=not IS_LEAD,
    )
    st.markdown("**Preview** with a sample ticket")
    try:
        preview = Template(text).substitute(SAMPLE)
    except (KeyError, ValueError) as error:
        st.error(f"The template has an unknown or malformed placeholder: {error}")
        preview = None
    if preview is not None:
        with st.container(border=True):
            st.text(preview)
    if st.button(
        "Save template",
        type="primary",
        disabled=not IS_LEAD or preview is None,
        help=role_hint(actor, Role.LEAD),
        key="template_save",
    ):
        save({"templates": {**policy.templates, kind: text}}, f"Template “{glossary.template(kind)}”")

with connectors_tab:
    st.subheader("Connectors")
    connector_cards(runtime, columns=3, actor=actor)
    if IS_ADMIN:
        with st.expander("Server configuration behind each connector (for the administrator; values never shown)"):
            show_table(pd.DataFrame(connector_variables(runtime)), hide_index=True, width="stretch")
    names = connector_names()
    if names:
        pick, test = st.columns([3, 1])
        name = pick.selectbox(
            "Connector", names, format_func=glossary.connector, key="connector_pick", label_visibility="collapsed"
        )
        if test.button(
            "Test connection", disabled=not IS_ADMIN, help=role_hint(actor, Role.ADMIN), key="connector_test"
        ):
            st.session_state["connector_test_result"] = test_connection(name, runtime)
        if result := st.session_state.get("connector_test_result"):
            worked, sentence = result
            (st.success if worked else st.error)(sentence)
    st.subheader("Engine jobs")
    if jobs:
        table = pd.DataFrame(jobs)
        table["job"] = table["job"].map(glossary.humanise)
        table["ok"] = table["ok"].map(lambda ok: "✓ ok" if ok else "✗ failed")
        show_table(
            table[["job", "worker", "ok", "last run", "runs", "failures", "last error"]].fillna(""),
            hide_index=True,
            width="stretch",
        )
        with st.expander("details (each job's last result)"):
            for job in jobs:
                st.caption(
                    f"{glossary.humanise(job['job'])} · {job['worker']}: {plain(glossary.value(job['last result']))}"
                )
    else:
        st.caption("No engine job has run yet.")

with operators_tab:
    if not IS_ADMIN:
        st.info(f"Managing operators needs the admin role; you are {actor.role.value}.")
    else:
        with runtime.factory() as session:
            operators = list_operators(session)
            waits = {o.username: sign_in_wait_seconds(session, runtime.settings, o.username) for o in operators}
        show_table(
            pd.DataFrame(
                [
                    {
                        "username": o.username,
                        "name": o.display_name,
                        "e-mail": o.email or "",
                        "role": o.role,
                        "active": o.is_active,
                        "sign-in": "password" if o.password_hash else "SSO only",
                        "sign-in delay (s)": waits[o.username],
                        "last sign-in": o.last_login_at,
                    }
                    for o in operators
                ]
            ).pipe(in_words),
            hide_index=True,
            width="stretch",
        )
        roles = [role.value for role in Role]
        add, change = st.columns(2)
        with add.form("operator_add", clear_on_submit=True):
            st.markdown("**Add an operator**")
            username = st.text_input("Username", key="operator_new_username")
            display_name = st.text_input("Name", key="operator_new_name")
            email = st.text_input("E-mail (for SSO)", key="operator_new_email")
            role = st.selectbox("Role", roles, key="operator_new_role")
            password = st.text_input("Password (empty: SSO only)", type="password", key="operator_new_password")
            if st.form_submit_button("Add operator", type="primary"):
                try:
                    with transaction(runtime.factory) as session:
                        create_operator(
                            session,
                            actor,
                            username,
                            Role(role),
                            password=password or None,
                            display_name=display_name,
                            email=email or None,
                        )
                except (OperatorError, PermissionDeniedError) as error:
                    st.error(f"Not added: {error}")
                else:
                    flash(f"{username} added as {role}.")
                    st.rerun()
        change.markdown("**Change an operator**")
        who = change.selectbox("Operator", [o.username for o in operators], key="operator_pick")
        current = next((o for o in operators if o.username == who), None)
        with change.form("operator_change"):
            new_role = st.selectbox(
                "Role", roles, index=roles.index(current.role) if current else 0, key=f"operator_role_{who}"
            )
            active = st.checkbox("Active", value=bool(current and current.is_active), key=f"operator_active_{who}")
            new_password = st.text_input("New password (optional)", type="password", key="operator_password")
            unlock = st.checkbox("Clear failed sign-ins (no wait before the next attempt)", key="operator_unlock")
            if st.form_submit_button("Save changes"):
                try:
                    with transaction(runtime.factory) as session:
                        update_operator(
                            session, actor, who, role=Role(new_role), active=active, password=new_password or None
                        )
                        if unlock:
                            lift_sign_in_delay(session, runtime.settings, actor, who)
                except (OperatorError, PermissionDeniedError, LookupError) as error:
                    st.error(f"Not changed: {error}")
                else:
                    flash(f"{who} updated.")
                    st.rerun()
        if who:
            sessions_panel(runtime, actor, who, change)
