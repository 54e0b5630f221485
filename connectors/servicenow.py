"""ServiceNow: incidents (and optionally other task tables) polled through the Table API, decisions written back.

Polling is keyset paging on (sys_updated_on, sys_id): each page asks for records after the last one read,
ordered the same way. That query needs `^NQ` (OR); an instance that does not honour it answers short, so
when a keyset page ends the poll, one plain `sys_updated_on>=` page checks that nothing after our position
was missed, and if something was, the rest of the run pages by `sysparm_offset` (checked against
`X-Total-Count`) and drops what it has read already. The cursor is that last (timestamp, sys_id) per table,
plus the start of the window (SNOW_START_AT, else the moment of the first poll), so a restart moves nothing.

Incidents already resolved, closed or cancelled when polled are sent as history; callers' portal comments
(`sys_journal_field`, element `comments`) are sent as comments on their incident; a least-privilege user who may
not read sys_journal_field gets them from each changed record's own `comments` field (display value), one entry
at a time by its (time, author). Attachments are read where the integration user may, and skipped with one
warning per run where not.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from pydantic import Field, SecretStr, ValidationError

from connectors.base import (
    AttachmentIn,
    ConnectorSettings,
    OpenBacklog,
    PolledPage,
    RejectedItem,
    Required,
    SourceUpdate,
    TicketIn,
    TicketStatus,
    require_configured,
    setting_problems,
    timestamp_check,
)
from connectors.http import (
    AuthenticationError,
    ConnectorError,
    HttpClient,
    MalformedResponseError,
    NotFoundError,
    breaker_from_settings,
    parse_json,
    policy_from_settings,
    verify_setting,
)

log = logging.getLogger(__name__)
NAME = "servicenow"
TIMESTAMP = "%Y-%m-%d %H:%M:%S"
JOURNAL_FIELDS = frozenset({"work_notes", "comments"})
PRIORITIES = {"1": "Critical", "2": "High", "3": "Moderate", "4": "Low", "5": "Planning"}
FINISHED_STATES = {"6": "resolved", "7": "closed", "8": "closed"}
"""Incident states (Resolved, Closed, Canceled) a record is in when it arrives as history."""
OUR_MARKER = "[No-Touch Support "
INCIDENT_STATES: dict[str, dict[str, str]] = {
    TicketStatus.NEW: {"state": "1"},
    TicketStatus.ANALYZING: {"state": "2"},
    TicketStatus.ESCALATED: {"state": "2"},
    TicketStatus.AWAITING_CUSTOMER: {"state": "3", "hold_reason": "1"},
    TicketStatus.RESOLVED: {"state": "6"},
    TicketStatus.CLOSED: {"state": "7"},
}


class ServiceNowSettings(ConnectorSettings):
    """ServiceNow Table API: the polled table, its credentials and how decisions are written back."""

    SNOW_API_URL: Annotated[str, Required("e.g. https://<instance>.service-now.com/api/now/table/incident")] = ""
    SNOW_AUTH_USERNAME: Annotated[str, Required()] = ""
    SNOW_AUTH_PASSWORD: Annotated[SecretStr, Required()] = SecretStr("")
    SNOW_EXTRA_TABLES: str = ""
    SNOW_POLL_INTERVAL_SECONDS: float = Field(default=60.0, gt=0)
    SNOW_START_AT: str = ""
    SNOW_CA_BUNDLE: str = ""
    """A private CA's PEM file, added to the system trust store for this connector only (CONNECTOR_CA_BUNDLE, by
    contrast, replaces the store for every connector)."""
    SNOW_RESOLVED_CLOSE_CODE: str = "Solution provided"
    SNOW_CLOSE_NOTES_DEFAULT: str = "Closed by the support desk"
    SNOW_ASSIGNMENT_GROUPS: dict[str, str] = Field(default_factory=dict)
    """Team name → assignment group (sys_id or name) set when a ticket is assigned or escalated to that team."""


def configuration_problems(settings: ServiceNowSettings) -> list[str]:
    """One message per missing or malformed ServiceNow variable; empty when the connector can run."""
    return setting_problems(
        settings,
        ServiceNowSettings,
        SNOW_API_URL=_table_api_url,
        SNOW_START_AT=timestamp_check(TIMESTAMP, "2024-01-31 23:59:59 (UTC)"),
    )


def _table_api_url(url: str) -> str | None:
    if urlsplit(url).scheme in ("http", "https") and "/api/now/table/" in url:
        return None
    return "must be a Table API URL like https://<instance>.service-now.com/api/now/table/incident"


def is_configured(settings: ServiceNowSettings) -> bool:
    return bool(settings.SNOW_API_URL or settings.SNOW_AUTH_USERNAME)


class ServiceNowClient:
    """The Table and Attachment API calls we make, over the shared HTTP client."""

    def __init__(self, settings: ServiceNowSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        require_configured("ServiceNow", configuration_problems(settings))
        instance, _, table = settings.SNOW_API_URL.rstrip("/").partition("/api/now/table/")
        self.instance = instance
        self.tables = [table, *(name.strip() for name in settings.SNOW_EXTRA_TABLES.split(",") if name.strip())]
        self.http = HttpClient(
            NAME,
            instance,
            policy=policy_from_settings(settings),
            auth=(settings.SNOW_AUTH_USERNAME, settings.SNOW_AUTH_PASSWORD.get_secret_value()),
            verify=verify_setting(settings, settings.SNOW_CA_BUNDLE),
            sleep=sleep,
            breaker=breaker_from_settings(NAME, settings),
        )

    def records(self, table: str, query: str, limit: int) -> list[dict[str, Any]]:
        return self.page(table, query, limit, 0)[0]

    def page(self, table: str, query: str, limit: int, offset: int) -> tuple[list[dict[str, Any]], int | None]:
        """One page of a table and the total the query matches (`X-Total-Count`), when the instance says."""
        response = self.http.request(
            "GET",
            f"api/now/table/{table}",
            params={
                "sysparm_query": query,
                "sysparm_limit": limit,
                "sysparm_offset": offset,
                "sysparm_exclude_reference_link": "true",
            },
        )
        body = parse_json(NAME, "GET", response)
        total = response.headers.get("X-Total-Count", "")
        return _result_list(body, f"table {table}"), int(total) if total.isdigit() else None

    def display_values(self, table: str, sys_ids: list[str], fields: list[str]) -> list[dict[str, Any]]:
        """Records as the instance displays them (`sysparm_display_value=true`): journal fields as their entries."""
        body = self.http.get_json(
            f"api/now/table/{table}",
            params={
                "sysparm_query": f"sys_idIN{','.join(sys_ids)}",
                "sysparm_fields": ",".join(fields),
                "sysparm_display_value": "true",
                "sysparm_limit": len(sys_ids),
            },
        )
        return _result_list(body, table)

    def user_by_name(self, user_name: str) -> dict[str, Any] | None:
        rows = self.records("sys_user", f"user_name={user_name}", 1)
        return rows[0] if rows else None

    def user(self, sys_id: str) -> dict[str, Any]:
        body = self.http.get_json(
            f"api/now/table/sys_user/{quote(sys_id, safe='')}", params={"sysparm_fields": "email,name,sys_id"}
        )
        if not isinstance(body, dict) or not isinstance(body.get("result"), dict):
            raise MalformedResponseError(NAME, "sys_user answer has no `result` object")
        return body["result"]

    def group_name(self, sys_id: str) -> str:
        body = self.http.get_json(
            f"api/now/table/sys_user_group/{quote(sys_id, safe='')}", params={"sysparm_fields": "name"}
        )
        if not isinstance(body, dict) or not isinstance(body.get("result"), dict):
            raise MalformedResponseError(NAME, "sys_user_group answer has no `result` object")
        return str(body["result"].get("name") or "")

    def attachments(self, table: str, sys_ids: list[str]) -> list[dict[str, Any]]:
        body = self.http.get_json(
            "api/now/attachment",
            params={"sysparm_query": f"table_name={table}^table_sys_idIN{','.join(sys_ids)}", "sysparm_limit": 1000},
        )
        return _result_list(body, "attachment list")

    def download(self, attachment_sys_id: str, *, max_bytes: int) -> bytes | None:
        """The file's bytes from this instance, streamed; None past `max_bytes`, whatever the metadata said. The
        path is built from the sys_id as one path segment, never from a link in the answer."""
        path = f"api/now/attachment/{quote(attachment_sys_id, safe='')}/file"
        return self.http.download(path, max_bytes=max_bytes, headers={"Accept": "*/*"})

    def update(self, table: str, sys_id: str, fields: dict[str, str]) -> None:
        """PATCH a record. A journal field (work notes, comments) appends an entry, so such a PATCH is never
        repeated blindly: the caller checks for it first (`has_journal_entry`)."""
        self.http.request(
            "PATCH",
            f"api/now/table/{table}/{sys_id}",
            params={"sysparm_input_display_value": "true", "sysparm_fields": "sys_id"},
            json=fields,
            idempotent=not JOURNAL_FIELDS & fields.keys(),
        )

    def has_journal_entry(self, sys_id: str, containing: str) -> bool:
        """Whether the record's journal (table sys_journal_field) holds an entry with this text."""
        query = f"element_id={sys_id}^valueLIKE{containing}"
        return bool(self.records("sys_journal_field", query, 1))

    def ping(self) -> list[str]:
        """Read one record of every table the connector uses; raise if the polled table cannot be read at all,
        else name each permission missing."""
        self.records(self.tables[0], "ORDERBYsys_id", 1)
        missing = []
        for table in self.tables[1:]:
            missing += _unreadable(lambda table=table: self.records(table, "ORDERBYsys_id", 1), table, "poll it")
        missing += _unreadable(lambda: self.records("sys_user", "ORDERBYsys_id", 1), "sys_user", "find callers")
        missing += _unreadable(lambda: self.attachments(self.tables[0], ["0"]), "sys_attachment", "read attachments")
        missing += _unreadable(
            lambda: self.records("sys_journal_field", "element=comments", 1),
            "sys_journal_field",
            "check notes after a lost answer (callers' comments are then read from each record's `comments`)",
        )
        return missing


