"""Jira: issues and their reporters' comments polled by JQL on `updated` (the `jira` library); notes and
transitions written back.

Reading follows the deployment: Jira Cloud is read through REST v3, whose bodies are Atlassian Document
Format (mentions keep their names there), Server and Data Center through REST v2, whose bodies are wiki
markup; both are turned into readable text wherever they appear. Writing uses v2, which takes plain text
on both. JQL compares `updated` at minute precision in the account's own time zone (`/myself`
`timeZone`, JIRA_TIMEZONE overrides it), so each poll asks from the minute of the last issue seen and
skips issues it has already passed at that timestamp. The cursor also keeps the start of the window
(JIRA_START_AT, else the moment of the first poll) and the attachment ids already fetched per issue.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import requests
from jira import JIRA, JIRAError
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
    NotFoundError,
    UnreachableError,
    breaker_from_settings,
    call_with_retry,
    origin,
    parse_retry_after,
    policy_from_settings,
    read_capped,
    same_origin,
    url_host,
    verify_setting,
)

log = logging.getLogger(__name__)
NAME = "jira"
FIELDS = [
    "summary",
    "description",
    "reporter",
    "assignee",
    "priority",
    "issuetype",
    "updated",
    "attachment",
    "status",
    "comment",
    "resolution",
]
START_FORMAT = "%Y-%m-%d %H:%M"
OUR_NOTE = re.compile(r"· event \d+\]")
"""The end of the tag engine/delivery/sync.py opens every written note with (SourceUpdate.marker)."""
REMEMBERED_ISSUES = 5000
COMMENT_PAGE = 100
T = TypeVar("T")


class JiraSettings(ConnectorSettings):
    """Jira (Cloud or Data Center): the server, its credentials, what to poll and how to move issues."""

    JIRA_SERVER: Annotated[str, Required("e.g. https://your-domain.atlassian.net")] = ""
    JIRA_USERNAME: Annotated[str, Required("the account's e-mail address")] = ""
    JIRA_API_TOKEN: Annotated[SecretStr, Required("Atlassian account → Security → API tokens")] = SecretStr("")
    JIRA_SSL_VERIFY: bool = True
    JIRA_CA_BUNDLE: str = ""
    """A private CA's PEM file, added to the system trust store for this connector only (CONNECTOR_CA_BUNDLE, by
    contrast, replaces the store for every connector)."""
    JIRA_PROJECTS: str = ""
    JIRA_JQL: str = ""
    JIRA_TIMEZONE: str = ""
    """Override only: by default the zone JQL dates are read in is the account's own (`/rest/api/2/myself`)."""
    JIRA_START_AT: str = ""
    """Issues updated before this (`2026-01-31 23:59`, UTC) are not polled; empty: from when first configured."""
    JIRA_INTERNAL_NOTES: Literal["jsm", "property", "none"] = "none"
    """How internal notes reach Jira: `jsm` (Service Management request comment, public false), `property`
    (`sd.public.comment` internal), `none` (not written: in Jira Software every comment is visible)."""
    JIRA_TRANSITIONS: dict[str, str] = Field(default_factory=dict)
    JIRA_POLL_INTERVAL_SECONDS: float = Field(default=60.0, gt=0)


def configuration_problems(settings: JiraSettings) -> list[str]:
    return setting_problems(
        settings,
        JiraSettings,
        JIRA_SERVER=lambda url: None if urlsplit(url).scheme in ("http", "https") else "must start with https://",
        JIRA_TIMEZONE=_known_zone,
        JIRA_START_AT=timestamp_check(START_FORMAT, "2026-01-31 23:59 (UTC)"),
    )


def _known_zone(name: str) -> str | None:
    if not name or _zone(name) is not None:
        return None
    return f"unknown time zone {name!r} (e.g. Europe/Berlin; leave empty to use the Jira account's own)"


def is_configured(settings: JiraSettings) -> bool:
    return bool(settings.JIRA_SERVER or settings.JIRA_USERNAME)


