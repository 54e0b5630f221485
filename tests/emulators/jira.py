"""Jira emulator: the REST v2/v3 and Service Management paths the `jira` library and the connector call.

Follows Atlassian's references: REST v2 (https://developer.atlassian.com/cloud/jira/platform/rest/v2/,
https://docs.atlassian.com/software/jira/docs/api/REST/) and v3
(https://developer.atlassian.com/cloud/jira/platform/rest/v3/), which differ in bodies: v2 serves
descriptions and comments as wiki markup, v3 as Atlassian Document Format
(https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/).
`GET /rest/api/2/serverInfo` (`deploymentType`), `GET /rest/api/{2,3}/myself` (`accountId` on Cloud,
`name`/`key` on Server, `timeZone`), `GET /rest/api/{2,3}/search` (Server: `startAt`, `total`) and
`/search/jql` (Cloud: `nextPageToken`, `isLast`), with the `comment` field embedded as a first page
(`{comments, startAt, maxResults, total}`) and the rest from `GET /rest/api/{2,3}/issue/{key}/comment`
(paged by `startAt`/`maxResults`); `POST /rest/api/2/issue/{key}/comment` with the `sd.public.comment`
property `{"internal": true}` for an internal note
(the platform API's way of marking a Service Management comment internal, as the `jira` library's
`add_comment(is_internal=True)` sends it);
`POST /rest/servicedeskapi/request/{key}/comment` `{"body", "public"}` ("creates a public or private
(internal) comment on a customer request, with the comment visibility set by public",
https://developer.atlassian.com/cloud/jira/service-desk/rest/api-group-request/; 404 outside a service project);
`GET|POST /rest/api/2/issue/{key}/transitions` with a per-issue workflow (a transition not offered answers
400 as Jira does); statuses with `statusCategory.key` (`new`, `indeterminate`, `done`); attachments as the
`attachment` field's AttachmentMetadata (`id`, `filename`, `size`, `mimeType`, and `content`, "The URL of the
attachment", https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-attachments/): Server
serves the file at `/secure/attachment/{id}/{filename}`, Cloud at `GET /rest/api/{2,3}/attachment/content/{id}`
("Returns the contents of an attachment", same page; its `redirect` parameter is not emulated, the bytes come
straight back). The metadata is only what the server says: `attach()` can state a size that is not the file's,
point `content` at another server, or stream the file chunked without a Content-Length.
Basic auth with e-mail + API token; errors as `{"errorMessages": [...], "errors": {}}`.
JQL support is the subset the connector sends: `updated >= "yyyy/MM/dd HH:mm"` (and `<`), `statusCategory != Done`,
read in the searching user's time zone as Jira reads JQL dates (https://support.atlassian.com/jira-software-cloud/docs/jql-fields/,
Updated), and `ORDER BY updated, key`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.emulators.base import Emulator, Request, Response

UPDATED = re.compile(r'updated (>=|<) "(\d{4})/(\d{2})/(\d{2}) (\d{2}):(\d{2})"')
STAMP = "%Y-%m-%dT%H:%M:%S.000+0000"
WORKFLOW = [
    {"id": "11", "name": "Start Progress"},
    {"id": "21", "name": "Resolve Issue"},
    {"id": "31", "name": "Close Issue"},
]
OPEN = {"name": "Open", "statusCategory": {"key": "new", "name": "To Do"}}
DONE = {"name": "Done", "statusCategory": {"key": "done", "name": "Done"}}
REPORTER = {
    "accountId": "5b10-rita",
    "name": "rita",
    "key": "rita",
    "displayName": "Rita Reporter",
    "emailAddress": "rita@example.com",
}


def errors(status: int, *messages: str) -> Response:
    return Response.json({"errorMessages": list(messages), "errors": {}}, status)


def adf(*paragraphs: str) -> dict[str, Any]:
    """A plain Atlassian document: one paragraph per string."""
    content = [{"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in paragraphs]
    return {"type": "doc", "version": 1, "content": content}


def wiki_of(body: Any) -> str:
    """What v2 serves for a body stored as ADF: its text nodes (mentions by their text), blocks on lines."""
    if isinstance(body, str):
        return body
    parts: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        if node.get("type") == "text":
            parts.append(str(node.get("text", "")))
        elif node.get("type") == "mention":
            parts.append(f"[~accountid:{node.get('attrs', {}).get('id')}]")
        for child in node.get("content") or []:
            walk(child)
        if node.get("type") in ("paragraph", "heading"):
            parts.append("\n")

    walk(body)
    return "".join(parts).strip()


@dataclass
class JiraEmulator(Emulator):
    username: str = "bot@example.com"
    token: str = "jira-token-secret-321"
    deployment: str = "Server"
    time_zone: str = "UTC"
    service_desk: bool = False
    embedded_comments: int = 3
    comment_page: int = 2
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    workflows: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    transitions_done: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    downloads: list[str] = field(default_factory=list)
    chunked: set[str] = field(default_factory=set)
    clock: datetime = field(default_factory=lambda: datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC))

    def __post_init__(self) -> None:
        super().__init__()

    @property
    def me(self) -> dict[str, Any]:
        return {
            "accountId": "5b10-desk-bot",
            "name": "deskbot",
            "key": "deskbot",
            "emailAddress": self.username,
            "displayName": "Desk Bot",
            "timeZone": self.time_zone,
        }

    @property
    def comments(self) -> list[tuple[str, str, str]]:
        """Every comment the integration account wrote: (issue key, text, "public" or "internal")."""
        return [
            (key, str(c["body"]), "public" if c["public"] else "internal")
            for key, notes in self.notes.items()
            for c in notes
            if c["author"]["accountId"] == self.me["accountId"]
        ]

    def stamp(self, seconds: int = 20) -> str:
        self.clock += timedelta(seconds=seconds)
        return self.clock.strftime(STAMP)

    def add_issue(
        self, summary: str, reporter: str | None = "rita@example.com", *, done: bool = False, **fields: Any
    ) -> dict[str, Any]:
        with self.lock:
            key = f"SUP-{len(self.issues) + 1}"
            issue = {
                "id": str(10000 + len(self.issues)),
                "key": key,
                "fields": {
                    "summary": summary,
                    "description": fields.pop("description", summary),
                    "reporter": {**REPORTER, "emailAddress": reporter} if reporter else {"displayName": "Hidden"},
                    "assignee": None,
                    "priority": {"name": "Medium"},
                    "issuetype": {"name": "Service Request"},
                    "status": DONE if done else OPEN,
                    "updated": fields.pop("updated", None) or self.stamp(),
                    "attachment": [],
                    **fields,
                },
            }
            self.issues[key] = issue
            self.notes[key] = []
            return issue

    def add_comment(self, key: str, body: Any, *, by_reporter: bool = True, public: bool = True) -> dict[str, Any]:
        """A comment written in Jira by the reporter (or, `by_reporter=False`, by the integration account)."""
        with self.lock:
            return self._comment(key, body, REPORTER if by_reporter else self.me, public)

    def _comment(self, key: str, body: Any, author: dict[str, Any], public: bool) -> dict[str, Any]:
        stamp = self.stamp()
        comment = {
            "id": str(30000 + sum(len(n) for n in self.notes.values())),
            "author": author,
            "body": body,
            "public": public,
            "created": stamp,
            "updated": stamp,
        }
        self.notes[key].append(comment)
        self.issues[key]["fields"]["updated"] = stamp
        return comment

    def attach(
        self,
        key: str,
        filename: str,
        data: bytes,
        *,
        content: str | None = None,
        size: int | None = None,
        chunked: bool = False,
    ) -> None:
        """A file on an issue; `content` and `size` override what the metadata says (another server's URL, a size
        that is not the file's), `chunked` streams it without a Content-Length."""
        attachment_id = str(20000 + len(self.files))
        self.files[attachment_id] = data
        if chunked:
            self.chunked.add(attachment_id)
        own = (
            f"{self.url}/rest/api/3/attachment/content/{attachment_id}"
            if self.deployment == "Cloud"
            else f"{self.url}/secure/attachment/{attachment_id}/{filename}"
        )
        self.issues[key]["fields"]["attachment"].append(
            {
                "id": attachment_id,
                "filename": filename,
                "size": len(data) if size is None else size,
                "mimeType": "text/plain",
                "content": own if content is None else content,
            }
        )

    def _file(self, attachment_id: str) -> Response:
        self.downloads.append(attachment_id)
        return Response(
            200,
            self.files[attachment_id],
            {"Content-Type": "application/octet-stream"},
            chunked=attachment_id in self.chunked,
        )

    def handle(self, request: Request) -> Response:
        path = request.path
        if re.fullmatch(r"/rest/api/[23]/serverInfo", path):
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
        if match := re.fullmatch(r"/secure/attachment/(\d+)/.+|/rest/api/[23]/attachment/content/(\d+)", path):
            return self._file(match.group(1) or match.group(2))
        if match := re.fullmatch(r"/rest/servicedeskapi/request/([A-Z]+-\d+)/comment", path):
            return self._request_comment(request, match.group(1))
        match = re.fullmatch(r"/rest/api/([23])/(.+)", path)
        if not match:
            return errors(404, f"No resource at {path}")
        version, rest = int(match.group(1)), match.group(2)
        if rest == "field":
            return Response.json([])
        if rest == "myself":
            return Response.json(self.me)
        if rest == "search/approximate-count" and request.method == "POST":
            return self._count(request)
        if rest in ("search", "search/jql"):
            return self._search(request, version, cloud=rest.endswith("/jql"))
        if match := re.fullmatch(r"issue/([A-Z]+-\d+)/(comment|transitions)", rest):
            key, what = match.groups()
            if key not in self.issues:
                return errors(404, "Issue does not exist or you do not have permission to see it.")
            if what == "comment":
                return self._comments(request, key, version)
            return self._transitions(request, key)
        return errors(404, f"No resource at {path}")

    def _comments(self, request: Request, key: str, version: int) -> Response:
        if request.method == "POST":
            if version == 3 and isinstance(request.json()["body"], str):
                return errors(400, "Comment body is not valid!")
            properties = request.json().get("properties") or []
            internal = any(p.get("key") == "sd.public.comment" and p["value"].get("internal") for p in properties)
            with self.lock:
                comment = self._comment(key, request.json()["body"], self.me, not internal)
            return Response.json(self._render(comment, version), 201)
        start = int(request.arg("startAt", "0") or 0)
        limit = min(int(request.arg("maxResults", str(self.comment_page)) or 0), self.comment_page)
        return Response.json(self._comment_page(key, version, start, limit))

    def _comment_page(self, key: str, version: int, start: int, limit: int) -> dict[str, Any]:
        notes = self.notes[key]
        page = [self._render(c, version) for c in notes[start : start + limit]]
        return {"startAt": start, "maxResults": limit, "total": len(notes), "comments": page}

    def _render(self, comment: dict[str, Any], version: int) -> dict[str, Any]:
        body = comment["body"]
        shown = (adf(body) if isinstance(body, str) else body) if version == 3 else wiki_of(body)
        rendered = {key: value for key, value in comment.items() if key not in ("public", "body")}
        rendered["body"] = shown
        if self.service_desk and version == 3:
            rendered["jsdPublic"] = comment["public"]
        return rendered

    def _request_comment(self, request: Request, key: str) -> Response:
        if not self.service_desk or key not in self.issues:
            return Response.json({"errorMessage": "The request could not be found or you cannot see it."}, 404)
        body = request.json()
        with self.lock:
            comment = self._comment(key, str(body["body"]), self.me, bool(body.get("public", True)))
        return Response.json({"id": comment["id"], "body": comment["body"], "public": comment["public"]}, 201)

    def _transitions(self, request: Request, key: str) -> Response:
        offered = self.workflows.get(key, WORKFLOW)
        if request.method == "GET":
            return Response.json({"expand": "transitions", "transitions": offered})
        wanted = str(request.json()["transition"]["id"])
        name = next((t["name"] for t in offered if t["id"] == wanted), None)
        if name is None:
            return errors(400, f"Transition id '{wanted}' is not valid for this issue.")
        with self.lock:
            self.transitions_done.append((key, name))
            self.issues[key]["fields"]["updated"] = self.stamp()
        return Response(204)

    def _matching(self, jql: str) -> list[dict[str, Any]]:
        rows = list(self.issues.values())
        for match in UPDATED.finditer(jql):
            operator, (year, month, day, hour, minute) = match.group(1), (int(g) for g in match.groups()[1:])
            since = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(self.time_zone))
            rows = [
                r
                for r in rows
                if (datetime.strptime(r["fields"]["updated"], "%Y-%m-%dT%H:%M:%S.%f%z") >= since) == (operator == ">=")
            ]
        if "statusCategory != Done" in jql:
            rows = [r for r in rows if r["fields"]["status"]["statusCategory"]["key"] != "done"]
        return rows

    def _count(self, request: Request) -> Response:
        """Cloud's `POST /rest/api/3/search/approximate-count` `{"jql"}` → `{"count"}` ("Provide an estimated count
        of the issues that match the JQL", developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/);
        Server has no such resource."""
        if self.deployment != "Cloud":
            return errors(404, f"No resource at {request.path}")
        return Response.json({"count": len(self._matching(str(request.json().get("jql") or "")))})

    def _search(self, request: Request, version: int, *, cloud: bool) -> Response:
        jql = request.arg("jql", "") or ""
        rows = self._matching(jql)
        rows.sort(key=lambda r: (r["fields"]["updated"], int(r["key"].split("-")[1])))
        rows = [self._issue(row, version) for row in rows]
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

    def _issue(self, row: dict[str, Any], version: int) -> dict[str, Any]:
        fields = dict(row["fields"])
        description = fields["description"]
        fields["description"] = (
            (adf(description) if isinstance(description, str) else description)
            if version == 3
            else wiki_of(description)
        )
        fields["comment"] = self._comment_page(row["key"], version, 0, self.embedded_comments)
        return {**row, "fields": fields}
