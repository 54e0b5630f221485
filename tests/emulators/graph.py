"""Microsoft identity platform and Microsoft Graph mail emulators.

Identity (HTTPS, as msal requires): `GET /{tenant}/v2.0/.well-known/openid-configuration` and the
client-credentials grant `POST /{tenant}/oauth2/v2.0/token` (grant_type, client_id, client_secret,
scope `https://graph.microsoft.com/.default` → `{"token_type": "Bearer", "expires_in", "access_token"}`;
errors as `{"error": "invalid_client", "error_description": "AADSTS7000215: ..."}`), following
https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow.

Graph (v1.0): `GET /users/{mailbox}/mailFolders/{folder}/messages/delta` with `$select`, pages sized by
`Prefer: odata.maxpagesize=N`, `@odata.nextLink` ($skiptoken) until a last page with
`@odata.deltaLink` ($deltatoken) that later returns only messages created or changed since, an expired
token answering 410 Gone or, as the overview allows ("a 40X-series error"), 400 with `syncStateNotFound`,
`syncStateInvalid` or `resyncRequired` (https://learn.microsoft.com/en-us/graph/delta-query-messages,
https://learn.microsoft.com/graph/delta-query-overview, https://learn.microsoft.com/en-us/graph/api/message-delta;
the 400 `syncStateNotFound` wording is Microsoft's own: "The sync state generation is not found. The delta
token is expired and data must be synchronized again."); 403 `ErrorAccessDenied` when the app may not read
the mailbox (missing Mail.ReadWrite application permission, no admin consent, or an Exchange application
access policy, https://learn.microsoft.com/en-us/graph/auth-limit-mailbox-access);
`GET /users/{mailbox}/messages/{id}/attachments`
(fileAttachment with base64 `contentBytes`, itemAttachment, referenceAttachment) and an item attachment's raw
contents at `.../attachments/{id}/$value`, MIME for an attached message
(https://learn.microsoft.com/en-us/graph/api/attachment-get, "Get the raw contents of a file or item attachment";
https://learn.microsoft.com/en-us/graph/api/resources/itemattachment); `PATCH` a message
(`isRead`), which makes it show up in the next delta round as on Exchange; 401
`InvalidAuthenticationToken` and 429 `TooManyRequests` with Retry-After in Graph's error shape.
"""

from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pydantic import SecretStr

from tests.emulators.base import Emulator, Request, Response


def graph_error(status: int, code: str, message: str, **headers: str) -> Response:
    return Response.json(
        {"error": {"code": code, "message": message, "innerError": {"request-id": uuid.uuid4().hex}}},
        status,
        **headers,
    )


@dataclass
class IdentityEmulator(Emulator):
    tenant: str = "contoso-tenant-id"
    client_id: str = "app-client-id"
    client_secret: str = "graph-client-secret-789"
    expires_in: int = 3599
    issued: list[str] = field(default_factory=list)
    certificate: tuple[Path, Path] | None = None

    def __post_init__(self) -> None:
        super().__init__(tls=self.certificate)

    def handle(self, request: Request) -> Response:
        base = f"{self.url}/{self.tenant}"
        if request.path == f"/{self.tenant}/v2.0/.well-known/openid-configuration":
            return Response.json(
                {
                    "issuer": f"{base}/v2.0",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                }
            )
        if request.path.endswith("/.well-known/openid-configuration"):
            return Response.json(
                {"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant not found."}, 400
            )
        if request.path == f"/{self.tenant}/oauth2/v2.0/token" and request.method == "POST":
            form = {key: values[0] for key, values in request.form().items()}
            if form.get("grant_type") != "client_credentials":
                return Response.json({"error": "unsupported_grant_type"}, 400)
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
                return Response.json(
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being "
                        "sent in the request is the client secret value, not the client secret ID.",
                    },
                    401,
                )
            if not form.get("scope", "").endswith("/.default"):
                return Response.json({"error": "invalid_scope", "error_description": "AADSTS1002012"}, 400)
            token = f"eyJ.{uuid.uuid4().hex}"
            with self.lock:
                self.issued.append(token)
            return Response.json(
                {"token_type": "Bearer", "expires_in": self.expires_in, "ext_expires_in": 3599, "access_token": token}
            )
        return Response.json({"error": "not_found"}, 404)


