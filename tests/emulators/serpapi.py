"""SerpAPI emulator: `GET /search.json` and `GET /account.json` with the key in `api_key`.

Follows https://serpapi.com/search-api (engine, q, num, api_key; `organic_results` with position, title,
link, snippet; `{"error": "Invalid API key. Your API key should be here: ..."}` with 401;
`{"error": "Google hasn't returned any results for this query."}` for an empty search) and
https://serpapi.com/account-api.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.emulators.base import Emulator, Request, Response


@dataclass
class SerpApiEmulator(Emulator):
    api_key: str = "serp-secret-key-42"

    def __post_init__(self) -> None:
        super().__init__()

    def handle(self, request: Request) -> Response:
        if request.arg("api_key") != self.api_key:
            return Response.json(
                {"error": "Invalid API key. Your API key should be here: https://serpapi.com/manage-api-key"}, 401
            )
        if request.path == "/account.json":
            return Response.json({"account_email": "desk@example.com", "plan_searches_left": 100})
        if request.path != "/search.json":
            return Response.json({"error": "Unsupported path"}, 404)
        query = request.arg("q", "") or ""
        if "nothing" in query:
            return Response.json(
                {
                    "search_metadata": {"status": "Success"},
                    "error": "Google hasn't returned any results for this query.",
                }
            )
        num = int(request.arg("num", "10") or 10)
        return Response.json(
            {
                "search_metadata": {"status": "Success"},
                "search_parameters": {"engine": request.arg("engine"), "q": query},
                "organic_results": [
                    {
                        "position": n,
                        "title": f"{query} — result {n}",
                        "link": f"https://example.com/{n}",
                        "snippet": f"How to fix {query}, step {n}",
                    }
                    for n in range(1, num + 1)
                ],
            }
        )
