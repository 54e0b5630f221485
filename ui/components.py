"""Small pieces every page shares: page setup, safe text, formatting, the one-shot notice after an action."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

import streamlit as st

from engine.core.enums import Role
from engine.core.models import utcnow
from engine.operators.permissions import Actor
from kb.titles import FILE_EXTENSION, readable_name
from ui import glossary
from ui.auth import allowed, require_signed_in
from ui.notifications import notification_bell
from ui.runtime import app_runtime

if TYPE_CHECKING:
    from engine.runtime import Runtime

FLASH_KEY = "flash"
_AUTOLINK = re.compile(r"(\\:|www\\.)", re.IGNORECASE)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def page(title: str, min_role: Role = Role.VIEWER) -> tuple[Runtime, Actor]:
    """Configure the page, pass the sign-in gate and open the runtime: the first lines of every page. The gate needs
    only the ticket store, so after a restart the sign-in form does not wait for the analyser and connectors. The
    icon is a Material one: an emoji would load Streamlit's whole emoji catalogue on the first page."""
    st.set_page_config(page_title=f"{title} · No-Touch Support", page_icon=":material/support_agent:", layout="wide")
    actor = require_signed_in(min_role)
    runtime = app_runtime()
    with st.sidebar:
        notification_bell(runtime, actor)
    return runtime, actor


def plain(text: str | None) -> str:
    """User-supplied text made inert for markdown labels: no links (bare URLs included), images, emphasis or maths.

    Escaping alone leaves `https://…` and `www.…` to the autolinker; a zero-width space inside breaks them.
    """
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", (text or "").replace("\n", " "))
    return _AUTOLINK.sub(lambda match: match.group(1) + "\u200b", escaped)


def ago(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    seconds = (utcnow() - moment).total_seconds()
    if seconds < 90:
        return "just now"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


def flash(message: str, kind: str = "success") -> None:
    """Show `message` once, after the rerun that follows an action."""
    st.session_state[FLASH_KEY] = (kind, message)


def show_flash() -> None:
    if entry := st.session_state.pop(FLASH_KEY, None):
        kind, message = entry
        {"success": st.success, "error": st.error, "warning": st.warning}.get(kind, st.info)(message)


def role_hint(actor: Actor, role: Role) -> str | None:
    """The tooltip on a control the operator's role does not allow."""
    return None if allowed(actor, role) else f"Needs the {role.value} role; you are {actor.role.value}."


def page_buttons(columns: list[Any], name: str, page_number: int, pages: int, labels: tuple[str, str]) -> None:
    """Previous / next buttons in the first two columns; the page number lives in session state `{name}_page`."""
    for column, step, label, which in ((columns[0], -1, labels[0], "prev"), (columns[1], 1, labels[1], "next")):
        target = page_number + step
        if column.button(label, disabled=not 1 <= target <= pages, key=f"{name}_{which}"):
            st.session_state[f"{name}_page"] = target
            st.rerun()


HEALTH_COLOUR = {"healthy": "green", "configured": "green", "degraded": "orange", "unhealthy": "red"}


def health_cards(report: dict[str, Any]) -> None:
    """The health check as one card per part (status and its facts in words); the raw report only behind "details"."""
    overall = str(report.get("status", "unknown"))
    st.markdown(f"Overall: :{HEALTH_COLOUR.get(overall, 'gray')}-badge[{overall}] · checked by {report.get('worker')}")
    checks: dict[str, Any] = report.get("checks", {})
    columns = st.columns(3)
    for index, (name, check) in enumerate(checks.items()):
        with columns[index % 3].container(border=True):
            state = str(check.get("status", "")) if isinstance(check, dict) else ""
            badge = f" :{HEALTH_COLOUR.get(state, 'gray')}-badge[{state}]" if state else ""
            st.markdown(f"**{glossary.HEALTH_PART.get(name, glossary.humanise(name))}**{badge}")
            facts = check.items() if isinstance(check, dict) else [("value", check)]
            for key, item in facts:
                if key == "status":
                    continue
                if isinstance(item, list) and item and all(isinstance(part, dict) for part in item):
                    for part in item:  # one line per job or connector: "deliver outbox · working yes; runs 3"
                        title = glossary.humanise(str(part.get("job") or part.get("name") or ""))
                        rest = {k: v for k, v in part.items() if k not in ("job", "name") and v not in (None, "")}
                        st.caption(f"{plain(title)} · {plain(glossary.value(rest))}")
                    continue
                st.caption(f"{glossary.label(str(key))}: {plain(glossary.value(item))}")
    with st.expander("Details (the full report)"):
        st.json(report)


_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")


def article_title(title: str | None, filename: str | None = None) -> str:
    """A knowledge-base article's name for people: its own title, or one made from a file name ("vpn-reset.md"
    reads "Vpn reset"), for titles stored before documents were titled by their headings (kb/titles.py)."""
    name = (title or "").strip() or (filename or "").strip()
    if " " in name and not FILE_EXTENSION.search(name):
        return name
    return readable_name(name)


_LINK = re.compile(r"(?<!!)\[([^\]]*)\]\(([^)]*)\)")
_SCHEME = re.compile(r"\b(https?|ftp|mailto)(:)", re.IGNORECASE)


def held_text(text: str) -> None:
    """Text a person must judge (quarantined passages, cited evidence) rendered as the markdown it was written in
    (tables, bold, lists) but inert: images dropped, links spelled out as text, bare addresses not autolinked."""
    spelled = _LINK.sub(lambda match: f"{match.group(1)} ({match.group(2)})", _IMAGE.sub("", text))
    inert = _SCHEME.sub(lambda match: match.group(1) + "\u200b" + match.group(2), spelled).replace("www.", "www\u200b.")
    st.markdown(inert)


def article_text(text: str) -> None:
    """An article's text rendered as the markdown it was written in, without images (nothing loads from elsewhere);
    markdown never renders raw HTML, so hidden markup stays inert."""
    st.markdown(_IMAGE.sub("", text))


def why_drafts_wait(held: list[tuple[str, int]]) -> None:
    """One line on why drafts wait for a person ("12 below confidence 0.75 · 3 autopilot off for jira")."""
    if held:
        st.caption("Why drafts wait for a person: " + " · ".join(f"{count} {reason}" for reason, count in held))
