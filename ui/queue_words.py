"""The queue's sentences: the count line with its new-arrivals notice, and what a bulk or keyboard action is about to
do and did, naming the tickets, so a person confirms what they see and not a number."""

from __future__ import annotations

from typing import Any

from engine.operators.queries import SEARCH_COUNT_CAP
from ui.glossary import plural

NAMED = 5
"""Tickets named one by one in a sentence; the rest are counted."""
VERB = {"approve": "Sent", "assign": "Assigned", "close": "Closed"}


def tickets(ids: list[int]) -> str:
    """ "TCKT-4", "TCKT-4 and TCKT-9", "TCKT-1, TCKT-2, … and 7 more"."""
    ordered = sorted(ids)
    names = [f"TCKT-{ticket}" for ticket in ordered[:NAMED]]
    rest = len(ids) - len(names)
    if rest:
        return ", ".join(names) + f" and {rest:,} more"
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def confirmation_text(confirm: dict[str, Any]) -> str:
    """The question a bulk or keyboard action asks before anything is sent or changed."""
    if confirm["op"] == "approve":
        ids = [int(ticket) for ticket in confirm.get("drafts", {})]
        drafts = "the draft" if len(ids) == 1 else f"the {len(ids):,} drafts"
        whose = "its customer" if len(ids) == 1 else "their customers"
        return f"Send {drafts} on {tickets(ids)} exactly as drafted to {whose}?"
    ids = list(confirm.get("ids", []))
    if confirm["op"] == "assign":
        return (
            f"Set team {confirm.get('team') or '(unchanged)'} and priority {confirm.get('priority') or '(unchanged)'} "
            f"on {tickets(ids)}?"
        )
    return f"Close {tickets(ids)}? Open drafts on {'it' if len(ids) == 1 else 'them'} are voided."


def result_text(op: str, done: list[int], skipped: dict[int, str]) -> str:
    """What a confirmed action did, ticket by ticket."""
    parts = [f"{VERB.get(op, op.capitalize())}: {tickets(done)}" if done else f"{VERB.get(op, op.capitalize())}: none"]
    if skipped:
        parts.append("skipped " + "; ".join(f"TCKT-{ticket}: {why}" for ticket, why in skipped.items()))
    return " · ".join(parts)


def queue_count_line(total: int, page_number: int, pages: int, *, searched: bool = False) -> str:
    """ "120 tickets · page 1 of 3"; a search past its count cap reads "1,000+ tickets · page 1 of 21+"."""
    if searched and total > SEARCH_COUNT_CAP:
        return f"{SEARCH_COUNT_CAP:,}+ tickets · page {page_number:,} of {pages:,}+"
    return f"{plural(total, 'ticket')} · page {page_number:,} of {pages:,}"
