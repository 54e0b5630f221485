"""Outlook / Microsoft 365 mailbox through Microsoft Graph: a delta query over one folder, app-only auth via msal.

The cursor is the `@odata.nextLink` or `@odata.deltaLink` Graph hands back, so each message is read
once and a restart resumes mid-round. New conversations become tickets; replies thread onto theirs by
`TCKT-<id>`, In-Reply-To/References or conversationId (ingest decides). Processed messages are marked
read after their page is committed.

An expired or unusable delta token is answered 410 Gone or, as the delta query overview says, with
another 40X error whose code names the sync state (`syncStateNotFound`, `syncStateInvalid`,
`resyncRequired`, ...; https://learn.microsoft.com/graph/delta-query-overview): the round then starts
again from scratch. That is safe because ingest keys every message by its Graph id (an ImmutableId),
and nothing else here depends on what was read before.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlsplit

import requests
from pydantic import Field, SecretStr, ValidationError

from connectors.base import (
    AttachmentIn,
    ConnectorSettings,
    PolledPage,
    RejectedItem,
    Required,
    TicketIn,
    message_id_key,
    require_configured,
    setting_problems,
)
from connectors.html_text import HiddenText, hidden_text_info, html_text
from connectors.http import (
    AuthenticationError,
    ConnectorError,
    HttpClient,
    MalformedResponseError,
    UnreachableError,
    VerifyingSession,
    breaker_from_settings,
    policy_from_settings,
    same_origin,
    url_host,
    verify_setting,
)

log = logging.getLogger(__name__)
NAME = "outlook"
SELECT = (
    "id,subject,body,from,sender,receivedDateTime,lastModifiedDateTime,conversationId,internetMessageId,"
    "internetMessageHeaders,hasAttachments,isRead"
)
RESYNC_CODES = ("syncstate", "resync", "deltatoken")
"""Graph error codes (lower-cased parts) that mean the stored delta or skip token can no longer be used."""
THREAD_HEADERS = (
    "in-reply-to",
    "references",
    "auto-submitted",
    "precedence",
    "x-autoreply",
    "x-auto-response-suppress",
    "list-id",
    "x-loop",
    "return-path",
    "authentication-results",
)

if TYPE_CHECKING:
    import msal


class GraphMailSettings(ConnectorSettings):
    """A Microsoft 365 mailbox read through Microsoft Graph with an app registration."""

    MS_GRAPH_CLIENT_ID: Annotated[str, Required()] = ""
    MS_GRAPH_CLIENT_SECRET: Annotated[
        SecretStr, Required("Azure portal → App registrations → Certificates & secrets")
    ] = SecretStr("")
    MS_GRAPH_TENANT_ID: Annotated[str, Required()] = ""
    MS_GRAPH_MAILBOX: Annotated[str, Required()] = ""
    MS_GRAPH_AUTHORITY_HOST: str = "https://login.microsoftonline.com"
    MS_GRAPH_BASE_URL: str = "https://graph.microsoft.com/v1.0"
    MS_GRAPH_FOLDER: str = "inbox"
    MS_GRAPH_POLL_INTERVAL_SECONDS: float = Field(default=30.0, gt=0)
    MS_GRAPH_CA_BUNDLE: str = ""
    """A private CA's PEM file, added to the system trust store for this connector only (CONNECTOR_CA_BUNDLE, by
    contrast, replaces the store for every connector)."""


def configuration_problems(settings: GraphMailSettings) -> list[str]:
    return setting_problems(
        settings,
        GraphMailSettings,
        MS_GRAPH_MAILBOX=lambda box: None if "@" in box else "must be the mailbox address, e.g. support@company.com",
        MS_GRAPH_AUTHORITY_HOST=lambda url: (
            None if urlsplit(url).scheme == "https" else "must be an https URL (msal accepts no other)"
        ),
    )


def is_configured(settings: GraphMailSettings) -> bool:
    return bool(settings.MS_GRAPH_CLIENT_ID or settings.MS_GRAPH_MAILBOX)


class GraphToken(requests.auth.AuthBase):
    """Bearer auth from msal's client-credentials flow; msal caches the token and renews it before expiry."""

    def __init__(self, settings: GraphMailSettings) -> None:
        self.settings = settings
        self.scope = [f"{_resource(settings.MS_GRAPH_BASE_URL)}/.default"]
        self._app: msal.ConfidentialClientApplication | None = None

    @property
    def app(self) -> msal.ConfidentialClientApplication:
        """Built on first use: msal fetches the tenant's OpenID configuration in its constructor (and takes 0.1 s to
        import, which a page listing the connectors does not need)."""
        import msal

        if self._app is None:
            settings = self.settings
            try:
                self._app = msal.ConfidentialClientApplication(
                    settings.MS_GRAPH_CLIENT_ID,
                    client_credential=settings.MS_GRAPH_CLIENT_SECRET.get_secret_value(),
                    authority=f"{settings.MS_GRAPH_AUTHORITY_HOST.rstrip('/')}/{settings.MS_GRAPH_TENANT_ID}",
                    http_client=VerifyingSession(verify_setting(settings, settings.MS_GRAPH_CA_BUNDLE)),
                    instance_discovery=settings.MS_GRAPH_AUTHORITY_HOST == "https://login.microsoftonline.com",
                    timeout=(settings.CONNECTOR_CONNECT_TIMEOUT_SECONDS, settings.CONNECTOR_READ_TIMEOUT_SECONDS),
                )
            except ValueError:
                raise AuthenticationError(
                    NAME,
                    f"tenant {settings.MS_GRAPH_TENANT_ID!r} not found at {settings.MS_GRAPH_AUTHORITY_HOST} "
                    "(check MS_GRAPH_TENANT_ID)",
                ) from None
            except requests.RequestException:
                host = url_host(settings.MS_GRAPH_AUTHORITY_HOST)
                raise UnreachableError(NAME, f"{host} unreachable", retryable=True) from None
        return self._app

    def token(self) -> str:
        try:
            result = self.app.acquire_token_for_client(scopes=self.scope)
        except requests.RequestException:
            raise UnreachableError(NAME, "token endpoint unreachable", retryable=True) from None
        if "access_token" not in result:
            description = str(result.get("error_description", "")).splitlines()[0][:200]
            raise AuthenticationError(
                NAME,
                f"token request refused: {result.get('error')}: {description} "
                "(check MS_GRAPH_CLIENT_ID, MS_GRAPH_CLIENT_SECRET and MS_GRAPH_TENANT_ID)",
            )
        return str(result["access_token"])

    def forget(self) -> None:
        """Drop the cached token, e.g. after Graph answered 401 to it."""
        if self._app is not None:
            self._app.remove_tokens_for_client()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request


