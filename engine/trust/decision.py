"""One decision path for both analysers: what a customer's text may trigger, what a draft may carry, and
whether the draft goes out on its own.

The trust model: every text has an origin. Customer text (subject, body, replies, attachments) is untrusted:
never followed, never sent. Knowledge-base passages are trusted once index-time hygiene passed them (quarantined
chunks never reach an analyser), resolved tickets teach only through what a person wrote or approved, templates
and the signature are ours, and web results are third-party text. An automatic message is built only from
trusted text: `review_draft` checks that no run of the customer's words, and no link, address, phone number or
bank detail that trusted text does not carry (or whose domain is not allowed), is in it. Sensitive intents
(access, payment, vouchers, other people's data, legal, security) are never automatic, whatever a lead sets.
An automatic answer answers everything the ticket asks (`unanswered_requests`): a request no cited passage covers,
or one in a language the knowledge base is not written in, keeps the ticket for a person.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine.core.analysis import AnalysisResult, TicketSnapshot
from engine.core.desk_policy import DeskPolicy
from engine.core.models import Ticket
from engine.core.settings import Settings
from engine.core.templates import TEMPLATES
from engine.trust.content_policy import domain_allowed, outgoing_items
from engine.trust.guards import (
    detect,
    injection_reasons,
    leaked_personal_data,
    sensitive_intent_reasons,
    social_engineering_reasons,
)
from engine.trust.requests import LANGUAGE_NAMES, Request, language_of, requests_of

TRUSTED_KINDS = frozenset({"kb", "ticket", "learned"})
"""Evidence whose text may be sent: KB passages that passed hygiene, resolutions a person wrote or approved, and
learned answers (operator text a person gave, engine/outcomes/learned.py; never the question it answered)."""
PERSON_ONLY = "person_only"
"""A ticket's `additional_info` key holding why it never gets an automatic answer again (a customer said an answer
did not help: engine/outcomes/learned.py sets it)."""
ECHO_WORDS = 6
"""A run of this many of the customer's words in an automatic message means their text is being relayed."""
WORDS = re.compile(r"\w+", re.UNICODE)
SUSPICION_SCORE = 0.6
"""The injection classifier's score from which a draft waits for a person (its operating point for escalation
is higher): on the real IT tickets it holds about 0.6 % more, and it catches role-play jailbreaks the rules miss."""


TRIED = re.compile(
    r"\b(?:i|we|i'?ve|we'?ve|i have|we have)\s+(?:already\s+|also\s+)?(?:tried|opened|restarted|rebooted|reinstalled"
    r"|cleared|reset|followed|re-?entered|removed|re-?added|checked)\b",
    re.IGNORECASE,
)
PERSISTS = re.compile(
    r"\b(?:same (?:error|message|problem|thing|result)|still|(?:comes|came) back|didn'?t (?:help|work|fix)"
    r"|did not (?:help|work|fix)|no luck|nothing (?:changed|happen\w*)|no change|no difference)\b",
    re.IGNORECASE,
)


def tried_in_vain(text: str) -> list[str]:
    """The customer says they already tried something and the problem persists: the article they would get
    may be what they tried, so a person reads the answer before it goes out."""
    if TRIED.search(text) and PERSISTS.search(text):
        return ["the customer already tried something and the problem persists: a person checks the answer"]
    return []


@dataclass(frozen=True)
class Screening:
    """What the customer's own text says about how far automation may go."""

    attacks: list[str]
    """Instructions aimed at the assistant, requests for credentials, verification bypass or payment fraud:
    the ticket goes to a person and no model sees it."""
    sensitive: list[str]
    """Sensitive intents, and problems the customer already tried to fix in vain: a draft may be prepared for a
    person, never sent on its own."""


def screen_ticket(ticket: TicketSnapshot) -> Screening:
    """Guards on everything the customer wrote, the same for every analyser.

    Below the classifier's operating point there is a band where a message reads like instructions to an AI
    without being clearly one: such a ticket may still get a draft, but a person reads it before it goes out.
    """
    text = ticket.text
    attacks = injection_reasons(text) + social_engineering_reasons(text)
    sensitive = sensitive_intent_reasons(text) + tried_in_vain(text)
    score = detect(text).injection_score
    if not attacks and score >= SUSPICION_SCORE:
        sensitive.append(f"possible prompt injection: reads like instructions to an AI (score {score:.2f})")
    return Screening(attacks=attacks, sensitive=sensitive)


def _ngrams(text: str, size: int = ECHO_WORDS) -> set[tuple[str, ...]]:
    words = WORDS.findall(text.lower())
    return {tuple(words[index : index + size]) for index in range(len(words) - size + 1)}