class JiraSource:
    """Polls issues changed since the cursor and their reporters' comments; pushes notes and named transitions."""

    name = NAME

    def __init__(self, settings: JiraSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        require_configured("Jira", configuration_problems(settings))
        self.settings = settings
        self.sleep = sleep
        self.policy = policy_from_settings(settings)
        self.breaker = breaker_from_settings(NAME, settings)
        self.zone_override = _zone(settings.JIRA_TIMEZONE) if settings.JIRA_TIMEZONE else None
        self.start_at = (
            datetime.strptime(settings.JIRA_START_AT, START_FORMAT).replace(tzinfo=UTC)
            if settings.JIRA_START_AT
            else None
        )
        self.internal_notes = settings.JIRA_INTERNAL_NOTES
        self.page_size = settings.CONNECTOR_PAGE_SIZE
        self.transitions = {status.lower(): name for status, name in settings.JIRA_TRANSITIONS.items()}
        projects = [p.strip() for p in settings.JIRA_PROJECTS.split(",") if p.strip()]
        self.base_jql = settings.JIRA_JQL or (f"project in ({', '.join(projects)})" if projects else "")
        self.max_attachment_bytes = settings.MAX_ATTACHMENT_BYTES
        self._client: JIRA | None = None
        self._me: dict[str, Any] | None = None

    @property
    def client(self) -> JIRA:
        """Connected on first use: the constructor asks the server for its version and deployment type."""
        if self._client is None:
            settings = self.settings
            verify: bool | str = settings.JIRA_SSL_VERIFY and verify_setting(settings, settings.JIRA_CA_BUNDLE)

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

    @property
    def me(self) -> dict[str, Any]:
        """The integration account (`/myself`): its comments are ours, its time zone is the one JQL reads."""
        if self._me is None:
            client = self.client
            self._me = self._call(lambda: client.myself())
        return self._me

    @property
    def zone(self) -> ZoneInfo:
        if self.zone_override is not None:
            return self.zone_override
        name = str(self.me.get("timeZone") or "")
        zone = _zone(name)
        if zone is None:
            log.warning("%s: the account's time zone %r is unknown; reading JQL dates as UTC", NAME, name)
            return ZoneInfo("UTC")
        return zone

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

    def _read(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """GET one REST resource in the version the deployment speaks natively (v3 on Cloud, v2 elsewhere)."""
        client = self.client
        base = "{server}/rest/api/3/{path}" if client._is_cloud else JIRA.JIRA_BASE_URL
        body = self._call(lambda: client._get_json(path, params=params, base=base))
        if not isinstance(body, dict):
            raise ConnectorError(NAME, f"{path}: the answer is not a JSON object")
        return body

    def poll(self, cursor: str | None) -> Iterator[PolledPage]:
        position = _decode(cursor)
        if not position.get("start"):
            position["start"] = (self.start_at or datetime.now(UTC)).strftime(START_FORMAT)
        fetched: dict[str, list[str]] = position.setdefault("attachments", {})
        since = parse_jira_time(position["updated"]) if position.get("updated") else _start(position)
        jql = self._jql(since)
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
                    items.extend(self.issue_items(issue, fetched))
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
                        position.update(updated=updated, keys=[])
                    position["keys"].append(str(issue["key"]))
            _forget_oldest(fetched)
            if issues or cursor is None:
                yield PolledPage(items=items, cursor=json.dumps(position), rejected=rejected)
            token = body.get("nextPageToken")
            start += len(issues)
            more = token if self.client._is_cloud else start < int(body.get("total") or 0)
            if not issues or not more:
                return

    def _search(self, jql: str, start: int, token: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {"jql": jql, "maxResults": self.page_size, "fields": ",".join(FIELDS)}
        if self.client._is_cloud:
            return self._read("search/jql", {**params, **({"nextPageToken": token} if token else {})})
        return self._read("search", {**params, "startAt": start})

    def _window_start(self, cursor: str | None) -> datetime:
        position = _decode(cursor)
        if position.get("start"):
            return _start(position)
        return (self.start_at or datetime.now(UTC)).replace(second=0, microsecond=0)

    def _open_jql(self, start: datetime) -> str:
        """Issues not done (status category Done) and last updated before the window starts."""
        conditions = [f"({self.base_jql})"] if self.base_jql else []
        conditions += ["statusCategory != Done", f'updated < "{start.astimezone(self.zone):%Y/%m/%d %H:%M}"']
        return " AND ".join(conditions)

    def open_before_window(self, cursor: str | None) -> OpenBacklog:
        """Server: the search's `total` with maxResults=0. Cloud, whose enhanced search has no total: the
        approximate count (`POST /rest/api/3/search/approximate-count`, "Provide an estimated count of the issues
        that match the JQL", developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/)."""
        start = self._window_start(cursor)
        jql = self._open_jql(start)
        client = self.client
        if client._is_cloud:
            url = f"{self.settings.JIRA_SERVER.rstrip('/')}/rest/api/3/search/approximate-count"
            response = self._call(lambda: client._session.post(url, data=json.dumps({"jql": jql})))
            count, approximate = response.json().get("count"), True
        else:
            count, approximate = self._read("search", {"jql": jql, "maxResults": 0}).get("total"), False
        if not isinstance(count, int):
            raise ConnectorError(NAME, "the issue count is missing from the answer")
        return OpenBacklog(count=count, window_start=start.strftime(START_FORMAT), approximate=approximate)

    def open_backlog(self, cursor: str | None) -> Iterator[PolledPage]:
        """The open issues before the window, oldest first, as backlog tickets; see `BacklogSource`."""
        jql = self._open_jql(self._window_start(cursor)) + " ORDER BY updated ASC, key ASC"
        token: str | None = None
        start = 0
        while True:
            body = self._search(jql, start, token)
            issues = [issue for issue in body.get("issues") or [] if isinstance(issue, dict) and issue.get("key")]
            items, rejected = [], []
            for issue in issues:
                try:
                    ticket = self.to_ticket_in(issue, {})
                except (ValueError, ValidationError, KeyError, TypeError, ConnectorError) as error:
                    rejected.append(
                        RejectedItem(
                            str(issue["key"]), f"{NAME} {issue['key']}: {error}"[:2000], json.dumps(issue)[:100_000]
                        )
                    )
                    continue
                items.append(ticket.model_copy(update={"additional_info": {**ticket.additional_info, "backlog": True}}))
            if issues:
                yield PolledPage(items=items, cursor=None, rejected=rejected)
            token = body.get("nextPageToken")
            start += len(body.get("issues") or [])
            more = token if self.client._is_cloud else start < int(body.get("total") or 0)
            if not body.get("issues") or not more:
                return

    def _jql(self, since: datetime) -> str:
        conditions = [f"({self.base_jql})"] if self.base_jql else []
        conditions.append(f'updated >= "{since.astimezone(self.zone):%Y/%m/%d %H:%M}"')
        return " AND ".join(conditions) + " ORDER BY updated ASC, key ASC"

    def issue_items(self, issue: dict[str, Any], fetched: dict[str, list[str]]) -> list[TicketIn]:
        """The issue, then its reporter's comments; an issue already done when seen is history, without replies."""
        ticket = self.to_ticket_in(issue, fetched)
        if ticket.history:
            return [ticket]
        return [ticket, *self._reporter_comments(issue, ticket)]

    def to_ticket_in(self, issue: dict[str, Any], fetched: dict[str, list[str]] | None = None) -> TicketIn:
        fields = issue.get("fields") or {}
        key = str(issue["key"])
        reporter = fields.get("reporter") or {}
        if not reporter.get("emailAddress"):
            raise ValueError("the reporter's e-mail address is not visible to this account (profile privacy)")
        status = fields.get("status") or {}
        return TicketIn(
            source=NAME,
            external_id=key,
            kind="ticket",
            history=str((status.get("statusCategory") or {}).get("key") or "") == "done",
            requester_email=str(reporter["emailAddress"]),
            requester_name=reporter.get("displayName"),
            requester_name_from_directory=True,
            subject=str(fields.get("summary") or key),
            body=readable_text(fields.get("description"), _names(issue)),
            priority=(fields.get("priority") or {}).get("name"),
            category=(fields.get("issuetype") or {}).get("name"),
            external_url=f"{self.settings.JIRA_SERVER.rstrip('/')}/browse/{key}",
            updated_at=parse_jira_time(str(fields["updated"])) if fields.get("updated") else None,
            attachments=self._new_attachments(key, fields.get("attachment") or [], fetched),
            additional_info={
                NAME: {"key": key, "id": issue.get("id"), "status": status.get("name")},
                **({"resolution": resolution} if (resolution := (fields.get("resolution") or {}).get("name")) else {}),
            },
        )

    def _new_attachments(
        self, key: str, metas: list[dict[str, Any]], fetched: dict[str, list[str]] | None
    ) -> list[AttachmentIn]:
        """Attachments not fetched on an earlier poll: every write-back bumps `updated`, the files stay the same."""
        known = fetched.pop(key, []) if fetched is not None else []
        files = []
        for meta in metas:
            attachment_id = str(meta.get("id") or meta.get("content"))
            if attachment_id in known or not meta.get("content"):
                continue
            files.append(self._download(key, meta))
            known.append(attachment_id)
        if fetched is not None and known:
            fetched[key] = known
        return files

    def _download(self, key: str, meta: dict[str, Any]) -> AttachmentIn:
        """The file at the attachment's `content` URL, with the Jira credentials only from JIRA_SERVER's own origin,
        streamed and cut off past MAX_ATTACHMENT_BYTES whatever its declared size says; otherwise left at the
        source with the reason (the ticket shows it and waits for a person)."""
        name = str(meta.get("filename") or "attachment")[:500]
        url, limit = str(meta["content"]), self.max_attachment_bytes
        declared = meta.get("size") if isinstance(meta.get("size"), int) else None

        def left(status: Literal["too_large", "not_fetched"], reason: str) -> AttachmentIn:
            log.warning("%s %s: attachment %s not fetched: %s", NAME, key, name, reason)
            return AttachmentIn(
                filename=name,
                content_type=meta.get("mimeType"),
                data=b"",
                left_at_source=status,
                reason=reason,
                declared_size=declared,
            )

        if not same_origin(url, self.settings.JIRA_SERVER):
            where = origin(url)
            host = f"{where[1]}:{where[2]}" if where else "an address that is not a plain http(s) URL"
            return left("not_fetched", f"its download address is on {host}, not on the Jira server (JIRA_SERVER)")
        too_large = f"larger than the {limit}-byte limit (MAX_ATTACHMENT_BYTES)"
        if declared is not None and declared > limit:
            return left("too_large", too_large)
        session = self.client._session
        data = self._call(lambda: read_capped(session.get(url, stream=True), limit))
        if data is None:
            return left("too_large", too_large)
        return AttachmentIn(filename=name, content_type=meta.get("mimeType"), data=data)

    def _reporter_comments(self, issue: dict[str, Any], ticket: TicketIn) -> list[TicketIn]:
        """The reporter's visible comments as replies; ours (by author or note tag) and other people's are not."""
        fields = issue.get("fields") or {}
        key, reporter, names = str(issue["key"]), fields.get("reporter") or {}, _names(issue)
        replies = []
        for comment in self._comments(key, fields.get("comment")):
            text = readable_text(comment.get("body"), names)
            author = comment.get("author") or {}
            if comment.get("jsdPublic") is False or OUR_NOTE.search(text) or _same_user(author, self.me):
                continue
            if not _same_user(author, reporter):
                continue
            stamp = comment.get("updated") or comment.get("created")
            replies.append(
                TicketIn(
                    source=NAME,
                    external_id=f"{key}#comment-{comment['id']}",
                    kind="comment",
                    parent_external_id=key,
                    requester_email=ticket.requester_email,
                    requester_name=author.get("displayName") or ticket.requester_name,
                    requester_name_from_directory=True,
                    subject=f"Re: {ticket.subject}",
                    body=text,
                    external_url=f"{ticket.external_url}?focusedCommentId={comment['id']}",
                    updated_at=parse_jira_time(str(stamp)) if stamp else None,
                )
            )
        return replies

    def _comments(self, key: str, embedded: Any = None) -> Iterator[dict[str, Any]]:
        """Every comment of an issue: the search answer's first page, then `/issue/{key}/comment` pages."""
        page = embedded if isinstance(embedded, dict) else self._read(f"issue/{key}/comment", {"startAt": 0})
        while True:
            comments = [c for c in page.get("comments") or [] if isinstance(c, dict) and c.get("id")]
            yield from comments
            seen = int(page.get("startAt") or 0) + len(page.get("comments") or [])
            if not comments or seen >= int(page.get("total") or 0):
                return
            page = self._read(f"issue/{key}/comment", {"startAt": seen, "maxResults": COMMENT_PAGE})

    def push(self, update: SourceUpdate, *, check_first: bool = False) -> None:
        """A note as a comment (internal ones as JIRA_INTERNAL_NOTES says); a status also runs its transition.

        The transition is looked up first, so a workflow that refuses it fails the event before anything is
        written. Adding a comment is never repeated blindly: with `check_first` the comments are searched for it.
        """
        key = update.external_id
        transition = self._transition_for(update)
        if update.text and (update.public or self.internal_notes != "none"):
            written = check_first and any(
                update.marker in readable_text(comment.get("body"), {}) for comment in self._comments(key)
            )
            if not written:
                self._comment(key, wiki_literal(update.text, update.quote), public=update.public)
        if transition is not None:
            client = self.client
            fields = {"resolution": {"name": "Done"}} if update.status == TicketStatus.RESOLVED else None
            self._call(lambda: client.transition_issue(key, transition, fields=fields))

    def _transition_for(self, update: SourceUpdate) -> str | None:
        """The id of the transition JIRA_TRANSITIONS names for this status, if the issue's workflow offers it."""
        if update.kind != "status" or not update.status:
            return None
        wanted = self.transitions.get(update.status.lower())
        if wanted is None:
            return None
        client, key = self.client, update.external_id
        available = self._call(lambda: client.transitions(key))
        match = next((t for t in available if str(t.get("name", "")).lower() == wanted.lower()), None)
        if match is None:
            names = ", ".join(sorted(str(t.get("name")) for t in available)) or "none"
            raise ConnectorError(
                NAME,
                f"{key}: the workflow offers no transition named {wanted!r} for status {update.status} "
                f"(JIRA_TRANSITIONS); available from here: {names}",
                status=409,
            )
        return str(match["id"])

    def _comment(self, key: str, text: str, *, public: bool) -> None:
        """One comment: through Service Management with its visibility, as an internal property, or plain."""
        client = self.client
        if self.internal_notes == "jsm":
            url = f"{self.settings.JIRA_SERVER.rstrip('/')}/rest/servicedeskapi/request/{key}/comment"
            payload = json.dumps({"body": text, "public": public})
            self._call(lambda: client._session.post(url, data=payload), idempotent=False)
        else:
            internal = self.internal_notes == "property" and not public
            self._call(lambda: client.add_comment(key, text, is_internal=internal), idempotent=False)

    def ping(self) -> None:
        self._me = None
        _ = self.me


OUR_TAG = re.compile(r"^\[No-Touch Support [^\]\n]{1,60}· event \d+\] ")
WIKI_ACTIVE = re.compile(r"[\[\]{}!|]")
FULLWIDTH_BRACES = str.maketrans({"{": "｛", "}": "｝"})


def wiki_literal(text: str, quote: str = "") -> str:
    """Plain text as Jira wiki markup (what REST v2 and the Service Management comment API take, on Cloud too) that
    shows as written, and a customer's words below it in a {noformat} block.

    Per the notation (https://jira.atlassian.com/secure/WikiRendererHelpAction.jspa?section=all), `[` opens links
    and mentions (`[~accountid:…]`), `{` macros (`{html}`, `{color}`), `!` images (`!http://…!`), `|` tables; each is
    escaped with the notation's backslash. A backslash of the text would pair with ours (`\\` is a line break), so
    it becomes a fullwidth one. Our note's opening tag is kept as written: it is how a note is found again. Inside
    {noformat} nothing is markup, no link or mention is made; braces become fullwidth there, so the customer cannot
    close the block.
    """
    tag = match.group(0) if (match := OUR_TAG.match(text)) else ""
    body = text[len(tag) :].translate({ord("\\"): "＼"})
    out = tag + WIKI_ACTIVE.sub(lambda found: "\\" + found.group(0), body)
    if quote:
        out += "\n{noformat}\n" + quote.translate(FULLWIDTH_BRACES) + "\n{noformat}"
    return out


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


def _forget_oldest(fetched: dict[str, list[str]]) -> None:
    """Keep the attachment memory to the issues seen most recently, so the cursor stays small."""
    for key in list(fetched)[: max(0, len(fetched) - REMEMBERED_ISSUES)]:
        del fetched[key]


def _same_user(one: dict[str, Any], other: dict[str, Any]) -> bool:
    """Cloud names people by accountId, Server and Data Center by name/key; e-mail only when neither is there."""
    for attribute in ("accountId", "name", "key", "emailAddress"):
        if one.get(attribute) and other.get(attribute):
            return str(one[attribute]).lower() == str(other[attribute]).lower()
    return False


def _names(issue: dict[str, Any]) -> dict[str, str]:
    """Display names of the people an issue shows, by accountId and user name, for wiki-markup mentions."""
    fields = issue.get("fields") or {}
    people = [fields.get("reporter"), fields.get("assignee")]
    people += [c.get("author") for c in (fields.get("comment") or {}).get("comments") or [] if isinstance(c, dict)]
    names = {}
    for person in people:
        if isinstance(person, dict) and person.get("displayName"):
            for attribute in ("accountId", "name", "key"):
                if person.get(attribute):
                    names[str(person[attribute])] = str(person["displayName"])
    return names


def _host(settings: JiraSettings) -> str:
    return url_host(settings.JIRA_SERVER)


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _decode(cursor: str | None) -> dict[str, Any]:
    try:
        position = json.loads(cursor) if cursor else {}
    except ValueError:
        position = {}
    return position if isinstance(position, dict) else {}


def _start(position: dict[str, Any]) -> datetime:
    return datetime.strptime(str(position["start"]), START_FORMAT).replace(tzinfo=UTC)


def readable_text(body: Any, names: dict[str, str]) -> str:
    """Text of a description or comment: Atlassian Document Format (REST v3) or wiki markup (REST v2)."""
    if isinstance(body, dict):
        return _collapse(_adf(body))
    if isinstance(body, str):
        return _collapse(wiki_text(body, names))
    return ""


BLOCKS = frozenset({"paragraph", "heading", "blockquote", "panel", "expand", "nestedExpand", "mediaSingle"})


def _adf(node: dict[str, Any], depth: int = 0) -> str:
    """One ADF node as text (https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/)."""
    kind, attrs = node.get("type"), node.get("attrs") or {}
    children = [child for child in node.get("content") or [] if isinstance(child, dict)]
    if kind == "text":
        text = str(node.get("text", ""))
        link = next((m.get("attrs", {}).get("href") for m in node.get("marks") or [] if m.get("type") == "link"), None)
        return f"{text} ({link})" if link and link != text else text
    if kind == "hardBreak":
        return "\n"
    if kind == "mention":
        name = str(attrs.get("text") or attrs.get("displayName") or "someone")
        return name if name.startswith("@") else f"@{name}"
    if kind == "emoji":
        return str(attrs.get("text") or attrs.get("shortName") or "")
    if kind in ("inlineCard", "blockCard", "embedCard"):
        url = str(attrs.get("url") or (attrs.get("data") or {}).get("url") or "")
        return url if kind == "inlineCard" else f"{url}\n\n"
    if kind in ("status", "date"):
        return str(attrs.get("text") or attrs.get("timestamp") or "")
    if kind == "rule":
        return "---\n\n"
    if kind == "codeBlock":
        return "```\n" + "".join(_adf(child) for child in children) + "\n```\n\n"
    if kind in ("bulletList", "orderedList"):
        start = int(attrs.get("order") or 1)
        lines = []
        for number, item in enumerate(children, start=start):
            bullet = f"{number}." if kind == "orderedList" else "-"
            text = _adf(item, depth + 1).strip("\n")
            lines.append("  " * depth + f"{bullet} {text}")
        return "\n".join(lines) + "\n" + ("" if depth else "\n")
    if kind == "listItem":
        return "\n".join(_adf(child, depth).strip("\n") for child in children)
    if kind == "table":
        return "\n".join(_adf(row) for row in children) + "\n\n"
    if kind == "tableRow":
        return " | ".join(_adf(cell).strip() for cell in children)
    if kind in ("tableCell", "tableHeader"):
        return " ".join(_adf(child).strip() for child in children)
    text = "".join(_adf(child, depth) for child in children)
    return f"{text}\n\n" if kind in BLOCKS else text


WIKI_RULES: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"^h[1-6]\.\s*", re.MULTILINE), ""),
    (re.compile(r"^bq\.\s*", re.MULTILINE), "> "),
    (re.compile(r"\{(?:quote|panel(?::[^}]*)?)\}"), ""),
    (re.compile(r"\{color(?::[^}]*)?\}"), ""),
    (re.compile(r"^\s*[*\-]+\s+", re.MULTILINE), "- "),
    (re.compile(r"^\s*#+\s+", re.MULTILINE), "1. "),
    (
        re.compile(r"^\|\|?(.*?)\|\|?[ \t]*$", re.MULTILINE),
        lambda m: " | ".join(cell.strip() for cell in re.split(r"\|\|?", m.group(1))),
    ),
    (re.compile(r"\\\\"), "\n"),
    (re.compile(r"(?<![\w*])\*(\S(?:[^*\n]*\S)?)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<![\w_])_(\S(?:[^_\n]*\S)?)_(?![\w_])"), r"\1"),
    (re.compile(r"\{\{(.+?)\}\}"), r"\1"),
]
WIKI_CODE = re.compile(r"\{(code|noformat)(?::[^}]*)?\}(.*?)\{\1\}", re.DOTALL)
WIKI_LINK = re.compile(r"\[([^\[\]|]+)\|([^\[\]]+)\]|\[((?:https?|mailto):[^\[\]]+)\]")
WIKI_MENTION = re.compile(r"\[~(?:accountid:)?([^\[\]]+)\]")


