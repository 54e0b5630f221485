"""SerpAPI: web search for the agent's SearchWeb tool (the registry's web-search slot), over the shared HTTP client.

SerpAPI takes its key as the `api_key` query parameter; the shared client never puts query strings
in errors or logs, so the key cannot leak through them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated

from pydantic import SecretStr

from connectors.base import ConnectorSettings, Required, WebResult, require_configured, setting_problems
from connectors.http import (
    ConnectorError,
    HttpClient,
    MalformedResponseError,
    breaker_from_settings,
    policy_from_settings,
    verify_setting,
)

NAME = "serpapi"


class SerpApiSettings(ConnectorSettings):
    """SerpAPI web search for the agent's SearchWeb tool."""

    SERPAPI_API_KEY: Annotated[SecretStr, Required()] = SecretStr("")
    SERPAPI_BASE_URL: str = "https://serpapi.com"
    SERPAPI_ENGINE: str = "google"


def configuration_problems(settings: SerpApiSettings) -> list[str]:
    return setting_problems(settings, SerpApiSettings)


def is_configured(settings: SerpApiSettings) -> bool:
    return bool(settings.SERPAPI_API_KEY.get_secret_value())


def ping(settings: SerpApiSettings) -> None:
    """The free account call: proves the key works."""
    SerpApiClient(settings).account()


class SerpApiClient:
    """A `WebSearch` (connectors/base.py) through SerpAPI's search endpoint."""

    name = NAME

    def __init__(self, settings: SerpApiSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        require_configured("SerpAPI", configuration_problems(settings))
        self.key = settings.SERPAPI_API_KEY
        self.engine = settings.SERPAPI_ENGINE
        self.http = HttpClient(
            NAME,
            settings.SERPAPI_BASE_URL,
            policy=policy_from_settings(settings),
            verify=verify_setting(settings),
            sleep=sleep,
            breaker=breaker_from_settings(NAME, settings),
        )

    def search(self, query: str, *, count: int = 5) -> list[WebResult]:
        """The top organic results for `query`; an empty list when the engine found nothing."""
        body = self.http.get_json(
            "search.json",
            params={"engine": self.engine, "q": query, "num": count, "api_key": self.key.get_secret_value()},
        )
        if not isinstance(body, dict):
            raise MalformedResponseError(NAME, "search answer is not a JSON object")
        if body.get("error") and not body.get("organic_results"):
            if "hasn't returned any results" in str(body["error"]):
                return []
            raise ConnectorError(NAME, f"search failed: {str(body['error'])[:200]}")
        results = []
        for entry in body.get("organic_results") or []:
            if isinstance(entry, dict) and entry.get("link"):
                results.append(
                    WebResult(
                        title=str(entry.get("title") or ""),
                        url=str(entry["link"]),
                        snippet=str(entry.get("snippet") or ""),
                        position=int(entry.get("position") or len(results) + 1),
                    )
                )
        return results[:count]

    def account(self) -> dict[str, object]:
        """The account endpoint: a free call that proves the key works."""
        body = self.http.get_json("account.json", params={"api_key": self.key.get_secret_value()})
        if not isinstance(body, dict):
            raise MalformedResponseError(NAME, "account answer is not a JSON object")
        return body