def _resource(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


class GraphMailSource:
    """Polls one mailbox folder with a delta query; the cursor is Graph's own next/delta link."""

    name = NAME

    def __init__(self, settings: GraphMailSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        require_configured("Microsoft Graph", configuration_problems(settings))
        self.mailbox = settings.MS_GRAPH_MAILBOX
        self.folder = settings.MS_GRAPH_FOLDER
        self.page_size = settings.CONNECTOR_PAGE_SIZE
        self.max_attachment_bytes = settings.MAX_ATTACHMENT_BYTES
        self.auth = GraphToken(settings)
        self.base_url = settings.MS_GRAPH_BASE_URL
        self.http = HttpClient(
            NAME,
            settings.MS_GRAPH_BASE_URL,
            policy=policy_from_settings(settings),
            auth=self.auth,
            headers={"Prefer": f'IdType="ImmutableId", odata.maxpagesize={self.page_size}'},
            verify=verify_setting(settings, settings.MS_GRAPH_CA_BUNDLE),
            sleep=sleep,
            breaker=breaker_from_settings(NAME, settings),
        )
        self.http.session.hooks["response"].append(self._note_error_code)
        self.last_error_code = ""

    def _note_error_code(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Keep the `error.code` of a refused call: the status alone does not tell an expired token apart."""
        if response.status_code >= 400:
            try:
                self.last_error_code = str(response.json()["error"]["code"])
            except (ValueError, KeyError, TypeError):
                self.last_error_code = ""

    @property
    def _user(self) -> str:
        return f"users/{quote(self.mailbox)}"

    def call(self, method: str, path_or_url: str, **kwargs: Any) -> requests.Response:
        """One Graph call; a 401 once drops the cached token and tries again with a fresh one."""
        try:
            try:
                return self.http.request(method, path_or_url, **kwargs)
            except AuthenticationError as error:
                if error.status != 401:
                    raise
                self.auth.forget()
                return self.http.request(method, path_or_url, **kwargs)
        except AuthenticationError as error:
            if error.status != 403:
                raise
            raise AuthenticationError(
                NAME,
                f"mailbox {self.mailbox}: Microsoft Graph refused access (403 {self.last_error_code or 'Forbidden'}). "
                "The app registration needs the Mail.ReadWrite application permission (not delegated) with admin "
                "consent granted for the tenant; if an Exchange application access policy "
                "(New-ApplicationAccessPolicy) restricts the app, this mailbox must be in the group it allows "
                "(check with Test-ApplicationAccessPolicy)",
                status=403,
            ) from None

    def poll(self, cursor: str | None) -> Iterator[PolledPage]:
        if cursor and not self._ours(cursor):
            log.warning(
                "%s (mailbox %s): the stored delta link is not on MS_GRAPH_BASE_URL (%s); reading the folder again "
                "from the start, already known messages are skipped",
                NAME,
                self.mailbox,
                self.base_url,
            )
            cursor = None
        url = cursor or f"{self._user}/mailFolders/{quote(self.folder)}/messages/delta?$select={SELECT}"
        while True:
            try:
                body = json.loads(self.call("GET", url).content.decode("utf-8", errors="replace"))
            except ValueError:
                raise MalformedResponseError(NAME, "delta answer is not JSON") from None
            except ConnectorError as error:
                if cursor and self._token_expired(error):
                    log.warning(
                        "%s (Microsoft Graph, mailbox %s): the stored delta link can no longer be used (%s %s); "
                        "reading the folder again from the start, already known messages are skipped",
                        NAME,
                        self.mailbox,
                        error.status,
                        self.last_error_code or "Gone",
                    )
                    yield from self.poll(None)
                    return
                raise
            if not isinstance(body, dict) or not isinstance(body.get("value"), list):
                raise MalformedResponseError(NAME, "delta answer has no `value` list")
            next_link = body.get("@odata.nextLink")
            resume = next_link or body.get("@odata.deltaLink")
            if resume is not None and not (isinstance(resume, str) and self._ours(resume)):
                raise MalformedResponseError(
                    NAME,
                    "the delta answer's next or delta link is not on MS_GRAPH_BASE_URL "
                    f"({self.base_url}); it is not followed, so the token goes nowhere else",
                )
            items, rejected, processed = self._read(body["value"])
            if items or rejected or resume != url:
                yield PolledPage(items=items, cursor=resume, rejected=rejected)
            self._mark_read(processed)
            if not next_link:
                return
            url = next_link

    def _ours(self, link: str) -> bool:
        """A link from an answer (or a cursor made of one) is followed with our token only on Graph's own origin."""
        return "://" not in link or same_origin(link, self.base_url)

    def _token_expired(self, error: ConnectorError) -> bool:
        """410 Gone, or a 40X whose code names the sync state: the delta token has to be thrown away."""
        if error.status == 410:
            return True
        code = self.last_error_code.lower()
        return error.status is not None and 400 <= error.status < 500 and any(part in code for part in RESYNC_CODES)

    def _read(self, values: list[Any]) -> tuple[list[TicketIn], list[RejectedItem], list[str]]:
        items, rejected, processed = [], [], []
        for message in values:
            if not isinstance(message, dict) or "@removed" in message or not message.get("id"):
                continue
            try:
                items.append(self.to_ticket_in(message))
                if not message.get("isRead"):  # marking a read message again would echo it back in every round
                    processed.append(str(message["id"]))
            except (ValueError, ValidationError, KeyError, TypeError, ConnectorError) as error:
                rejected.append(
                    RejectedItem(
                        str(message.get("id")),
                        f"{NAME} message: {error}"[:2000],
                        json.dumps(message, default=str)[:100_000],
                    )
                )
        return items, rejected, processed

    def to_ticket_in(self, message: dict[str, Any]) -> TicketIn:
        """One Graph message as a source item: vendor ids for threading, real timestamps, its attachments."""
        sender = (message.get("from") or message.get("sender") or {}).get("emailAddress") or {}
        if not sender.get("address"):
            raise ValueError("message has no sender address")
        headers = {
            str(h.get("name")).lower(): str(h.get("value"))
            for h in message.get("internetMessageHeaders") or []
            if isinstance(h, dict) and str(h.get("name")).lower() in THREAD_HEADERS
        }
        body = message.get("body") or {}
        text = str(body.get("content") or "")
        hidden: list[HiddenText] = []
        if str(body.get("contentType", "")).lower() == "html":
            text, hidden = html_text(text)
        attachments, notes = self._attachments(message) if message.get("hasAttachments") else ([], [])
        stamp = message.get("lastModifiedDateTime") or message.get("receivedDateTime")
        return TicketIn(
            source=NAME,
            external_id=str(message["id"]),
            kind="email",
            requester_email=str(sender["address"]),
            requester_name=sender.get("name"),
            subject=str(message.get("subject") or ""),
            body=text,
            updated_at=parse_graph_time(str(stamp)) if stamp else None,
            thread_id=message.get("conversationId"),
            message_id=message_id_key(str(message.get("internetMessageId") or "")) or None,
            in_reply_to=message_id_key(headers.get("in-reply-to", "")) or None,
            references=[message_id_key(value) for value in headers.get("references", "").split()],
            headers={key.title(): value for key, value in headers.items()},
            attachments=attachments,
            additional_info={
                **({NAME: {"skipped_attachments": notes}} if notes else {}),
                **hidden_text_info(hidden),
            },
        )

    def _attachments(self, message: dict[str, Any]) -> tuple[list[AttachmentIn], list[str]]:
        """File attachments and inline images as bytes; an attached message (or event, contact) as its MIME text, an
        .eml file; reference attachments (links to cloud files) are noted and skipped."""
        response = self.call("GET", f"{self._user}/messages/{quote(str(message['id']))}/attachments")
        try:
            values = json.loads(response.content)["value"]
        except (ValueError, KeyError, TypeError):
            raise MalformedResponseError(NAME, "attachments answer has no `value` list") from None
        files, notes = [], []
        for attachment in values:
            kind = str(attachment.get("@odata.type", ""))
            name = str(attachment.get("name") or "attachment")[:500]
            if kind == "#microsoft.graph.itemAttachment":
                files.append(self._item_attachment(message, attachment, name))
                continue
            if kind != "#microsoft.graph.fileAttachment":
                notes.append(f"{name}: {kind.rsplit('.', 1)[-1] or 'unknown'} not imported")
                continue
            stated = attachment.get("size") if isinstance(attachment.get("size"), int) else None
            content = attachment.get("contentBytes")
            limit = self.max_attachment_bytes
            if (stated or 0) > limit or (isinstance(content, str) and len(content) > 4 * -(-limit // 3)):
                files.append(_too_large(name, attachment.get("contentType"), limit, stated))
                continue  # the stated size is only what the message says: the content's own length decides too
            if not content or not isinstance(content, str):
                notes.append(f"{name}: empty, not imported")
                continue
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                notes.append(f"{name}: content is not valid base64")
                continue
            files.append(AttachmentIn(filename=name, content_type=attachment.get("contentType"), data=data))
        return files, notes

    def _item_attachment(self, message: dict[str, Any], attachment: dict[str, Any], name: str) -> AttachmentIn:
        """An attached Outlook item by its raw contents (`/$value`: MIME for a message, and for an event or contact
        too), kept as an .eml file the attachment reader opens, instead of lost."""
        filename = name if name.lower().endswith(".eml") else f"{name}.eml"
        stated = attachment.get("size") if isinstance(attachment.get("size"), int) else None
        limit = self.max_attachment_bytes
        if (stated or 0) > limit:
            return _too_large(filename, "message/rfc822", limit, stated)
        path = f"{self._user}/messages/{quote(str(message['id']))}/attachments/{quote(str(attachment['id']))}/$value"
        data = self.call("GET", path).content
        if len(data) > limit:
            return _too_large(filename, "message/rfc822", limit, len(data))
        return AttachmentIn(filename=filename, content_type="message/rfc822", data=data)

    def _mark_read(self, message_ids: list[str]) -> None:
        """After the page is committed: flag each message read, so people see what the desk took in."""
        for message_id in message_ids:
            try:
                self.call("PATCH", f"{self._user}/messages/{quote(message_id)}", json={"isRead": True})
            except ConnectorError as error:
                log.warning("could not mark %s message as read: %s", NAME, error)

    def ping(self) -> None:
        self.call("GET", f"{self._user}/mailFolders/{quote(self.folder)}", params={"$select": "id"})


def _too_large(name: str, content_type: str | None, limit: int, stated: int | None) -> AttachmentIn:
    log.warning("%s attachment %s not imported: larger than %s bytes", NAME, name, limit)
    reason = f"larger than the {limit}-byte limit (MAX_ATTACHMENT_BYTES)"
    return AttachmentIn(
        filename=name,
        content_type=content_type,
        data=b"",
        left_at_source="too_large",
        reason=reason,
        declared_size=stated,
    )


def parse_graph_time(value: str) -> datetime:
    """Graph's ISO 8601 UTC timestamps (`2024-01-31T10:00:00Z`, sometimes with fractions)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