@dataclass
class GraphEmulator(Emulator):
    identity: IdentityEmulator | None = None
    mailbox: str = "support@contoso.example"
    messages: dict[str, dict[str, Any]] = field(default_factory=dict)
    attachments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    expired_tokens: set[str] = field(default_factory=set)
    generation: int = 0
    expiry: tuple[int, str] = (410, "SyncStateNotFound")
    denied: bool = False
    link_base: str = ""
    """When set, `@odata.nextLink` and `@odata.deltaLink` point at this origin instead of this server (a Graph that
    answers with links elsewhere must not receive the bearer token there)."""

    def expire_delta_links(self, status: int = 410, code: str = "SyncStateNotFound") -> None:
        """Every delta and skip token handed out so far stops working, answered with `status` and `code`."""
        with self.lock:
            self.generation += 1
            self.expiry = (status, code)

    def __post_init__(self) -> None:
        super().__init__()

    def deliver(
        self,
        sender: str,
        subject: str,
        body: str = "Hello",
        *,
        conversation: str | None = None,
        headers: dict[str, str] | None = None,
        html: bool = False,
        attachments: list[dict[str, Any]] | None = None,
        name: str = "Customer",
    ) -> dict[str, Any]:
        """A message arrives in the folder."""
        with self.lock:
            message_id = f"AAkAL{uuid.uuid4().hex}"
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            message = {
                "id": message_id,
                "subject": subject,
                "body": {"contentType": "html" if html else "text", "content": body},
                "from": {"emailAddress": {"name": name, "address": sender}},
                "sender": {"emailAddress": {"name": name, "address": sender}},
                "receivedDateTime": stamp,
                "lastModifiedDateTime": stamp,
                "conversationId": conversation or f"AAQk{uuid.uuid4().hex}",
                "internetMessageId": f"<{uuid.uuid4().hex}@mail.example>",
                "internetMessageHeaders": [{"name": k, "value": v} for k, v in (headers or {}).items()],
                "hasAttachments": bool(attachments),
                "isRead": False,
            }
            self.messages[message_id] = message
            self.attachments[message_id] = attachments or []
            self.changes.append(message_id)
            return message

    def handle(self, request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        known = self.identity.issued if self.identity else []
        if token not in known or token in self.revoked:
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.")
        if token in self.expired_tokens:
            return graph_error(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
        path = unquote(request.path)
        prefix = f"/v1.0/users/{self.mailbox}/"
        if not path.startswith(prefix):
            return graph_error(404, "ErrorInvalidUser", "The requested user is invalid.")
        rest = path[len(prefix) :]
        if self.denied:
            return graph_error(
                403,
                "ErrorAccessDenied",
                "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings.",
            )
        if match := re.fullmatch(r"mailFolders/([^/]+)/messages/delta", rest):
            return self._delta(request, match.group(1))
        if match := re.fullmatch(r"mailFolders/([^/]+)", rest):
            return Response.json({"id": match.group(1), "displayName": "Inbox"})
        if match := re.fullmatch(r"messages/([^/]+)/attachments", rest):
            if match.group(1) not in self.messages:
                return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            listed = [{k: v for k, v in a.items() if not k.startswith("_")} for a in self.attachments[match.group(1)]]
            return Response.json({"value": listed})
        if match := re.fullmatch(r"messages/([^/]+)/attachments/([^/]+)/\$value", rest):
            found = [a for a in self.attachments.get(match.group(1), []) if a["id"] == match.group(2)]
            if not found or "_mime" not in found[0]:
                return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            return Response(200, found[0]["_mime"], {"Content-Type": "text/plain"})
        if (match := re.fullmatch(r"messages/([^/]+)", rest)) and request.method == "PATCH":
            message = self.messages.get(match.group(1))
            if message is None:
                return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
            with self.lock:
                message.update(request.json())
                self.changes.append(message["id"])
            return Response.json(message)
        return graph_error(400, "BadRequest", f"Unsupported request {request.method} {path}")

    def _delta(self, request: Request, folder: str) -> Response:
        size = 10
        if match := re.search(r"odata\.maxpagesize=(\d+)", request.headers.get("prefer", "")):
            size = int(match.group(1))
        token = request.arg("$deltatoken") or request.arg("$skiptoken")
        numbers = [int(n) for n in base64.urlsafe_b64decode(token).decode().split("|")] if token else []
        if numbers and (numbers[0] != self.generation or numbers[1] > len(self.changes)):
            status, code = self.expiry
            return graph_error(
                status,
                code,
                "The sync state generation is not found. The delta token is expired and data must be "
                "synchronized again.",
            )
        if request.arg("$deltatoken"):
            start, end, offset = numbers[1], len(self.changes), 0
        elif request.arg("$skiptoken"):
            start, end, offset = numbers[1:]
        else:
            start, end, offset = 0, len(self.changes), 0
        with self.lock:
            latest: dict[str, None] = {}
            for message_id in self.changes[start:end]:
                latest.pop(message_id, None)
                latest[message_id] = None
            ordered = list(latest)
            selected = request.arg("$select")
            fields = set(selected.split(",")) | {"id"} if selected else None
            page = [
                {k: v for k, v in self.messages[m].items() if fields is None or k in fields}
                for m in ordered[offset : offset + size]
            ]
        link = f"{self.link_base or self.url}/v1.0/users/{self.mailbox}/mailFolders/{folder}/messages/delta"
        body: dict[str, Any] = {"@odata.context": f"{self.url}/v1.0/$metadata#Collection(message)", "value": page}
        if offset + size < len(ordered):
            token = base64.urlsafe_b64encode(f"{self.generation}|{start}|{end}|{offset + size}".encode()).decode()
            body["@odata.nextLink"] = f"{link}?$skiptoken={token}"
        else:
            token = base64.urlsafe_b64encode(f"{self.generation}|{end}".encode()).decode()
            body["@odata.deltaLink"] = f"{link}?$deltatoken={token}"
        return Response.json(body, **{"Preference-Applied": f"odata.maxpagesize={size}"})


def file_attachment(name: str, data: bytes, content_type: str = "application/pdf", inline: bool = False) -> dict:
    return {
        "@odata.type": "#microsoft.graph.fileAttachment",
        "id": uuid.uuid4().hex,
        "name": name,
        "contentType": content_type,
        "size": len(data),
        "isInline": inline,
        "contentBytes": base64.b64encode(data).decode(),
    }


def item_attachment(name: str, mime: bytes) -> dict:
    """An attached message: listed without its contents (no `contentBytes` for items), served as MIME at `/$value`;
    `_mime` is the emulator's own and never listed."""
    return {
        "@odata.type": "#microsoft.graph.itemAttachment",
        "id": uuid.uuid4().hex,
        "name": name,
        "contentType": None,
        "size": len(mime),
        "isInline": False,
        "_mime": mime,
    }


def graph_values(identity: IdentityEmulator, graph: GraphEmulator, ca: Path) -> dict[str, object]:
    """Settings that point the Graph connector at these emulators, trusting the test CA."""
    return {
        "MS_GRAPH_AUTHORITY_HOST": identity.url,
        "MS_GRAPH_BASE_URL": f"{graph.url}/v1.0",
        "MS_GRAPH_TENANT_ID": identity.tenant,
        "MS_GRAPH_CLIENT_ID": identity.client_id,
        "MS_GRAPH_CLIENT_SECRET": SecretStr(identity.client_secret),
        "MS_GRAPH_MAILBOX": graph.mailbox,
        "CONNECTOR_CA_BUNDLE": str(ca),
    }