def _unreadable(call: Callable[[], object], table: str, purpose: str) -> list[str]:
    try:
        call()
    except (AuthenticationError, NotFoundError) as error:
        if error.status == 401:
            raise
        return [f"{table} not readable ({error.status}): grant read on {table} to {purpose}"]
    return []


def _result_list(body: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("result"), list):
        raise MalformedResponseError(NAME, f"{what} answer has no `result` list")
    return body["result"]


class ServiceNowSource:
    """Polls each configured table for records changed since the cursor, and writes decisions back."""

    name = NAME

    def __init__(self, settings: ServiceNowSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = ServiceNowClient(settings, sleep=sleep)
        self.page_size = settings.CONNECTOR_PAGE_SIZE
        self.start_at = settings.SNOW_START_AT
        self.max_attachment_bytes = settings.MAX_ATTACHMENT_BYTES
        self.close_code = settings.SNOW_RESOLVED_CLOSE_CODE
        self.close_notes = settings.SNOW_CLOSE_NOTES_DEFAULT
        self.groups = settings.SNOW_ASSIGNMENT_GROUPS
        self.username = settings.SNOW_AUTH_USERNAME
        self._users: dict[str, tuple[str | None, str | None]] = {}
        self._teams: dict[str, str | None] = {}
        self._warned: set[str] = set()

    def poll(self, cursor: str | None) -> Iterator[PolledPage]:
        positions = _decode_cursor(cursor)
        new_window = "start_at" not in positions
        positions.setdefault("start_at", self.start_at or utcnow_timestamp())
        self._warned = set()
        for table in self.client.tables:
            yield from self._poll_table(table, positions)
            yield from self._poll_comments(table, positions)
        if new_window:
            yield PolledPage(items=[], cursor=json.dumps(positions, sort_keys=True))

    def _records_after(
        self, table: str, position: dict[str, str], query: str = "", stamp: str = "sys_updated_on"
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of records after `position` in (`stamp`, sys_id) order; see the module docstring."""
        while True:
            records, _ = self.client.page(table, query + _query_after(position, stamp), self.page_size, 0)
            if records:
                yield records
                position = _position(records[-1], position, stamp)
            if len(records) < self.page_size:
                break
        # The keyset query says we are done: check with a query that does not need ^NQ.
        since = f"{query}{stamp}>={position['updated']}^ORDERBY{stamp}^ORDERBYsys_id"
        offset = 0
        while True:
            records, total = self.client.page(table, since, self.page_size, offset)
            offset += len(records)
            after = (position["updated"], position["sys_id"])
            fresh = [r for r in records if isinstance(r, dict) and _key(r, stamp) > after]
            if fresh:
                if "paging" not in self._warned:
                    self._warned.add("paging")
                    log.warning("%s %s: keyset (^NQ) paging missed records; paging by offset", NAME, table)
                yield fresh
                position = _position(fresh[-1], position, stamp)
            if not records or len(records) < self.page_size or (total is not None and offset >= total):
                return

    def _poll_table(self, table: str, positions: dict[str, Any]) -> Iterator[PolledPage]:
        position = positions.get(table) or {"updated": positions["start_at"], "sys_id": ""}
        for records in self._records_after(table, position):
            items, rejected = self._items(table, records)
            positions[table] = _position(records[-1], position)
            position = positions[table]
            yield PolledPage(items=items, cursor=json.dumps(positions, sort_keys=True), rejected=rejected)

    def _items(self, table: str, records: list[Any]) -> tuple[list[TicketIn], list[RejectedItem]]:
        """A page of records as source items, each unreadable one kept whole as rejected."""
        readable = [record for record in records if isinstance(record, dict) and record.get("sys_id")]
        files = self._attachments(table, readable)
        items: list[TicketIn] = []
        rejected = [
            RejectedItem(None, "record without a sys_id", json.dumps(record, default=str)[:100_000])
            for record in records
            if record not in readable
        ]
        for record in readable:
            try:
                items.append(self.to_ticket_in(table, record, files.get(record["sys_id"], [])))
            except (ValueError, ValidationError, KeyError, TypeError, ConnectorError) as error:
                rejected.append(
                    RejectedItem(
                        f"{table}:{record['sys_id']}",
                        f"{NAME} {table} {record.get('number') or record['sys_id']}: {error}"[:2000],
                        json.dumps(record, default=str)[:100_000],
                    )
                )
        return items, rejected

    def _window_start(self, cursor: str | None) -> str:
        return str(_decode_cursor(cursor).get("start_at") or self.start_at or utcnow_timestamp())

    def open_before_window(self, cursor: str | None) -> OpenBacklog:
        """Open records (state not Resolved, Closed or Canceled) last updated before the window, counted by the
        Table API's `X-Total-Count` on a one-record page."""
        start = self._window_start(cursor)
        count = 0
        for table in self.client.tables:
            _, total = self.client.page(table, _open_before(start), 1, 0)
            if total is None:  # an instance that does not send the header: count the pages
                total = sum(len(page) for page in self._open_pages(table, start))
            count += total
        return OpenBacklog(count=count, window_start=start)

    def open_backlog(self, cursor: str | None) -> Iterator[PolledPage]:
        """The open records before the window, oldest first, as backlog tickets; see `BacklogSource`."""
        start = self._window_start(cursor)
        self._warned = set()
        for table in self.client.tables:
            for records in self._open_pages(table, start):
                items, rejected = self._items(table, records)
                marked = [item.model_copy(update={"additional_info": {**item.additional_info, "backlog": True}})
                          for item in items]  # fmt: skip
                yield PolledPage(items=marked, cursor=None, rejected=rejected)

    def _open_pages(self, table: str, start: str) -> Iterator[list[dict[str, Any]]]:
        query = _open_before(start) + "^ORDERBYsys_updated_on^ORDERBYsys_id"
        offset = 0
        while True:
            records, total = self.client.page(table, query, self.page_size, offset)
            if records:
                yield records
            offset += len(records)
            if len(records) < self.page_size or (total is not None and offset >= total):
                return

    def _poll_comments(self, table: str, positions: dict[str, Any]) -> Iterator[PolledPage]:
        """Callers' portal comments on this table's records, as replies; our own entries are never replies."""
        key = f"{table}:comments"
        position = positions.get(key) or {"updated": positions["start_at"], "sys_id": ""}
        try:
            query = f"name={table}^element=comments^"
            for entries in self._records_after("sys_journal_field", position, query, "sys_created_on"):
                items = [item for entry in entries if (item := self._comment(table, entry)) is not None]
                positions[key] = _position(entries[-1], position, "sys_created_on")
                position = positions[key]
                yield PolledPage(items=items, cursor=json.dumps(positions, sort_keys=True))
        except (AuthenticationError, NotFoundError) as error:
            if error.status == 401:
                raise
            self._warn_once(
                "journal",
                f"sys_journal_field not readable ({error.status}): callers' comments are read from each changed "
                f"record's `comments` field instead; grant read on sys_journal_field to read them directly",
            )
            yield from self._poll_comments_on_records(table, positions)

    def _poll_comments_on_records(self, table: str, positions: dict[str, Any]) -> Iterator[PolledPage]:
        """Least privilege: the record's own journal field (`comments` with `sysparm_display_value=true`: entries
        "<time> - <author> (Additional comments)\n<text>", newest first) of each record changed since the last
        read; each entry's id is its (time, author), so ingest keeps it once however often the record changes."""
        key = f"{table}:comments"
        position = positions.get(key) or {"updated": positions["start_at"], "sys_id": ""}
        for records in self._records_after(table, position):
            sys_ids = [str(r["sys_id"]) for r in records if isinstance(r, dict) and r.get("sys_id")]
            shown = self.client.display_values(table, sys_ids, ["sys_id", "comments"]) if sys_ids else []
            callers = {str(r["sys_id"]): _reference(r.get("caller_id")) for r in records if isinstance(r, dict)}
            items = []
            for record in shown:
                sys_id = str(record.get("sys_id") or "")
                for at, author, text in journal_entries(str(record.get("comments") or "")):
                    if (
                        item := self._display_comment(table, sys_id, callers.get(sys_id), at, author, text)
                    ) is not None:
                        items.append(item)
            positions[key] = _position(records[-1], position)
            position = positions[key]
            yield PolledPage(items=items, cursor=json.dumps(positions, sort_keys=True))

    def _display_comment(
        self, table: str, sys_id: str, caller: str | None, at: str, author: str, text: str
    ) -> TicketIn | None:
        """One entry of a record's `comments` display value as a reply, when its author is a person with an
        e-mail address (the caller, or one sys_user of that name) and it is not one of ours."""
        if not text.strip() or OUR_MARKER in text:
            return None
        email, name = self._person(caller)
        if name != author:
            users = self.client.records("sys_user", f"name={author}", 2)
            if len(users) != 1 or str(users[0].get("user_name") or "") == self.username:
                return None
            email, name = str(users[0].get("email") or "") or None, author
        if not email:
            return None
        fingerprint = hashlib.sha256(f"{at}\x00{author}".encode()).hexdigest()[:32]
        return TicketIn(
            source=NAME,
            external_id=f"{table}:{sys_id}:comments:{fingerprint}",
            kind="comment",
            parent_external_id=f"{table}:{sys_id}",
            requester_email=email,
            requester_name=name,
            requester_name_from_directory=True,
            body=text,
        )

    def _comment(self, table: str, entry: dict[str, Any]) -> TicketIn | None:
        author = str(entry.get("sys_created_by") or "")
        text = str(entry.get("value") or "")
        if not text.strip() or author == self.username or OUR_MARKER in text or not entry.get("element_id"):
            return None
        user = self.client.user_by_name(author) if author else None
        email = str((user or {}).get("email") or "")
        if not email:
            log.warning("%s comment %s by %r: the author has no e-mail address; skipped", NAME, entry["sys_id"], author)
            return None
        return TicketIn(
            source=NAME,
            external_id=f"sys_journal_field:{entry['sys_id']}",
            kind="comment",
            parent_external_id=f"{table}:{entry['element_id']}",
            requester_email=email,
            requester_name=str((user or {}).get("name") or "") or None,
            requester_name_from_directory=True,
            body=text,
            updated_at=parse_timestamp(str(entry["sys_created_on"])) if entry.get("sys_created_on") else None,
        )

    def _warn_once(self, what: str, message: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("%s: %s", NAME, message)

    def to_ticket_in(self, table: str, record: dict[str, Any], files: list[AttachmentIn]) -> TicketIn:
        """One Table API record as a source item; the caller's e-mail comes from sys_user."""
        email, name = self._person(_reference(record.get("caller_id")) or _reference(record.get("opened_by")))
        if not email:
            raise ValueError("the caller has no e-mail address in sys_user, so nobody could be answered")
        sys_id = str(record["sys_id"])
        number = str(record.get("number") or sys_id)
        finished = FINISHED_STATES.get(str(record.get("state") or ""))
        close_notes = str(record.get("close_notes") or "")
        return TicketIn(
            source=NAME,
            external_id=f"{table}:{sys_id}",
            kind="ticket",
            requester_email=email,
            requester_name=name,
            requester_name_from_directory=True,
            subject=str(record.get("short_description") or number),
            body=str(record.get("description") or record.get("short_description") or ""),
            history=finished is not None,
            team=self._team(record.get("assignment_group")) if finished else None,
            priority=PRIORITIES.get(str(record.get("priority") or ""), record.get("priority") or None),
            category=str(record.get("category") or "") or None,
            external_url=f"{self.client.instance}/nav_to.do?uri={table}.do?sys_id={sys_id}",
            updated_at=parse_timestamp(str(record["sys_updated_on"])),
            attachments=files,
            additional_info={
                NAME: {"table": table, "number": number, "sys_id": sys_id, "state": record.get("state")},
                **({"source_status": finished, "resolution": close_notes} if finished and close_notes else {}),
                **({"source_status": finished} if finished and not close_notes else {}),
            },
        )

    def _team(self, group: Any) -> str | None:
        """The team a finished record was resolved under, for routing to learn from: the desk's team mapped to
        that assignment group (SNOW_ASSIGNMENT_GROUPS, by sys_id or name), else the group's name. A user who may
        not read sys_user_group gets one warning and history without teams."""
        sys_id = _reference(group)
        if not sys_id:
            return None
        if sys_id not in self._teams:
            by_group = {group: team for team, group in self.groups.items()}
            name = by_group.get(sys_id)
            if name is None and "groups" not in self._warned:
                try:
                    name = self.client.group_name(sys_id) or None
                except (AuthenticationError, NotFoundError) as error:
                    if error.status == 401:
                        raise
                    self._warn_once("groups", f"assignment groups not read, history teaches no routing: grant read "
                                              f"on sys_user_group ({error})")  # fmt: skip
            self._teams[sys_id] = by_group.get(name or "", name)
        return self._teams[sys_id]

    def _person(self, sys_id: str | None) -> tuple[str | None, str | None]:
        if not sys_id:
            return None, None
        if sys_id not in self._users:
            user = self.client.user(sys_id)
            self._users[sys_id] = (str(user.get("email") or "") or None, str(user.get("name") or "") or None)
        return self._users[sys_id]

    def _attachments(self, table: str, records: list[dict[str, Any]]) -> dict[str, list[AttachmentIn]]:
        """Every file on this page's records, in one list call; a file over the size limit is noted, not fetched."""
        if not records:
            return {}
        found: dict[str, list[AttachmentIn]] = {}
        try:
            listed = self.client.attachments(table, [str(record["sys_id"]) for record in records])
        except (AuthenticationError, NotFoundError) as error:
            if error.status == 401:
                raise
            self._warn_once("attachments", f"attachments not readable: grant read on sys_attachment ({error})")
            return {}
        limit = self.max_attachment_bytes
        for meta in listed:
            owner = str(meta.get("table_sys_id") or "")
            declared = str(meta.get("size_bytes") or "")
            size = int(declared) if declared.isdigit() else None
            if not owner or not meta.get("sys_id"):
                continue
            name = str(meta.get("file_name") or "attachment")[:500]
            stated_too_large = size is not None and size > limit
            data = None if stated_too_large else self.client.download(str(meta["sys_id"]), max_bytes=limit)
            if data is None:
                log.warning("%s attachment %s on %s not fetched: larger than %s bytes", NAME, name, owner, limit)
                attachment = AttachmentIn(
                    filename=name,
                    content_type=meta.get("content_type"),
                    data=b"",
                    left_at_source="too_large",
                    reason=f"larger than the {limit}-byte limit (MAX_ATTACHMENT_BYTES)",
                    declared_size=size,
                )
            else:
                attachment = AttachmentIn(filename=name, content_type=meta.get("content_type"), data=data)
            found.setdefault(owner, []).append(attachment)
        return found

    def push(self, update: SourceUpdate, *, check_first: bool = False) -> None:
        """A note becomes a work note (a comment when the customer may see it); a status moves the record's
        state, and closing writes the close code and notes; a team sets the assignment group."""
        table, _, sys_id = update.external_id.partition(":")
        written = check_first and self.client.has_journal_entry(sys_id, update.marker)
        journal = "comments" if update.public else "work_notes"
        note = journal_text(update.text, update.quote)
        fields: dict[str, str] = {journal: note} if update.text and not written else {}
        if update.team:
            fields["assignment_group"] = self.groups.get(update.team, update.team)
        if update.kind == "status" and table == "incident" and update.status in INCIDENT_STATES:
            fields.update(INCIDENT_STATES[update.status])
            if update.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
                fields["close_code"] = self.close_code
                fields["close_notes"] = update.resolution or self.close_notes
        if fields:
            self.client.update(table, sys_id, fields)


CODE_TAG = re.compile(r"\[(\s*/?\s*code\s*)\]", re.IGNORECASE)


def journal_text(text: str, quote: str = "") -> str:
    """A note for a journal field (work notes, comments) that shows as written, with a customer's words below it
    as "> " lines. Journal fields escape HTML but render whatever stands between `[code]` and `[/code]` as HTML
    while glide.ui.security.allow_codetag is true, its default ("Render journal field entries as HTML",
    https://www.servicenow.com/docs/r/platform-administration/render-journal-field-entries-as-html.html): every
    such tag, in any case or spacing, gets fullwidth brackets, so it reads the same and renders nothing."""
    if quote:
        text += "\n" + "\n".join(f"> {line}" for line in quote.splitlines() or [""])
    return CODE_TAG.sub(lambda match: f"［{match.group(1)}］", text)


JOURNAL_ENTRY = re.compile(r"^(?P<at>\S[^\n]*?) - (?P<author>[^\n]+?) \(Additional comments\)[ \t]*$", re.MULTILINE)


def journal_entries(display: str) -> list[tuple[str, str, str]]:
    """(time, author, text) of each entry of a journal field's display value, oldest first. ServiceNow shows the
    entries newest first, each as "<time> - <author> (Additional comments)" on a line of its own, then its text."""
    headers = list(JOURNAL_ENTRY.finditer(display))
    entries = []
    for index, header in enumerate(headers):
        following = headers[index + 1] if index + 1 < len(headers) else None
        text = display[header.end() : following.start() if following else len(display)].strip("\n").rstrip()
        entries.append((header["at"].strip(), header["author"].strip(), text.strip()))
    return entries[::-1]


def _open_before(start: str) -> str:
    """Records not finished (see FINISHED_STATES) and last updated before `start`."""
    return f"sys_updated_on<{start}^stateNOT IN{','.join(FINISHED_STATES)}"


def _reference(value: Any) -> str | None:
    """A reference field's sys_id, whether the API sent it as a plain value or as {link, value}."""
    if isinstance(value, dict):
        value = value.get("value")
    return str(value) if value else None


def _query_after(position: dict[str, str] | None, stamp: str = "sys_updated_on") -> str:
    order = f"ORDERBY{stamp}^ORDERBYsys_id"
    if not position or not position.get("updated"):
        return order
    updated, sys_id = position["updated"], position.get("sys_id", "")
    return f"{stamp}>{updated}^NQ{stamp}={updated}^sys_id>{sys_id}^{order}"


def _key(record: dict[str, Any], stamp: str) -> tuple[str, str]:
    return str(record.get(stamp) or ""), str(record.get("sys_id") or "")


def _position(record: Any, before: dict[str, str], stamp: str = "sys_updated_on") -> dict[str, str]:
    """The keyset position after `record`; one without a timestamp or id leaves the position where it was."""
    if isinstance(record, dict) and record.get(stamp) and record.get("sys_id"):
        return {"updated": str(record[stamp]), "sys_id": str(record["sys_id"])}
    return before


def utcnow_timestamp() -> str:
    return datetime.now(UTC).strftime(TIMESTAMP)


def _decode_cursor(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        positions = json.loads(cursor)
    except ValueError:
        log.warning("%s cursor %r is unreadable: starting from the beginning", NAME, cursor[:100])
        return {}
    return positions if isinstance(positions, dict) else {}


def parse_timestamp(value: str) -> datetime:
    """ServiceNow's internal date-time (UTC, `YYYY-MM-DD HH:MM:SS`) as an aware datetime."""
    return datetime.strptime(value, TIMESTAMP).replace(tzinfo=UTC)
