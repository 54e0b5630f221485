"""Jira emulator: the REST API v2 paths the `jira` library calls for search, comments and transitions.

Follows the Jira REST API v2 reference (https://developer.atlassian.com/cloud/jira/platform/rest/v2/
and https://docs.atlassian.com/software/jira/docs/api/REST/): `GET /rest/api/2/serverInfo`
(`versionNumbers`, `deploymentType`), `GET /rest/api/2/search` (Server/Data Center: `jql`, `startAt`,
`maxResults`, `fields` → `{startAt, maxResults, total, issues}`), `GET /rest/api/2/search/jql` (Cloud:
`nextPageToken` → `{issues, nextPageToken, isLast}`), `GET|POST /rest/api/2/issue/{key}/comment`
(`{startAt, maxResults, total, comments}`),
`GET|POST /rest/api/2/issue/{key}/transitions`, `GET /rest/api/2/myself`, attachment content URLs,
Basic auth with e-mail + API token, and errors as `{"errorMessages": [...], "errors": {}}`.
JQL support is the subset the connector sends: `updated >= "yyyy/MM/dd HH:mm"` and `ORDER BY updated, key`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.emulators.base import Emulator, Request, Response

UPDATED = re.compile(r'updated >= "(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2})"')
WORKFLOW = [
    {"id": "11", "name": "Start Progress"},
    {"id": "21", "name": "Resolve Issue"},
    {"id": "31", "name": "Close Issue"},
]


def errors(status: int, *messages: str) -> Response:
    return Response.json({"errorMessages": list(messages), "errors": {}}, status)


@dataclass
class JiraEmulator(Emulator):
    username: str = "bot@example.com"
    token: str = "jira-token-secret-321"
    deployment: str = "Server"
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: list[tuple[str, str]] = field(default_factory=list)
    transitions_done: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    clock: datetime = field(default_factory=lambda: datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC))

    def __post_init__(self) -> None:
        super().__init__()

    def stamp(self, seconds: int = 20) -> str:
        self.clock += timedelta(seconds=seconds)
        return self.clock.strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    def add_issue(self, summary: str, reporter: str | None = "rita@example.com", **fields: Any) -> dict[str, Any]:
        with self.lock:
            key = f"SUP-{len(self.issues) + 1}"
            issue = {
                "id": str(10000 + len(self.issues)),
                "key": key,
                "fields": {
                    "summary": summary,
                    "description": fields.pop("description", summary),
                    "reporter": {"displayName": "Rita Reporter", "emailAddress": reporter}
                    if reporter
                    else {"displayName": "Hidden"},
                    "priority": {"name": "Medium"},
                    "issuetype": {"name": "Service Request"},
                    "status": {"name": "Open"},
                    "updated": fields.pop("updated", None) or self.stamp(),
                    "attachment": [],
                    **fields,
                },
            }
            self.issues[key] = issue
            return issue

    def attach(self, key: str, filename: str, data: bytes) -> None:
        attachment_id = str(20000 + len(self.files))
        self.files[attachment_id] = data
        self.issues[key]["fields"]["attachment"].append(
            {
                "id": attachment_id,
                "filename": filename,
                "size": len(data),
                "mimeType": "text/plain",
                "content": f"{self.url}/secure/attachment/{attachment_id}/{filename}",
            }
        )

    def handle(self, request: Request) -> Response:
        if request.path == "/rest/api/2/serverInfo":
            return Response.json(
                {
                    "baseUrl": self.url,
                    "version": "9.12.0",
                    "versionNumbers": [9, 12, 0],
                    "deploymentType": self.deployment,
                    "serverTitle": "Emulated Jira",
                }
            )
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic ") or base64.b64decode(header[6:]).decode() != f"{self.username}:{self.token}":
            return errors(401, "You are not authenticated. Authentication required to perform this operation.")
        path = request.path
        if path == "/rest/api/2/field":
            return Response.json([])
        if path == "/rest/api/2/myself":
            return Response.json({"emailAddress": self.username, "displayName": "Desk Bot"})
        if path in ("/rest/api/2/search", "/rest/api/2/search/jql"):
            return self._search(request, cloud=path.endswith("/jql"))
        if match := re.fullmatch(r"/secure/attachment/(\d+)/.+", path):
            return Response(200, self.files[match.group(1)], {"Content-Type": "application/octet-stream"})
        if match := re.fullmatch(r"/rest/api/2/issue/([A-Z]+-\d+)/(comment|transitions)", path):
            key, what = match.groups()
            if key not in self.issues:
                return errors(404, "Issue does not exist or you do not have permission to see it.")
            if what == "comment" and request.method == "POST":
                self.comments.append((key, request.json()["body"]))
                return Response.json({"id": str(len(self.comments)), "body": request.json()["body"]}, 201)
            if what == "comment" and request.method == "GET":
                mine = [
                    {"id": str(n), "self": f"{self.url}/rest/api/2/issue/{key}/comment/{n}", "body": body}
                    for n, (issue, body) in enumerate(self.comments, start=1)
                    if issue == key
                ]
                return Response.json({"startAt": 0, "maxResults": 5000, "total": len(mine), "comments": mine})
            if what == "transitions" and request.method == "GET":
                return Response.json({"expand": "transitions", "transitions": WORKFLOW})
            if what == "transitions" and request.method == "POST":
                wanted = str(request.json()["transition"]["id"])
                name = next((t["name"] for t in WORKFLOW if t["id"] == wanted), None)
                if name is None:
                    return errors(400, f"Transition id '{wanted}' is not valid for this issue.")
                self.transitions_done.append((key, name))
                self.issues[key]["fields"]["updated"] = self.stamp()
                return Response(204)
        return errors(404, f"No resource at {path}")

    def _search(self, request: Request, *, cloud: bool) -> Response:
        jql = request.arg("jql", "") or ""
        rows = list(self.issues.values())
        if match := UPDATED.search(jql):
            year, month, day, hour, minute = (int(g) for g in match.groups())
            since = datetime(year, month, day, hour, minute, tzinfo=UTC)
            rows = [r for r in rows if datetime.strptime(r["fields"]["updated"], "%Y-%m-%dT%H:%M:%S.%f%z") >= since]
        rows.sort(key=lambda r: (r["fields"]["updated"], int(r["key"].split("-")[1])))
        limit = int(request.arg("maxResults", "50") or 50)
        if cloud:
            start = int(request.arg("nextPageToken", "0") or 0)
            page = rows[start : start + limit]
            more = start + limit < len(rows)
            body: dict[str, Any] = {"issues": page, "isLast": not more}
            if more:
                body["nextPageToken"] = str(start + limit)
            return Response.json(body)
        start = int(request.arg("startAt", "0") or 0)
        return Response.json(
            {"startAt": start, "maxResults": limit, "total": len(rows), "issues": rows[start : start + limit]}
        )