def echoed_customer_text(draft: str, customer_text: str, trusted_texts: list[str]) -> list[str]:
    """Runs of the customer's words in the draft that no trusted text contains: relayed customer text."""
    relayed = _ngrams(draft) & _ngrams(customer_text)
    if relayed:
        relayed -= set().union(*(_ngrams(text) for text in trusted_texts)) if trusted_texts else set()
    if not relayed:
        return []
    sample = " ".join(sorted(relayed)[0])
    return [f"the draft repeats the customer's own words ({sample!r}…)"]


def untrusted_contact_details(
    draft: str, trusted_texts: list[str], allowed_domains: set[str], contact_points: set[str]
) -> list[str]:
    """Links, addresses, phone numbers and bank details an automatic message may not carry: each must come from
    trusted text, links must be http(s) to an allowed domain, and numbers and addresses the desk's contact points."""
    trusted = {item.key for text in trusted_texts for item in outgoing_items(text, allowed_domains)}
    reasons = []
    for item in outgoing_items(draft, allowed_domains, contact_points):
        if item.key not in trusted:
            reasons.append(f"{item.kind} {item.shown!r} does not come from our knowledge base or templates")
        elif item.problem:
            reasons.append(f"{item.kind} {item.shown!r} {item.problem}")
    return sorted(set(reasons))


@dataclass(frozen=True)
class Reading:
    """What the desk can read and answer with, handed in by the analysers (engine.trust sits below kb): the
    languages the knowledge base is written in, and whether a passage answers a request."""

    languages: frozenset[str]
    covers: Callable[[Request, Sequence[str], Sequence[str]], bool]
    """covers(request, cited, others): whether the cited trusted passages answer the request, the other passages
    found beside them being the comparison."""

    @property
    def readable(self) -> frozenset[str]:
        """The languages a request may be in; every one while the knowledge base's are unknown (it is empty)."""
        return self.languages or LANGUAGE_NAMES

    def described(self) -> str:
        return " and ".join(sorted(self.languages))


def language_holds(ticket: TicketSnapshot, reading: Reading) -> list[str]:
    """A ticket written in a language the knowledge base is not in waits for a person, whatever the evidence."""
    language = language_of(ticket.text)
    if language is None or not reading.languages or language in reading.languages:
        return []
    return [f"written in {language}; the knowledge base is in {reading.described()}"]


def unanswered_requests(requests: Sequence[Request], result: AnalysisResult, reading: Reading) -> list[str]:
    """Each of the ticket's `requests` an automatic answer leaves open, quoted: one no cited trusted passage covers,
    one in a language the knowledge base is not written in, one hidden in invisible characters."""
    if result.decision != "resolve" or not result.draft_body:
        return []
    cited = [passage(item) for item in cited_evidence(result) if item.get("source_kind") in TRUSTED_KINDS]
    others = [passage(item) for item in result.evidence if not item.get("cited")]
    reasons = []
    for request in requests:
        if request.language and request.language not in reading.readable:
            reasons.append(f"a request in {request.language} (the knowledge base is in {reading.described()})")
        elif request.hidden:
            reasons.append("a request hidden from view (invisible or encoded characters)")
        elif cited and reading.covers(request, cited, others):
            continue
        else:
            reasons.append("nothing in the cited knowledge answers")
        reasons[-1] += f": {request.quoted}"
    return reasons


def requests_naming_unknown_contacts(requests: Sequence[Request], policy: DeskPolicy, settings: Settings) -> list[str]:
    """Each of `requests` that names a link, address, phone number, bank account or wallet the desk does not know:
    it asks the desk to act on it (call there, send there, pay there, hand an account to it), which no article
    answers."""
    allowed, points = policy.allowed_domain_set(settings), policy.contact_point_set(settings)
    reasons = []
    for request in requests:
        unknown = [
            item.shown
            for item in outgoing_items(request.text, allowed, points)
            if item.kind in ("bank detail", "wallet")
            or (item.kind == "e-mail address" and not domain_allowed(item.key.rsplit("@", 1)[-1], allowed))
            or (item.kind != "e-mail address" and item.problem)
        ]
        if unknown:
            named = ", ".join(dict.fromkeys(unknown[:3]))
            reasons.append(
                f"a request names a contact detail or account the desk does not know ({named}): {request.quoted}"
            )
    return reasons


def passage(item: dict[str, Any]) -> str:
    """An evidence item as a reader meets it: its title, then its text. A learned answer answers the question a
    person answered with it, so the coverage test reads that question too (it is never part of a message)."""
    question = f"{item['question']}\n" if item.get("source_kind") == "learned" and item.get("question") else ""
    return f"{question}{item.get('title', '')}\n{item['text']}"


