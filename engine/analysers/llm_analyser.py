"""The analyser for LLM_PROVIDER=azure|openai: retrieval, then a model's structured decision, then the desk's rules.

With tool calling the model runs as an agent (LangChain 1.x) with the seed's tools (search the knowledge base,
search the web when a web-search connector is configured, propose resolution, request information, escalate) for at most
LLM_AGENT_MAX_ITERATIONS model calls; without it, a fixed chain does the same: queries → evidence → decision.
The decision is a typed field of a pydantic answer, never read out of free text. A failed or malformed answer
is retried once; then the retrieval-only `decide()` answers, with the desk's calibrated confidence model and
customers' corrections as the retrieval analyser has them, and the error is recorded. The model's stated
confidence is calibrated on this desk (engine/analysers/llm_confidence.py), never taken at its word. Escalation
rules, guards and templates are the same as without a model, so every mode is judged by one set of rules.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal

import openai
from langchain.agents import create_agent
from langchain.agents.middleware import ModelCallLimitMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool
from langchain_openai.chat_models.base import BaseChatOpenAI
from pydantic import BaseModel, BeforeValidator, Field, ValidationError, model_validator
from sqlalchemy.orm import Session, sessionmaker

from connectors import base, registry
from engine.analysers.confidence import desk_reading
from engine.analysers.escalation import Criteria, assess, rule_criteria
from engine.analysers.llm import UsageRecorder, build_chat_model, supports_tool_calling, token_budget
from engine.analysers.llm_confidence import ModelCalibration, calibrate, desk_model_calibration
from engine.analysers.prompts import (
    AGENT_TASK,
    DECISION_PROMPT,
    JSON_ONLY,
    QUERIES_PROMPT,
    TOOL_DESCRIPTIONS,
    agent_system_prompt,
    evidence_block,
)
from engine.analysers.retrieval_analyser import (
    citation,
    decide,
    desk_confidence_model,
    escalation_record,
    focus_of,
    query_of,
    retrieval_confidence,
)
from engine.core.analysis import AnalysisResult, Decision, TicketSnapshot
from engine.core.desk_policy import TEAM_ROUTES, DeskPolicy, current_policy
from engine.core.settings import Settings
from engine.core.templates import request_info_email, resolution_email, summary_of
from engine.outcomes.outcome_calibration import AdjustmentCache, Refreshing, adjusted
from engine.trust.decision import Screening, conclude, hand_over, screen_ticket
from engine.trust.guards import fence, redact_personal_data, unsupported_steps
from kb.confidence import DEFAULT_MODEL, ConfidenceModel
from kb.ledger import knowledge_base_empty, knowledge_languages
from kb.search import deterministic_queries, search

log = logging.getLogger(__name__)
MAX_QUERIES = 4
JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)

KbSearch = Callable[[Session, Settings, str, list[str]], list[dict[str, Any]]]
WebSearch = Callable[[Settings, str], list[dict[str, Any]]]


def _unit_interval(value: Any) -> float:
    try:
        return min(1.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return 0.0


def _known_category(value: Any) -> str | None:
    text = str(value or "").strip().lower().replace(" ", "_")
    return text if text in TEAM_ROUTES else None


Confidence = Annotated[float, BeforeValidator(_unit_interval), Field(description="0 to 1")]
Category = Annotated[str | None, BeforeValidator(_known_category), Field(description="a desk category or null")]


class Step(BaseModel):
    text: str = Field(description="One action the customer takes, in the imperative.")
    evidence: list[int] = Field(default_factory=list, description="Numbers of the evidence this step comes from.")


class LlmDecision(BaseModel):
    """The model's analysis of one ticket."""

    decision: Decision = Field(description="resolve, ask or escalate")
    summary: str = Field(description="One sentence: the customer's problem.")
    reason: str = Field(default="", description="Why this decision.")
    category: Category = None
    resolution_steps: list[Step] = Field(default_factory=list, description="For resolve: the steps, each cited.")
    information_gaps: list[str] = Field(default_factory=list, description="What the report lacks.")
    follow_up_questions: list[str] = Field(default_factory=list, description="One question per gap.")
    confidence: Confidence = 0.0
    escalation_criteria: Criteria = Field(default_factory=Criteria)

    @model_validator(mode="after")
    def _complete(self) -> LlmDecision:
        if self.decision == "resolve" and not self.resolution_steps:
            raise ValueError("a resolution needs at least one step")
        if self.decision == "ask" and not self.follow_up_questions:
            raise ValueError("asking needs at least one follow-up question")
        return self


