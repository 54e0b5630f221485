"""ServiceNow emulator: Table API (`/api/now/table/{table}`) and Attachment API (`/api/now/attachment`).

Follows the ServiceNow REST API reference: Table API
(https://docs.servicenow.com/bundle/kingston-application-development/page/integrate/inbound-rest/concept/c_TableAPI.html:
`sysparm_query` encoded queries with `^`, `^NQ`, `ORDERBY`/`ORDERBYDESC`, `IN`, `NOT IN` (the encoded forms of
the condition operators, docs.servicenow.com "Operators available for filters and queries"); `sysparm_limit`,
`sysparm_offset`, `sysparm_fields`, `sysparm_exclude_reference_link`; `{"result": ...}` bodies;
`X-Total-Count` and a `Link` header with first/prev/next/last; PATCH merges fields and appends
`work_notes`/`comments` to the journal, which reads back as table `sys_journal_field` with `element_id`,
`element`, `name` and `value`), Attachment API
(https://www.servicenow.com/docs/r/zurich/api-reference/rest-apis/c_AttachmentAPI.html: metadata list,
`/{sys_id}/file` download) and its error shape `{"error": {"message", "detail"}, "status": "failure"}`
with Basic authentication.

Behaviours of real instances, each switchable:
- `restricted`: tables the integration user may not read. The Table API requires "sufficient roles to access
  the data in the table" (docs.servicenow.com "Table API"); an ACL refusal answers 403 "User Not Authorized",
  and an instance that hides the table answers 404 "Invalid table". The Attachment API reads sys_attachment
  (docs.servicenow.com "Attachment API", role requirements), so restricting it refuses the attachment list.
- `honours_nq=False`: `^NQ` (the encoded-query OR) is read as `^` (AND), as an instance that does not
  support it behaves: keyset pages after the first come back empty while `X-Total-Count` (the number of
  records the query matches, sent with every Table API list) and `sysparm_offset` paging still work.
- `requires_close_info`: a data policy refusing Resolved/Closed without `close_code` and `close_notes`
  (403 "Operation Failed", as instances enforcing close information answer).
- `add_comment`: a caller's customer-visible portal comment, a `comments` entry in sys_journal_field with
  `sys_created_by` the author's user_name and `sys_created_on`.
- A least-privilege integration user: `restricted={"sys_journal_field": 403}`, the ACL refusal a user without
  a read ACL on the table gets ("Access control list rules": a user must pass a table's read ACL to read its
  records, docs.servicenow.com). The record's own journal fields stay readable: with `sysparm_display_value=true`
  ("Return field display values", Table API) `comments`/`work_notes` read as every entry, newest first,
  "<time> - <author's name> (Additional comments)", then the text.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from tests.emulators.base import Emulator, Request, Response

CONDITION = re.compile(r"^([a-z_.]+?)(>=|<=|!=|>|<|=|NOT IN|IN|STARTSWITH|LIKE)(.*)$")


def failure(status: int, message: str, detail: str = "") -> Response:
    return Response.json({"error": {"message": message, "detail": detail}, "status": "failure"}, status)


@dataclass
class ServiceNowEmulator(Emulator):
    username: str = "integration"
    password: str = "snow-secret-123"
    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    attachments: dict[str, dict[str, Any]] = field(default_factory=dict)
    chunked: set[str] = field(default_factory=set)
    downloads: list[str] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    journal: list[dict[str, str]] = field(default_factory=list)
    restricted: dict[str, int] = field(default_factory=dict)
    honours_nq: bool = True
    requires_close_info: bool = False
    clock: datetime = field(default_factory=lambda: datetime(2025, 3, 1, 8, 0, 0, tzinfo=UTC))

    def __post_init__(self) -> None:
        super().__init__()

    def tick(self, seconds: int = 1) -> str:
        with self.lock:
            self.clock += timedelta(seconds=seconds)
            return self.clock.strftime("%Y-%m-%d %H:%M:%S")

    def add_user(self, email: str | None, name: str = "Sample User") -> str:
        sys_id = uuid.uuid4().hex
        user_name = (email or sys_id).split("@")[0]
        self.tables.setdefault("sys_user", {})[sys_id] = {
            "sys_id": sys_id,
            "email": email or "",
            "name": name,
            "user_name": user_name,
        }
        return sys_id

    def add_group(self, name: str) -> dict[str, str]:
        """An assignment group (sys_user_group), as a record's `assignment_group` reference field holds it."""
        sys_id = uuid.uuid4().hex
        self.tables.setdefault("sys_user_group", {})[sys_id] = {"sys_id": sys_id, "name": name}
        return {"link": f"/api/now/table/sys_user_group/{sys_id}", "value": sys_id}

    def add_comment(self, incident: dict[str, Any], author: str, text: str, *, table: str = "incident") -> None:
        """A caller's comment through the portal, by user sys_id."""
        user_name = self.tables["sys_user"][author]["user_name"]
        with self.lock:
            self._journal(table, incident, "comments", text, user_name)
            incident["sys_updated_on"] = self.tick()

    def add_incident(
        self,
        short_description: str,
        *,
        caller: str | None = None,
        updated: str | None = None,
        table: str = "incident",
        **fields: Any,
    ) -> dict[str, Any]:
        with self.lock:
            incidents = self.tables.setdefault(table, {})
            sys_id = fields.pop("sys_id", None) or uuid.uuid4().hex
            stamp = updated or self.tick()
            record = {
                "sys_id": sys_id,
                "number": f"INC{len(incidents) + 10001:07d}",
                "short_description": short_description,
                "description": fields.pop("description", short_description),
                "caller_id": {"link": f"/api/now/table/sys_user/{caller}", "value": caller} if caller else "",
                "priority": "3",
                "category": "inquiry",
                "state": "1",
                "assignment_group": "",
                "sys_created_on": stamp,
                "sys_updated_on": stamp,
                **fields,
            }
            incidents[sys_id] = record
            return record

    def attach(
        self,
        table: str,
        sys_id: str,
        filename: str,
        data: bytes,
        content_type: str = "text/plain",
        *,
        size: int | None = None,
        chunked: bool = False,
    ) -> None:
        """A file on a record; `size` overrides the metadata's `size_bytes` (which is only what the instance says),
        `chunked` streams the download without a Content-Length."""
        attachment_id = uuid.uuid4().hex
        if chunked:
            self.chunked.add(attachment_id)
        self.attachments[attachment_id] = {
            "sys_id": attachment_id,
            "file_name": filename,
            "content_type": content_type,
            "size_bytes": str(len(data) if size is None else size),
            "table_name": table,
            "table_sys_id": sys_id,
            "download_link": f"/api/now/attachment/{attachment_id}/file",
        }
        self.files[attachment_id] = data

    def handle(self, request: Request) -> Response:
        if not self._authorised(request):
            return failure(401, "User Not Authenticated", "Required to provide Auth information")
        parts = request.path.strip("/").split("/")
        table = parts[3] if parts[:3] == ["api", "now", "table"] and len(parts) > 3 else "sys_attachment"
        if table in self.restricted and request.method == "GET":
            if self.restricted[table] == 404:
                return failure(404, "Invalid table", table)
            return failure(403, "User Not Authorized", f"ACL restricts read of {table}")
        if parts[:3] == ["api", "now", "table"] and len(parts) == 4 and request.method == "GET":
            return self._list(request, parts[3])
        if parts[:3] == ["api", "now", "table"] and len(parts) == 5:
            record = self.tables.get(parts[3], {}).get(parts[4])
            if record is None:
                return failure(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
            if request.method == "PATCH":
                return self._update(parts[3], record, request.json())
            return Response.json({"result": self._shape(record, request)})
        if parts[:3] == ["api", "now", "attachment"] and len(parts) == 3:
            rows = self._select(list(self.attachments.values()), request.arg("sysparm_query", ""))
            return Response.json({"result": rows})
        if parts[:3] == ["api", "now", "attachment"] and len(parts) == 5 and parts[4] == "file":
            meta = self.attachments.get(parts[3])
            if meta is None:
                return failure(404, "Record doesn't exist or ACL restricts the record retrieval")
            self.downloads.append(parts[3])
            chunked = parts[3] in self.chunked
            return Response(200, self.files[parts[3]], {"Content-Type": meta["content_type"]}, chunked=chunked)
        return failure(400, "Requested URI does not represent any resource", request.path)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return (user, password) == (self.username, self.password)

    def _list(self, request: Request, table: str) -> Response:
        with self.lock:
            rows = self._select(list(self.tables.get(table, {}).values()), request.arg("sysparm_query", ""))
        limit = int(request.arg("sysparm_limit", "10000") or 10000)
        offset = int(request.arg("sysparm_offset", "0") or 0)
        page = rows[offset : offset + limit]
        links = []
        base = {key: values[0] for key, values in request.query.items()}
        for rel, start in (
            ("first", 0),
            ("prev", max(offset - limit, 0)),
            ("next", offset + limit),
            ("last", max(len(rows) - limit, 0)),
        ):
            if rel == "next" and offset + limit >= len(rows):
                continue
            links.append(f'<{self.url}{request.path}?{urlencode({**base, "sysparm_offset": start})}>;rel="{rel}"')
        return Response.json(
            {"result": [self._shape(row, request) for row in page]},
            **{"X-Total-Count": str(len(rows)), "Link": ",".join(links)},
        )

    def _shape(self, record: dict[str, Any], request: Request) -> dict[str, Any]:
        fields = request.arg("sysparm_fields")
        shaped = {key: value for key, value in record.items() if not fields or key in fields.split(",")}
        if request.arg("sysparm_display_value") == "true":
            for element in ("comments", "work_notes"):
                if not fields or element in fields.split(","):
                    shaped[element] = self._journal_display(record["sys_id"], element)
        if request.arg("sysparm_exclude_reference_link") == "true":
            shaped = {key: value["value"] if isinstance(value, dict) else value for key, value in shaped.items()}
        return shaped

    def _journal_display(self, sys_id: str, element: str) -> str:
        """A journal field's display value: every entry, newest first, as "<time> - <author's name>
        (Additional comments|Work notes)" on its own line, then its text and a blank line."""
        label = "Additional comments" if element == "comments" else "Work notes"
        names = {u["user_name"]: u["name"] for u in self.tables.get("sys_user", {}).values()}
        entries = [
            e
            for e in self.tables.get("sys_journal_field", {}).values()
            if e["element_id"] == sys_id and e["element"] == element
        ]
        entries.sort(key=lambda e: e["sys_created_on"], reverse=True)
        return "".join(
            f"{e['sys_created_on']} - {names.get(e['sys_created_by'], e['sys_created_by'])} ({label})\n{e['value']}\n\n"
            for e in entries
        )

    def _journal(self, table: str, record: dict[str, Any], element: str, text: str, author: str) -> None:
        self.journal.append({"sys_id": record["sys_id"], "field": element, "text": text})
        entry = uuid.uuid4().hex
        self.tables.setdefault("sys_journal_field", {})[entry] = {
            "sys_id": entry,
            "element_id": record["sys_id"],
            "element": element,
            "name": table,
            "value": text,
            "sys_created_by": author,
            "sys_created_on": self.tick(),
        }

    def _update(self, table: str, record: dict[str, Any], changes: dict[str, Any]) -> Response:
        closing = str(changes.get("state")) in ("6", "7")
        if self.requires_close_info and closing and not (changes.get("close_code") and changes.get("close_notes")):
            return failure(403, "Operation Failed", "Data Policy Exception: Close code, Close notes are mandatory")
        with self.lock:
            for journal_field in ("work_notes", "comments"):
                if text := changes.pop(journal_field, None):
                    self._journal(table, record, journal_field, text, self.username)
            record.update({key: str(value) for key, value in changes.items()})
            record["sys_updated_on"] = self.tick()
        return Response.json({"result": {"sys_id": record["sys_id"]}})

    def _select(self, rows: list[dict[str, Any]], query: str) -> list[dict[str, Any]]:
        """Filter and sort by an encoded query: OR-groups split by ^NQ, conditions by ^, ORDERBY terms anywhere."""
        order: list[tuple[str, bool]] = []
        groups: list[list[tuple[str, str, str]]] = []
        for group in query.split("^NQ") if query and self.honours_nq else [query.replace("^NQ", "^")]:
            conditions = []
            for term in filter(None, group.split("^")):
                if term.startswith("ORDERBYDESC"):
                    order.append((term[11:], True))
                elif term.startswith("ORDERBY"):
                    order.append((term[7:], False))
                elif match := CONDITION.match(term):
                    conditions.append(match.groups())
                else:
                    raise ValueError(f"unsupported query term {term!r}")
            groups.append(conditions)

        def value(row: dict[str, Any], name: str) -> str:
            found = row.get(name, "")
            return str(found["value"] if isinstance(found, dict) else found)

        def matches(row: dict[str, Any], conditions: list[tuple[str, str, str]]) -> bool:
            for name, op, expected in conditions:
                actual = value(row, name)
                ok = {
                    "=": actual == expected,
                    "!=": actual != expected,
                    ">": actual > expected,
                    ">=": actual >= expected,
                    "<": actual < expected,
                    "<=": actual <= expected,
                    "IN": actual in expected.split(","),
                    "NOT IN": actual not in expected.split(","),
                    "STARTSWITH": actual.startswith(expected),
                    "LIKE": expected in actual,
                }[op]
                if not ok:
                    return False
            return True

        groups = [g for g in groups if g] or [[]]
        selected = [row for row in rows if any(matches(row, conditions) for conditions in groups)]
        for name, descending in reversed(order):
            selected.sort(key=lambda row, name=name: value(row, name), reverse=descending)
        return selected
