"""ServiceNow: incidents (and optionally other task tables) polled through the Table API, decisions written back.

Polling is keyset paging on (sys_updated_on, sys_id): each page asks for records after the last one
read, ordered the same way, `sysparm_limit` at a time. Offset paging would skip a record whenever an
earlier one is updated mid-poll (it moves to the end and every offset shifts); keyset paging cannot.
The cursor is that last (timestamp, sys_id) per table, so a restart resumes exactly there.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from connectors.base import PolledPage, RejectedItem, SourceUpdate
from connectors.http import (
    ConnectorError,
    HttpClient,
    MalformedResponseError,
    breaker_from_settings,
    policy_from_settings,
    verify_setting,
)
from engine.enums import TicketStatus
from engine.ingest import AttachmentIn, TicketIn
from engine.settings import ConfigurationError, Settings

log = logging.getLogger(__name__)
NAME = "servicenow"
TIMESTAMP = "%Y-%m-%d %H:%M:%S"
JOURNAL_FIELDS = frozenset({"work_notes", "comments"})
PRIORITIES = {"1": "Critical", "2": "High", "3": "Moderate", "4": "Low", "5": "Planning"}
INCIDENT_STATES: dict[str, dict[str, str]] = {
    TicketStatus.NEW: {"state": "1"},
    TicketStatus.ANALYZING: {"state": "2"},
    TicketStatus.ESCALATED: {"state": "2"},
    TicketStatus.AWAITING_CUSTOMER: {"state": "3", "hold_reason": "1"},
    TicketStatus.RESOLVED: {"state": "6"},
    TicketStatus.CLOSED: {"state": "7"},
}


def configuration_problems(settings: Settings) -> list[str]:
    """One message per missing or malformed ServiceNow variable; empty when the connector can run."""
    problems = []
    url = settings.SNOW_API_URL
    if not url:
        problems.append("SNOW_API_URL: not set (e.g. https://<instance>.service-now.com/api/now/table/incident)")
    elif urlsplit(url).scheme not in ("http", "https") or "/api/now/table/" not in url:
        problems.append(
            "SNOW_API_URL: must be a Table API URL like https://<instance>.service-now.com/api/now/table/incident"
        )
    if not settings.SNOW_AUTH_USERNAME:
        problems.append("SNOW_AUTH_USERNAME: not set")
    if not settings.SNOW_AUTH_PASSWORD.get_secret_value():
        problems.append("SNOW_AUTH_PASSWORD: not set")
    if settings.SNOW_START_AT:
        try:
            datetime.strptime(settings.SNOW_START_AT, TIMESTAMP)
        except ValueError:
            problems.append("SNOW_START_AT: must look like 2024-01-31 23:59:59 (UTC)")
    return problems


def is_configured(settings: Settings) -> bool:
    return bool(settings.SNOW_API_URL or settings.SNOW_AUTH_USERNAME)


class ServiceNowClient:
    """The Table and Attachment API calls we make, over the shared HTTP client."""

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if problems := configuration_problems(settings):
            raise ConfigurationError("ServiceNow — " + "; ".join(problems))
        instance, _, table = settings.SNOW_API_URL.rstrip("/").partition("/api/now/table/")
        self.instance = instance
        self.tables = [table, *(name.strip() for name in settings.SNOW_EXTRA_TABLES.split(",") if name.strip())]
        self.http = HttpClient(
            NAME,
            instance,
            policy=policy_from_settings(settings),
            auth=(settings.SNOW_AUTH_USERNAME, settings.SNOW_AUTH_PASSWORD.get_secret_value()),
            verify=verify_setting(settings),
            sleep=sleep,
            breaker=breaker_from_settings(NAME, settings),
        )

    def records(self, table: str, query: str, limit: int) -> list[dict[str, Any]]:
        body = self.http.get_json(
            f"api/now/table/{table}",
            params={
                "sysparm_query": query,
                "sysparm_limit": limit,
                "sysparm_offset": 0,
                "sysparm_exclude_reference_link": "true",
            },
        )
        return _result_list(body, f"table {table}")

    def user(self, sys_id: str) -> dict[str, Any]:
        body = self.http.get_json(f"api/now/table/sys_user/{sys_id}", params={"sysparm_fields": "email,name,sys_id"})
        if not isinstance(body, dict) or not isinstance(body.get("result"), dict):
            raise MalformedResponseError(NAME, "sys_user answer has no `result` object")
        return body["result"]

    def attachments(self, table: str, sys_ids: list[str]) -> list[dict[str, Any]]:
        body = self.http.get_json(
            "api/now/attachment",
            params={"sysparm_query": f"table_name={table}^table_sys_idIN{','.join(sys_ids)}", "sysparm_limit": 1000},
        )
        return _result_list(body, "attachment list")

    def download(self, attachment_sys_id: str) -> bytes:
        path = f"api/now/attachment/{attachment_sys_id}/file"
        return self.http.request("GET", path, headers={"Accept": "*/*"}).content

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

    def ping(self) -> None:
        """One cheap authenticated call: the first record's id of the polled table."""
        self.records(self.tables[0], "ORDERBYsys_id", 1)