class SearchQueries(BaseModel):
    """Search queries for the knowledge base."""

    queries: list[str] = Field(description="3 short, different search queries.")


class _Judgement(BaseModel):
    summary: str = Field(description="One sentence: the customer's problem.")
    category: Category = None
    confidence: Confidence = 0.0
    escalation_criteria: Criteria = Field(default_factory=Criteria)


class ProposeResolution(_Judgement):
    resolution_steps: list[Step] = Field(min_length=1, description="The steps, each citing its evidence numbers.")


class RequestInformation(_Judgement):
    information_gaps: list[str] = Field(min_length=1)
    follow_up_questions: list[str] = Field(min_length=1, description="One question per gap.")


class Escalate(_Judgement):
    reason: str


FINISHING_TOOLS: dict[str, tuple[Decision, type[_Judgement]]] = {
    "propose_resolution": ("resolve", ProposeResolution),
    "request_information": ("ask", RequestInformation),
    "escalate": ("escalate", Escalate),
}


class MalformedAnswerError(ValueError):
    """The model answered, but not with a valid structured answer."""


class AgentIncompleteError(RuntimeError):
    """The agent used its iterations without proposing, asking or escalating."""


@dataclass
class Run:
    """One ticket's analysis in progress: what was found, what it cost, what went wrong."""

    ticket: TicketSnapshot
    policy: DeskPolicy
    usage: UsageRecorder
    config: RunnableConfig
    ticket_text: str
    adjustments: Mapping[str, float] = field(default_factory=dict)
    """Per-category corrections customers' verdicts earned (engine/outcomes/outcome_calibration.py)."""
    confidence_model: ConfidenceModel = DEFAULT_MODEL
    """The desk's retrieval confidence model (kb/confidence.py): the fallback's, and the bound on the model's."""
    model_calibration: ModelCalibration | None = None
    """The desk's map of the model's stated confidence (engine/analysers/llm_confidence.py); None: capped."""
    evidence: list[dict[str, Any]] = field(default_factory=list)
    kb_error: str | None = None
    kb_languages: frozenset[str] = frozenset()
    errors: list[str] = field(default_factory=list)
    model_down: bool = False


def kb_search(session: Session, settings: Settings, query: str, queries: list[str]) -> list[dict[str, Any]]:
    return [item.model_dump() for item in search(session, settings, query, k=5, queries=queries)]


def web_evidence(searcher: base.WebSearch) -> WebSearch:
    """The top web results of the registry's web-search connector (seed §4.3: SerpAPI) as evidence."""

    def search(_: Settings, query: str) -> list[dict[str, Any]]:
        return [
            {
                "source_kind": "web",
                "source_id": 0,
                "title": result.title,
                "location": result.url,
                "location_data": {"url": result.url},
                "text": result.snippet,
                "fused_score": 0.0,
                "chunk_id": 0,
            }
            for result in searcher.search(query, count=3)
        ]

    return search


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"


def model_unreachable(error: BaseException) -> bool:
    """Transport and service failures the client already retried: trying again now would only add waiting."""
    return isinstance(error, openai.APIConnectionError | openai.APIStatusError) and not isinstance(
        error, openai.BadRequestError | openai.UnprocessableEntityError
    )


