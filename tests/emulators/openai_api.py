"""OpenAI chat-completions emulator, on both URL shapes: OpenAI-compatible and Azure OpenAI deployments.

Follows the documented shapes (https://platform.openai.com/docs/api-reference/chat/create and
https://learn.microsoft.com/azure/ai-services/openai/reference#chat-completions):
  OpenAI:  POST {base_url}/chat/completions, header `Authorization: Bearer <key>`, body `model`.
  Azure:   POST {endpoint}/openai/deployments/{deployment-id}/chat/completions?api-version=YYYY-MM-DD,
           header `api-key: <key>`; a missing api-version is 404, an unknown deployment 404 DeploymentNotFound.
Request: `messages` [{role, content, tool_calls?, tool_call_id?}], optional `tools`
[{type: "function", function: {name, description, parameters}}], `tool_choice`, `response_format`
({type: "json_schema", json_schema: {name, schema, strict}} or {type: "json_object"}).
Response: {id, object: "chat.completion", created, model, choices: [{index, message: {role: "assistant",
content, tool_calls?: [{id, type: "function", function: {name, arguments: "<JSON string>"}}], refusal},
finish_reason: "stop" | "tool_calls"}], usage: {prompt_tokens, completion_tokens, total_tokens}};
errors are {error: {message, type, code}} with their status (401, 404, 429 + Retry-After, 500).

A test scripts the answers (`script(...)`); with an empty script `responder` answers (the `desk_model` below
plays a competent support model for this project's schemas and tools). `delay` slows every completion down,
for the throughput benchmark; `fail(...)` from the base class scripts faults (429, 500, broken bodies, delays).
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.emulators.base import Emulator, Request, Response

AZURE_PATH = re.compile(r"^/openai/deployments/(?P<deployment>[^/]+)/chat/completions$")
_ids = itertools.count(1)


@dataclass
class Reply:
    """One assistant answer: text, tool calls as (name, arguments), or a raw HTTP response."""

    content: str | None = None
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    raw: Response | None = None


def text(content: str) -> Reply:
    return Reply(content=content)


def tool_call(name: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=[(name, arguments)])


def echo(request: dict[str, Any]) -> Reply:
    return Reply(content="OK")


@dataclass
class OpenAIEmulator(Emulator):
    api_key: str = "sk-test-emulator-123"
    deployments: tuple[str, ...] = ("support-gpt",)
    delay: float = 0.0
    responder: Callable[[dict[str, Any]], Reply] = echo
    script_queue: deque[Reply] = field(default_factory=deque)
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    def script(self, *replies: Reply) -> None:
        with self.lock:
            self.script_queue.extend(replies)

    def handle(self, request: Request) -> Response:
        azure = AZURE_PATH.match(request.path)
        if azure:
            if not request.arg("api-version"):
                return _error(404, "Resource not found", "404")
            if request.headers.get("api-key") != self.api_key:
                return _error(401, "Access denied due to invalid subscription key.", "401")
            if azure.group("deployment") not in self.deployments:
                return _error(404, "The API deployment for this resource does not exist.", "DeploymentNotFound")
        elif request.path == "/v1/chat/completions":
            if request.headers.get("authorization") != f"Bearer {self.api_key}":
                return _error(401, "Incorrect API key provided.", "invalid_api_key")
        else:
            return _error(404, f"Unknown path {request.path}", "not_found")
        body = request.json()
        with self.lock:
            self.bodies.append(body)
            reply = self.script_queue.popleft() if self.script_queue else None
        if self.delay:
            self.stopping.wait(self.delay)
        reply = reply or self.responder(body)
        if reply.raw is not None:
            return reply.raw
        return Response.json(completion(body, reply, azure.group("deployment") if azure else None))


def _error(status: int, message: str, code: str, **headers: str) -> Response:
    return Response.json(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}}, status, **headers
    )


def rate_limited(retry_after: str = "7") -> Response:
    return _error(
        429,
        "Rate limit reached. Please retry after the time given.",
        "rate_limit_exceeded",
        **{"Retry-After": retry_after},
    )


def completion(body: dict[str, Any], reply: Reply, deployment: str | None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{next(_ids)}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for name, args in reply.tool_calls
        ]
    prompt_tokens = len(json.dumps(body.get("messages", []))) // 4
    completion_tokens = max(1, len(json.dumps(message)) // 4)
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": deployment or body.get("model", ""),
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


CRITERIA = {
    "code_change_complexity": 1,
    "new_feature_scope": 0,
    "dev_team_involvement": 1,
    "estimated_hours": 0.5,
    "system_impact": "Low",
    "dependency_complexity": 1,
    "user_provided_info_quality": 7,
}


def desk_decision(body: dict[str, Any]) -> dict[str, Any]:
    """A resolution citing evidence [1] when the prompt has evidence, else a request for details."""
    prompt = json.dumps(body.get("messages", []))
    if "<<<EVIDENCE [1]" in prompt:
        return {
            "decision": "resolve",
            "summary": "The customer needs the documented procedure.",
            "reason": "the knowledge base answers it",
            "category": None,
            "resolution_steps": [{"text": "Follow the steps in the cited article.", "evidence": [1]}],
            "confidence": 0.8,
            "escalation_criteria": CRITERIA,
        }
    return {
        "decision": "ask",
        "summary": "The report lacks details.",
        "reason": "no evidence",
        "information_gaps": ["error"],
        "follow_up_questions": ["What exact error message do you see?"],
        "confidence": 0.6,
        "escalation_criteria": CRITERIA,
    }


def desk_model(body: dict[str, Any]) -> Reply:
    """A competent stand-in model: queries for SearchQueries, a decision for LlmDecision or the agent's tools."""
    schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
    tools = [tool["function"]["name"] for tool in body.get("tools", [])]
    queries = {"queries": ["reset password portal", "account locked sign in", "password change steps"]}
    if schema == "SearchQueries":
        return Reply(content=json.dumps(queries))
    if schema == "LlmDecision":
        return Reply(content=json.dumps(desk_decision(body)))
    if tools == ["SearchQueries"]:
        return Reply(tool_calls=[("SearchQueries", queries)])
    if tools == ["LlmDecision"]:
        return Reply(tool_calls=[("LlmDecision", desk_decision(body))])
    if "propose_resolution" in tools:
        answer = desk_decision(body)
        arguments = {key: value for key, value in answer.items() if key not in ("decision", "reason")}
        return Reply(
            tool_calls=[("propose_resolution" if answer["decision"] == "resolve" else "request_information", arguments)]
        )
    return Reply(content="OK")