def _result_list(body: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("result"), list):
        raise MalformedResponseError(NAME, f"{what} answer has no `result` list")
    return body["result"]


class ServiceNowSource:
    """Polls each configured table for records changed since the cursor, and writes decisions back."""

    name = NAME

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = ServiceNowClient(settings, sleep=sleep)
        self.page_size = settings.CONNECTOR_PAGE_SIZE
        self.start_at = settings.SNOW_START_AT
        self.max_attachment_bytes = settings.MAX_ATTACHMENT_BYTES
        self.close_code = settings.SNOW_RESOLVED_CLOSE_CODE
        self.notes_field = settings.SNOW_NOTES_AS
        self._users: dict[str, tuple[str | None, str | None]] = {}

    def poll(self, cursor: str | None) -> Iterator[PolledPage]:
        positions = _decode_cursor(cursor)
        for table in self.client.tables:
            yield from self._poll_table(table, positions)

    def _poll_table(self, table: str, positions: dict[str, dict[str, str]]) -> Iterator[PolledPage]:
        while True:
            position = positions.get(table) or ({"updated": self.start_at, "sys_id": ""} if self.start_at else None)
            records = self.client.records(table, _query_after(position), self.page_size)
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
            last = next((r for r in reversed(readable) if r.get("sys_updated_on")), None)
            if last is not None:
                positions[table] = {"updated": str(last["sys_updated_on"]), "sys_id": str(last["sys_id"])}
            if records:
                yield PolledPage(items=items, cursor=json.dumps(positions, sort_keys=True), rejected=rejected)
            if len(records) < self.page_size or last is None:
                return

    def to_ticket_in(self, table: str, record: dict[str, Any], files: list[AttachmentIn]) -> TicketIn:
        """One Table API record as a source item; the caller's e-mail comes from sys_user."""
        email, name = self._person(_reference(record.get("caller_id")) or _reference(record.get("opened_by")))
        if not email:
            raise ValueError("the caller has no e-mail address in sys_user, so nobody could be answered")
        sys_id = str(record["sys_id"])
        number = str(record.get("number") or sys_id)
        return TicketIn(
            source=NAME,
            external_id=f"{table}:{sys_id}",
            kind="ticket",
            requester_email=email,
            requester_name=name,
            subject=str(record.get("short_description") or number),
            body=str(record.get("description") or record.get("short_description") or ""),
            priority=PRIORITIES.get(str(record.get("priority") or ""), record.get("priority") or None),
            category=str(record.get("category") or "") or None,
            external_url=f"{self.client.instance}/nav_to.do?uri={table}.do?sys_id={sys_id}",
            updated_at=parse_timestamp(str(record["sys_updated_on"])),
            attachments=files,
            additional_info={NAME: {"table": table, "number": number, "sys_id": sys_id, "state": record.get("state")}},
        )

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
        for meta in self.client.attachments(table, [str(record["sys_id"]) for record in records]):
            owner = str(meta.get("table_sys_id") or "")
            size = int(meta.get("size_bytes") or 0)
            if not owner or not meta.get("sys_id"):
                continue
            if size > self.max_attachment_bytes:
                log.warning("%s attachment %s on %s skipped: %s bytes", NAME, meta.get("file_name"), owner, size)
                continue
            data = self.client.download(str(meta["sys_id"]))
            found.setdefault(owner, []).append(
                AttachmentIn(
                    filename=str(meta.get("file_name") or "attachment")[:500],
                    content_type=meta.get("content_type"),
                    data=data,
                )
            )
        return found

    def push(self, update: SourceUpdate, *, check_first: bool = False) -> None:
        """A note becomes a work note (or comment); a status moves the record's state, group and close notes."""
        table, _, sys_id = update.external_id.partition(":")
        written = check_first and self.client.has_journal_entry(sys_id, update.marker)
        fields: dict[str, str] = {self.notes_field: update.text} if update.text and not written else {}
        if update.kind == "status" and table == "incident" and update.status in INCIDENT_STATES:
            fields.update(INCIDENT_STATES[update.status])
            if update.status == TicketStatus.ESCALATED and update.team:
                fields["assignment_group"] = update.team
            if update.status == TicketStatus.RESOLVED:
                fields["close_code"] = self.close_code
                fields["close_notes"] = update.resolution or update.text or "Resolved by the support desk"
        if fields:
            self.client.update(table, sys_id, fields)


def _reference(value: Any) -> str | None:
    """A reference field's sys_id, whether the API sent it as a plain value or as {link, value}."""
    if isinstance(value, dict):
        value = value.get("value")
    return str(value) if value else None


def _query_after(position: dict[str, str] | None) -> str:
    order = "ORDERBYsys_updated_on^ORDERBYsys_id"
    if not position or not position.get("updated"):
        return order
    updated, sys_id = position["updated"], position.get("sys_id", "")
    return f"sys_updated_on>{updated}^NQsys_updated_on={updated}^sys_id>{sys_id}^{order}"


def _decode_cursor(cursor: str | None) -> dict[str, dict[str, str]]:
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