def wiki_text(markup: str, names: dict[str, str]) -> str:
    """Jira wiki markup (https://jira.atlassian.com/secure/WikiRendererHelpAction.jspa) as plain text.

    Code and noformat blocks are kept verbatim; mentions become "@Name" where the issue shows that person.
    """
    pieces = WIKI_CODE.split(markup)
    out = []
    for index in range(0, len(pieces), 3):
        out.append(_wiki_prose(pieces[index], names))
        if index + 2 < len(pieces):
            out.append("\n```\n" + pieces[index + 2].strip("\n") + "\n```\n")
    return "".join(out)


def _wiki_prose(text: str, names: dict[str, str]) -> str:
    text = WIKI_MENTION.sub(lambda m: "@" + names.get(m.group(1), m.group(1).split(":")[-1]), text)
    text = WIKI_LINK.sub(
        lambda m: m.group(3) or (m.group(2) if m.group(1) == m.group(2) else f"{m.group(1)} ({m.group(2)})"), text
    )
    for pattern, replacement in WIKI_RULES:
        text = pattern.sub(replacement, text)
    return text


def _collapse(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.splitlines())).strip()


def parse_jira_time(value: str) -> datetime:
    """Jira's `2024-01-31T10:00:00.000+0000` timestamps."""
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z")