def parse_json_answer(text: str, schema: type[BaseModel]) -> BaseModel:
    """The JSON object in a plain-text answer (models without structured output wrap it in prose or fences)."""
    match = JSON_OBJECT.search(text)
    if match is None:
        raise MalformedAnswerError(f"{schema.__name__}: no JSON object in the answer")
    try:
        return schema.model_validate_json(match.group(0))
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, issue['loc'])) or 'answer'}: {issue['msg']}" for issue in error.errors()[:3]
        )
        raise MalformedAnswerError(f"{schema.__name__}: {problems}") from error


class LlmAnalyser:
    """Ask the model, hold it to the evidence and the desk's rules, fall back to retrieval-only when it fails."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        chat_model: BaseChatModel | None = None,
        *,
        name: str | None = None,
        search_kb: KbSearch = kb_search,
        search_web: WebSearch | None = None,
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.model = chat_model if chat_model is not None else build_chat_model(settings)
        self.name = name or settings.LLM_PROVIDER
        self.search_kb = search_kb
        searcher = registry.web_search(settings) if search_web is None else None
        self.search_web = search_web or (web_evidence(searcher) if searcher is not None else None)
        self.budget = token_budget(settings)
        self.uses_agent = supports_tool_calling(self.model, settings)
        self._structured_models: dict[type[BaseModel], Runnable[Any, Any]] = {}
        self.adjustments = AdjustmentCache()
        self.model_calibration = Refreshing(desk_model_calibration)

    @property
    def output_route(self) -> Literal["json_schema", "function_calling", "tools", "prompt"]:
        """How structured answers are obtained: the API's json_schema or function calling, or JSON in the text.

        LLM_TOOL_CALLING says whether the agent may choose among tools; a forced function call is not a choice, and
        is what llama-cpp-python's server needs without the agent (it parses a tool call only when one is forced and
        honours no json_schema response format), so function calling stays whatever LLM_TOOL_CALLING says."""
        if isinstance(self.model, BaseChatOpenAI):
            return self.settings.LLM_STRUCTURED_OUTPUT
        return "tools" if self.uses_agent else "prompt"

    def analyse(self, ticket: TicketSnapshot, policy: DeskPolicy | None = None) -> AnalysisResult:
        began = time.perf_counter()
        usage = UsageRecorder(self.budget, self.settings.LLM_MAX_OUTPUT_TOKENS)
        with self.factory() as session:
            policy = policy or current_policy(session, self.settings)
            has_kb = not knowledge_base_empty(session)
            adjustments = self.adjustments.get(session)
            languages = knowledge_languages(session)
            confidence_model = desk_confidence_model(session)
            model_calibration = self.model_calibration.get(session)
        text = redact_personal_data(ticket.text) if self.settings.LLM_REDACT_PII else ticket.text
        config: RunnableConfig = {"callbacks": [usage], "tags": [ticket.reference]}
        run = Run(
            ticket,
            policy,
            usage,
            config,
            fence(text),
            adjustments,
            confidence_model,
            model_calibration,
            kb_languages=languages,
        )
        screening = screen_ticket(ticket)
        if screening.attacks:
            result = self._hand_over(run, screening)
        else:
            self._gather_evidence(run, has_kb)
            result = self._decide(run)
        if usage.waited_seconds:
            log.info("%s waited %.1f s for the token budget", ticket.reference, usage.waited_seconds)
        return replace(
            result,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd(self.settings),
            latency_ms=round((time.perf_counter() - began) * 1000),
        )

    def _hand_over(self, run: Run, screening: Screening) -> AnalysisResult:
        """A suspected attack is a person's call: the model is not asked, so it never reads the attacker's text."""
        assessment = assess(run.ticket, rule_criteria(run.ticket), run.policy)
        return hand_over(
            self.name,
            screening,
            {"escalation": escalation_record(assessment), "team": assessment.team or run.ticket.team},
        )

    def _gather_evidence(self, run: Run, has_kb: bool) -> None:
        """Queries from the model, then the knowledge base (skipped cheaply when empty), then the web if nothing."""
        if not has_kb and self.search_web is None:
            return
        question = query_of(run.ticket)
        if self.settings.LLM_REDACT_PII:
            question = redact_personal_data(question)
        queries = self._queries(run, question)
        if has_kb:
            try:
                with self.factory() as session:
                    found = self.search_kb(session, self.settings, question, queries)
            except Exception as error:  # the knowledge base being down must not stop the desk
                log.exception("knowledge base search failed", extra={"ticket": run.ticket.reference})
                run.kb_error = f"knowledge base unavailable: {describe(error)}"
                found = []
            self._add_evidence(run, found)
        if not run.evidence and self.search_web is not None:
            self._add_evidence(run, self._web(run, queries[-1]))

    def _queries(self, run: Run, question: str) -> list[str]:
        """Multi-query generation (seed §6.3.1): the question as asked plus the model's rewrites."""
        base = deterministic_queries(question)
        if run.model_down:
            return base
        try:
            answer = self._structured(QUERIES_PROMPT, {"ticket": run.ticket_text}, SearchQueries, run)
        except Exception as error:  # retrieval goes on with the deterministic rewrites
            log.warning("query generation failed for %s: %s", run.ticket.reference, describe(error))
            if model_unreachable(error):
                run.model_down = True
                run.errors.append(describe(error))
            return base
        assert isinstance(answer, SearchQueries)
        queries = [base[0]]
        for query in (query.strip() for query in answer.queries):
            if 3 <= len(query) <= 300 and query.lower() not in {known.lower() for known in queries}:
                queries.append(query)
        return queries[:MAX_QUERIES]

    def _web(self, run: Run, query: str) -> list[dict[str, Any]]:
        assert self.search_web is not None
        try:
            return self.search_web(self.settings, query)
        except Exception as error:  # the web is optional evidence
            log.warning("web search failed for %s: %s", run.ticket.reference, describe(error))
            return []

    def _add_evidence(self, run: Run, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append what is new (not this ticket itself, not already numbered); numbers never change."""
        known = {
            (item["source_kind"], item["source_id"], item.get("chunk_id"), item.get("location"))
            for item in run.evidence
        }
        added = []
        for item in found:
            key = (item["source_kind"], item["source_id"], item.get("chunk_id"), item.get("location"))
            if key in known or (item["source_kind"] == "ticket" and item["source_id"] == run.ticket.id):
                continue
            known.add(key)
            added.append(item)
        run.evidence.extend(added)
        return added

    def _decide(self, run: Run) -> AnalysisResult:
        """The agent (or the chain), once more on failure, then the retrieval-only answer."""
        attempts = [self._run_agent, self._run_chain] if self.uses_agent else [self._run_chain, self._run_chain]
        for attempt in attempts:
            if run.model_down:
                break
            try:
                return self._result(run, attempt(run))
            except Exception as error:  # any model, transport or parsing failure ends in the fallback, never a crash
                log.warning("LLM analysis of %s failed: %s", run.ticket.reference, describe(error))
                run.errors.append(describe(error))
                run.model_down = model_unreachable(error)
        result = decide(
            run.ticket,
            run.evidence,
            run.policy,
            self.settings,
            kb_error=run.kb_error,
            confidence_model=run.confidence_model,
            adjustments=run.adjustments,
            kb_languages=run.kb_languages,
        )
        return replace(result, analyser=f"{self.name} (fallback: retrieval-only)", error="; ".join(run.errors))

    def _values(self, run: Run) -> dict[str, Any]:
        return {
            "reference": run.ticket.reference,
            "source": run.ticket.source,
            "follow_ups": run.ticket.follow_up_count,
            "ticket": run.ticket_text,
            "evidence": evidence_block(run.evidence),
        }

    def _run_chain(self, run: Run) -> LlmDecision:
        answer = self._structured(DECISION_PROMPT, self._values(run), LlmDecision, run)
        assert isinstance(answer, LlmDecision)
        return answer

    def _structured(
        self, prompt: ChatPromptTemplate, values: dict[str, Any], schema: type[BaseModel], run: Run
    ) -> BaseModel:
        """prompt | model with structured output → a validated `schema`, or MalformedAnswerError."""
        if self.output_route == "prompt":
            instructions = JSON_ONLY.format(schema=json.dumps(schema.model_json_schema()))
            reply = (prompt | self.model).invoke({**values, "format_instructions": instructions}, run.config)
            return parse_json_answer(str(reply.content), schema)
        out = (prompt | self._structured_model(schema)).invoke({**values, "format_instructions": ""}, run.config)
        if out.get("parsing_error") is not None:
            raise MalformedAnswerError(f"{schema.__name__}: {describe(out['parsing_error'])}")
        if not isinstance(out.get("parsed"), schema):
            raise MalformedAnswerError(f"{schema.__name__}: the model gave no structured answer")
        return out["parsed"]

    def _structured_model(self, schema: type[BaseModel]) -> Runnable[Any, Any]:
        if schema not in self._structured_models:
            route = self.output_route
            if route in ("json_schema", "function_calling"):
                model = self.model.with_structured_output(schema, method=route, include_raw=True)
            else:
                model = self.model.with_structured_output(schema, include_raw=True)
            self._structured_models[schema] = model
        return self._structured_models[schema]

    def _run_agent(self, run: Run) -> LlmDecision:
        """The seed's agent (§8.1.1): tools for evidence, and three finishing tools that carry the typed decision."""
        outcome: list[LlmDecision] = []
        iterations = self.settings.LLM_AGENT_MAX_ITERATIONS
        agent = create_agent(
            self.model,
            self._tools(run, outcome),
            system_prompt=agent_system_prompt(iterations, self.search_web is not None),
            middleware=[ModelCallLimitMiddleware(run_limit=iterations, exit_behavior="end")],
        )
        task = AGENT_TASK.format(**self._values(run), format_instructions="")
        agent.invoke({"messages": [HumanMessage(task)]}, {**run.config, "recursion_limit": 4 * iterations + 5})
        if not outcome:
            raise AgentIncompleteError(f"the agent ended without a decision within {iterations} model calls")
        return outcome[-1]

    def _tools(self, run: Run, outcome: list[LlmDecision]) -> list[BaseTool]:
        def search_knowledge_base(query: str) -> str:
            start = len(run.evidence) + 1
            with self.factory() as session:
                has_kb = not knowledge_base_empty(session)
                found = self.search_kb(session, self.settings, query, [query]) if has_kb else []
            return evidence_block(self._add_evidence(run, found), start) if found else "Nothing new found."

        def search_web(query: str) -> str:
            start = len(run.evidence) + 1
            added = self._add_evidence(run, self._web(run, query))
            return evidence_block(added, start) if added else "Nothing new found."

        def finishing(name: str) -> BaseTool:
            decision, schema = FINISHING_TOOLS[name]

            def finish(**arguments: Any) -> str:
                fields = schema.model_validate(arguments).model_dump()
                outcome.append(LlmDecision.model_validate({"decision": decision, **fields}))
                return f"Recorded: {decision}."

            return StructuredTool.from_function(
                func=finish, name=name, description=TOOL_DESCRIPTIONS[name], args_schema=schema, return_direct=True
            )

        tools: list[BaseTool] = [
            StructuredTool.from_function(
                func=search_knowledge_base,
                name="search_knowledge_base",
                description=TOOL_DESCRIPTIONS["search_knowledge_base"],
            )
        ]
        if self.search_web is not None:
            tools.append(
                StructuredTool.from_function(
                    func=search_web, name="search_web", description=TOOL_DESCRIPTIONS["search_web"]
                )
            )
        return tools + [finishing(name) for name in FINISHING_TOOLS]

    def _result(self, run: Run, answer: LlmDecision) -> AnalysisResult:
        """The desk's rules on the model's answer: escalation score, drafts from templates, the shared draft review."""
        reading = desk_reading(run.kb_languages, run.evidence, self.settings)
        return conclude(run.ticket, self._draft(run, answer), run.policy, self.settings, reading)

    def _evidence_confidence(self, run: Run, number: int) -> float:
        """The desk's retrieval confidence that passage `number` (the first the model cites) answers the ticket:
        scored as the top of the list, against the passages retrieval ranked above it."""
        if not run.evidence:
            return 0.0
        leaned_on = run.evidence[number - 1]
        ranked = [leaned_on, *(item for item in run.evidence if item is not leaned_on)]
        return retrieval_confidence(ranked, focus_of(run.ticket), run.confidence_model)

    def _draft(self, run: Run, answer: LlmDecision) -> AnalysisResult:
        ticket = run.ticket
        scored = ticket if ticket.category or not answer.category else replace(ticket, category=answer.category)
        assessment = assess(scored, answer.escalation_criteria, run.policy)
        numbers = range(1, len(run.evidence) + 1)
        cited = sorted({n for step in answer.resolution_steps for n in step.evidence if n in numbers})
        calibrated = calibrate(
            answer.confidence, self._evidence_confidence(run, cited[0] if cited else 1), run.model_calibration
        )
        confidence, adjustment = adjusted(calibrated["calibrated"], scored.category, run.adjustments)
        common: dict[str, Any] = {
            "analyser": self.name,
            "confidence": confidence,
            "confidence_adjustment": adjustment,
            "model_confidence": calibrated,
            "summary": answer.summary,
            "category": answer.category,
            "information_gaps": answer.information_gaps,
            "follow_up_questions": answer.follow_up_questions,
            "evidence": [{**item, "number": n, "cited": n in cited} for n, item in enumerate(run.evidence, 1)],
            "escalation": escalation_record(assessment),
            "team": assessment.team or ticket.team,
            "error": run.kb_error,
        }
        if assessment.escalate:
            return AnalysisResult(decision="escalate", reason="; ".join(assessment.reasons), **common)
        if answer.decision == "escalate":
            return AnalysisResult(
                decision="escalate", reason=answer.reason or "the model hands it to a person", **common
            )
        summary = summary_of(ticket.subject, quote_customer=run.policy.quote_customer_summary)
        signature, templates = self.settings.SUPPORT_SIGNATURE, run.policy.templates
        if answer.decision == "ask":
            subject, body = request_info_email(
                ticket.reference,
                ticket.requester_name,
                summary,
                answer.follow_up_questions,
                signature,
                templates,
            )
            reason = f"missing: {', '.join(answer.information_gaps) or 'details'}"
            return AnalysisResult(decision="ask", reason=reason, draft_subject=subject, draft_body=body, **common)
        steps = [step.text for step in answer.resolution_steps]
        guards = unsupported_steps(
            steps,
            [[run.evidence[n - 1]["text"] for n in step.evidence if n in numbers] for step in answer.resolution_steps],
        )
        lines = [
            f"{step.text} [{', '.join(map(str, valid))}]"
            if (valid := [n for n in step.evidence if n in numbers])
            else step.text
            for step in answer.resolution_steps
        ]
        subject, body = resolution_email(
            ticket.reference,
            ticket.requester_name,
            summary,
            lines,
            [f"[{n}] {citation(run.evidence[n - 1])}" for n in cited],
            signature,
            templates,
        )
        reason = f"resolution citing {', '.join(f'[{n}]' for n in cited)}" if cited else "resolution without citations"
        return AnalysisResult(
            decision="resolve",
            reason=reason,
            resolution_steps=steps,
            guards=guards,
            draft_subject=subject,
            draft_body=body,
            **common,
        )
