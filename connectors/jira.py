"""Jira: issues polled by JQL on `updated` (the `jira` library), comments and transitions written back.

JQL compares `updated` at minute precision in the account's time zone (JIRA_TIMEZONE), so each poll
asks from the minute of the last issue seen and skips issues it has already passed at that exact
timestamp; ingest drops anything older than what it holds. Jira Cloud pages by `nextPageToken`
(`/search/jql`), Server and Data Center by `startAt` (`/search`): both are handled.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from jira import JIRA, JIRAError
from pydantic import ValidationError

from connectors.base import PolledPage, RejectedItem, SourceUpdate
from connectors.http import (
    AuthenticationError,
    ConnectorError,
    NotFoundError,
    UnreachableError,
    breaker_from_settings,
    call_with_retry,
    parse_retry_after,
    policy_from_settings,
    url_host,
)
from engine.enums import TicketStatus
from engine.ingest import AttachmentIn, TicketIn
from engine.settings import ConfigurationError, Settings

log = logging.getLogger(__name__)
NAME = "jira"
FIELDS = ["summary", "description", "reporter", "priority", "issuetype", "updated", "attachment", "status"]
T = TypeVar("T")


def configuration_problems(settings: Settings) -> list[str]:
    problems = []
    if not settings.JIRA_SERVER:
        problems.append("JIRA_SERVER: not set (e.g. https://your-domain.atlassian.net)")
    elif urlsplit(settings.JIRA_SERVER).scheme not in ("http", "https"):
        problems.append("JIRA_SERVER: must start with https://")
    if not settings.JIRA_USERNAME:
        problems.append("JIRA_USERNAME: not set (the account's e-mail address)")
    if not settings.JIRA_API_TOKEN.get_secret_value():
        problems.append("JIRA_API_TOKEN: not set (Atlassian account → Security → API tokens)")
    try:
        ZoneInfo(settings.JIRA_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(f"JIRA_TIMEZONE: unknown time zone {settings.JIRA_TIMEZONE!r} (e.g. UTC, Europe/Berlin)")
    return problems


def is_configured(settings: Settings) -> bool:
    return bool(settings.JIRA_SERVER or settings.JIRA_USERNAME)


class JiraSource:
    """Polls issues changed since the cursor; pushes comments and transitions by configurable names."""

    name = NAME

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        if problems := configuration_problems(settings):
            raise ConfigurationError("Jira — " + "; ".join(problems))
        self.settings = settings
        self.sleep = sleep
        self.policy = policy_from_settings(settings)
        self.breaker = breaker_from_settings(NAME, settings)
        self.zone = ZoneInfo(settings.JIRA_TIMEZONE)
        self.page_size = settings.CONNECTOR_PAGE_SIZE
        self.transitions = {status.lower(): name for status, name in settings.JIRA_TRANSITIONS.items()}
        projects = [p.strip() for p in settings.JIRA_PROJECTS.split(",") if p.strip()]
        self.base_jql = settings.JIRA_JQL or (f"project in ({', '.join(projects)})" if projects else "")
        self.max_attachment_bytes = settings.MAX_ATTACHMENT_BYTES
        self._client: JIRA | None = None

    @property
    def client(self) -> JIRA:
        """Connected on first use: the constructor asks the server for its version and deployment type."""
        if self._client is None:
            settings = self.settings
            verify: bool | str = settings.CONNECTOR_CA_BUNDLE or settings.JIRA_SSL_VERIFY

            def connect() -> JIRA:
                client = JIRA(
                    server=settings.JIRA_SERVER,
                    basic_auth=(settings.JIRA_USERNAME, settings.JIRA_API_TOKEN.get_secret_value()),
                    options={"verify": verify, "check_update": False},
                    timeout=self.policy.read_timeout,
                    max_retries=0,
                )
                if verify is not True:
                    # requests lets REQUESTS_CA_BUNDLE override a session's `verify`; JIRA_SSL_VERIFY must win.
                    client._session.trust_env = False
                return client

            self._client = self._call(connect)
        return self._client

    def _call(self, operation: Callable[[], T], *, idempotent: bool = True) -> T:
        def attempt() -> T:
            try:
                return operation()
            except JIRAError as error:
                raise _connector_error(error) from None
            except requests.exceptions.Timeout:
                raise UnreachableError(NAME, f"{_host(self.settings)}: timed out", retryable=True) from None
            except requests.exceptions.ConnectionError:
                raise UnreachableError(NAME, f"{_host(self.settings)}: connection failed", retryable=True) from None
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
                raise UnreachableError(
                    NAME, f"{_host(self.settings)}: the answer was cut off mid-body", retryable=True
                ) from None
            except ValueError as error:
                raise ConnectorError(NAME, f"{_host(self.settings)}: unreadable answer ({error})") from None

        return call_with_retry(
            attempt, policy=self.policy, breaker=self.breaker, sleep=self.sleep, idempotent=idempotent
        )

    def poll(self, cursor: str | None) -> Iterator[PolledPage]:
        position = _decode(cursor)
        jql = self._jql(position.get("updated"))
        token: str | None = None
        start = 0
        while True:
            body = self._search(jql, start, token)
            issues = body.get("issues")
            if not isinstance(issues, list):
                raise ConnectorError(NAME, "search answer has no `issues` list")
            items, rejected = [], []
            for issue in issues:
                if not isinstance(issue, dict) or not issue.get("key"):
                    continue
                updated = str((issue.get("fields") or {}).get("updated") or "")
                if _already_passed(updated, str(issue["key"]), position):
                    continue
                try:
                    items.append(self.to_ticket_in(issue))
                except (ValueError, ValidationError, KeyError, TypeError, ConnectorError) as error:
                    rejected.append(
                        RejectedItem(
                            str(issue["key"]),
                            f"{NAME} {issue['key']}: {error}"[:2000],
                            json.dumps(issue, default=str)[:100_000],
                        )
                    )
                if updated:
                    if updated != position.get("updated"):
                        position = {"updated": updated, "keys": []}
                    position["keys"].append(str(issue["key"]))
            if issues:
                yield PolledPage(items=items, cursor=json.dumps(position), rejected=rejected)
            token = body.get("nextPageToken")
            start += len(issues)
            more = token if self.client._is_cloud else start < int(body.get("total") or 0)
            if not issues or not more:
                return

    def _search(self, jql: str, start: int, token: str | None) -> dict[str, Any]:
        client = self.client
        if client._is_cloud:
            body = self._call(
                lambda: client.enhanced_search_issues(
                    jql, nextPageToken=token, maxResults=self.page_size, fields=list(FIELDS), json_result=True
                )
            )
        else:
            body = self._call(
                lambda: client.search_issues(
                    jql, startAt=start, maxResults=self.page_size, fields=list(FIELDS), json_result=True
                )
            )
        if not isinstance(body, dict):
            raise ConnectorError(NAME, "search answer is not a JSON object")
        return body

    def _jql(self, updated: str | None) -> str:
        conditions = [f"({self.base_jql})"] if self.base_jql else []
        if updated:
            local = parse_jira_time(updated).astimezone(self.zone)
            conditions.append(f'updated >= "{local:%Y/%m/%d %H:%M}"')
        return " AND ".join(conditions) + " ORDER BY updated ASC, key ASC"

    def to_ticket_in(self, issue: dict[str, Any]) -> TicketIn:
        fields = issue.get("fields") or {}
        reporter = fields.get("reporter") or {}
        if not reporter.get("emailAddress"):
            raise ValueError("the reporter's e-mail address is not visible to this account (profile privacy)")
        files = [
            self._download(meta)
            for meta in fields.get("attachment") or []
            if int(meta.get("size") or 0) <= self.max_attachment_bytes and meta.get("content")
        ]
        server = self.settings.JIRA_SERVER.rstrip("/")
        return TicketIn(
            source=NAME,
            external_id=str(issue["key"]),
            kind="ticket",
            requester_email=str(reporter["emailAddress"]),
            requester_name=reporter.get("displayName"),
            subject=str(fields.get("summary") or issue["key"]),
            body=_plain(fields.get("description")),
            priority=(fields.get("priority") or {}).get("name"),
            category=(fields.get("issuetype") or {}).get("name"),
            external_url=f"{server}/browse/{issue['key']}",
            updated_at=parse_jira_time(str(fields["updated"])) if fields.get("updated") else None,
            attachments=files,
            additional_info={
                NAME: {"key": issue["key"], "id": issue.get("id"), "status": (fields.get("status") or {}).get("name")}
            },
        )

    def _download(self, meta: dict[str, Any]) -> AttachmentIn:
        session = self.client._session
        response = self._call(lambda: session.get(str(meta["content"])))
        return AttachmentIn(
            filename=str(meta.get("filename") or "attachment")[:500],
            content_type=meta.get("mimeType"),
            data=response.content,
        )

    def push(self, update: SourceUpdate, *, check_first: bool = False) -> None:
        """A comment for every update; a status also runs the transition JIRA_TRANSITIONS names for it.

        Adding a comment is never repeated blindly: with `check_first` the issue's comments are searched for it.
        """
        client, key = self.client, update.external_id
        written = check_first and any(
            update.marker in (comment.body or "") for comment in self._call(lambda: client.comments(key))
        )
        if update.text and not written:
            self._call(lambda: client.add_comment(key, update.text), idempotent=False)
        if update.kind != "status" or not update.status:
            return
        wanted = self.transitions.get(update.status.lower())
        if wanted is None:
            return
        available = self._call(lambda: client.transitions(key))
        match = next((t for t in available if str(t.get("name", "")).lower() == wanted.lower()), None)
        if match is None:
            names = ", ".join(sorted(str(t.get("name")) for t in available)) or "none"
            raise ConnectorError(
                NAME,
                f"{key}: no transition named {wanted!r} for status {update.status} (JIRA_TRANSITIONS); "
                f"available from here: {names}",
            )
        fields = {"resolution": {"name": "Done"}} if update.status == TicketStatus.RESOLVED else None
        self._call(lambda: client.transition_issue(key, str(match["id"]), fields=fields))

    def ping(self) -> None:
        client = self.client
        self._call(lambda: client.myself())


def _connector_error(error: JIRAError) -> ConnectorError:
    status = error.status_code
    detail = (error.text or "").replace("\n", " ")[:300]
    try:
        body = json.loads(error.response.text) if error.response is not None else {}
        detail = "; ".join(body.get("errorMessages") or []) or detail
    except (ValueError, AttributeError):
        pass
    message = f"answered {status}: {detail}" if status else f"failed: {detail}"
    if status in (401, 403):
        return AuthenticationError(NAME, f"{message} (check JIRA_USERNAME and JIRA_API_TOKEN)", status=status)
    if status == 404:
        return NotFoundError(NAME, message, status=status)
    headers = error.response.headers if error.response is not None else {}
    retryable = status in (429, 500, 502, 503, 504)
    return ConnectorError(
        NAME, message, status=status, retryable=retryable, retry_after=parse_retry_after(headers.get("Retry-After"))
    )


def _already_passed(updated: str, key: str, position: dict[str, Any]) -> bool:
    """Whether a poll that stopped at `position` has handed this issue version over already."""
    if not updated or not position.get("updated"):
        return False
    this, last = parse_jira_time(updated), parse_jira_time(str(position["updated"]))
    return this < last or (this == last and key in position.get("keys", []))


def _host(settings: Settings) -> str:
    return url_host(settings.JIRA_SERVER)


def _decode(cursor: str | None) -> dict[str, Any]:
    try:
        position = json.loads(cursor) if cursor else {}
    except ValueError:
        position = {}
    return position if isinstance(position, dict) else {}


def _plain(description: Any) -> str:
    """Text of a description: a string in API v2, an Atlassian Document in v3."""
    if isinstance(description, str):
        return description
    if isinstance(description, dict):
        parts: list[str] = []

        def walk(node: dict[str, Any]) -> None:
            if node.get("type") == "text":
                parts.append(str(node.get("text", "")))
            for child in node.get("content") or []:
                walk(child)
            if node.get("type") == "paragraph":
                parts.append("\n")

        walk(description)
        return "".join(parts).strip()
    return ""


def parse_jira_time(value: str) -> datetime:
    """Jira's `2024-01-31T10:00:00.000+0000` timestamps."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