def cited_evidence(result: AnalysisResult) -> list[dict[str, Any]]:
    return [item for item in result.evidence if item.get("cited")]


def review_draft(ticket: TicketSnapshot, result: AnalysisResult, policy: DeskPolicy, settings: Settings) -> list[str]:
    """Why this draft may not go out on its own (empty: it is built from trusted text only)."""
    if not result.draft_body:
        return []
    draft = f"{result.draft_subject or ''}\n{result.draft_body}"
    cited = cited_evidence(result)
    trusted = [str(item["text"]) for item in cited if item.get("source_kind") in TRUSTED_KINDS]
    templates = [template.template for template in TEMPLATES.values()]
    templates += [*policy.templates.values(), settings.SUPPORT_SIGNATURE]
    reasons = []
    if untrusted := [item for item in cited if item.get("source_kind") not in TRUSTED_KINDS]:
        reasons.append(f"cites {len(untrusted)} source(s) outside our knowledge base (web results)")
    if quarantined := [item for item in cited if item.get("quarantine") and not item.get("approved_by")]:
        reasons.append(f"cites {len(quarantined)} quarantined knowledge-base passage(s)")
    reasons += injection_reasons(*trusted)
    reasons += echoed_customer_text(draft, ticket.text, trusted + templates)
    reasons += untrusted_contact_details(
        draft, trusted + templates, policy.allowed_domain_set(settings), policy.contact_point_set(settings)
    )
    reasons += leaked_personal_data(result.draft_body, [ticket.text, *trusted])
    reasons += injection_reasons(draft)
    return reasons


def conclude(
    ticket: TicketSnapshot, result: AnalysisResult, policy: DeskPolicy, settings: Settings, reading: Reading
) -> AnalysisResult:
    """Both analysers end here: the screening's holds, the language, the requests left unanswered and the draft
    review join the result's guards."""
    screening = screen_ticket(ticket)
    requests = requests_of(ticket.text, reading.readable)  # split once: the language detector reads each sentence
    held = [
        *language_holds(ticket, reading),
        *unanswered_requests(requests, result, reading),
        *requests_naming_unknown_contacts(requests, policy, settings),
    ]
    guards = list(
        dict.fromkeys([*result.guards, *screening.sensitive, *held, *review_draft(ticket, result, policy, settings)])
    )
    return replace(result, guards=guards)


def hand_over(analyser: str, screening: Screening, common: dict[str, Any]) -> AnalysisResult:
    """A suspected attack: escalate with the guards' reasons; nothing is drafted from the attacker's text."""
    reasons = [*screening.attacks, *screening.sensitive]
    return AnalysisResult(
        analyser=analyser, decision="escalate", reason="; ".join(screening.attacks), guards=reasons, **common
    )


@dataclass(frozen=True)
class PolicyVerdict:
    auto_send: bool
    reasons: list[str]


def analysis_holds(decision: str, cited: bool, error: str | None, guards: Sequence[str]) -> list[str]:
    """What holds an analysis's draft for a person at any threshold, for any ticket and autopilot setting; the
    threshold what-if (engine/outcomes/threshold_history.py) replays stored analyses through it."""
    held = ["no evidence cited"] if decision == "resolve" and not cited else []
    if error:
        held.append(f"analysis incomplete: {error}")
    held.extend(f"guard: {guard}" for guard in guards)
    return held


def delivery_verdict(ticket: Ticket, result: AnalysisResult, policy: DeskPolicy) -> PolicyVerdict:
    """Auto-send only when every condition holds; each unmet one is a reason a person sees.

    Guards (attacks, sensitive intents, untrusted content in the draft) hold a draft at any threshold and with
    autopilot on: no setting turns them off.
    """
    held = []
    if not policy.autopilot_on(ticket.source, ticket.category):
        held.append(f"autopilot is off for {ticket.source}/{ticket.category or 'any category'}")
    if ticket.taken_over_by:
        held.append(f"taken over by {ticket.taken_over_by}")
    if result.confidence < policy.auto_send_min_confidence:
        shown = math.floor(result.confidence * 100 + 1e-9) / 100  # 0.749 reads 0.74, never "0.75 below 0.75"
        held.append(f"confidence {shown:.2f} below {policy.auto_send_min_confidence:.2f}")
    held.extend(analysis_holds(result.decision, bool(result.evidence), result.error, result.guards))
    held.extend(f"input: {warning}" for warning in (ticket.additional_info or {}).get("input_warnings", []))
    if reason := (ticket.additional_info or {}).get(PERSON_ONLY):
        held.append(str(reason))
    return PolicyVerdict(auto_send=not held, reasons=held or ["all auto-send conditions met"])
