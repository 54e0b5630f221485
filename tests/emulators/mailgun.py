"""Mailgun emulator: Messages API and Events API of one sending domain.

Follows Mailgun's API reference: `POST /v3/{domain_name}/messages`
(https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/messages: multipart form with
from/to/cc/subject/text/html (`cc` like `to`: comma-separated addresses), `h:` custom headers including
`h:Message-Id`, `attachment` files; answers
`{"id": "<...>", "message": "Queued. Thank you."}`), `GET /v3/{domain_name}/events`
(https://documentation.mailgun.com/docs/mailgun/api-reference/send/mailgun/events/get-v3-domain_name-events:
`begin`, `ascending`, `limit` ≤ 300, `event` and `message-id` filters, `{"items": [...], "paging": {"next",
"previous", "first", "last"}}`, where polling the `next` URL later returns events that arrived since),
HTTP Basic auth as `api:<key>` answering 401 `Forbidden`, and 400 `{"message": ...}` for a bad request.
"""

from __future__ import annotations

import base64
import email
import email.policy
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from tests.emulators.base import Emulator, Request, Response


@dataclass
class SentMessage:
    id: str
    fields: dict[str, list[str]]
    attachments: list[tuple[str, bytes]]

    def one(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


@dataclass
class MailgunEmulator(Emulator):
    domain: str = "mg.example.test"
    api_key: str = "key-mailgun-secret-456"
    messages: list[SentMessage] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__()

    def add_event(self, kind: str, message_id: str, recipient: str, **extra: Any) -> dict[str, Any]:
        with self.lock:
            event = {
                "id": uuid.uuid4().hex[:22],
                "event": kind,
                "timestamp": time.time(),
                "recipient": recipient,
                "message": {"headers": {"message-id": message_id.strip("<>"), "to": recipient}},
                **extra,
            }
            self.events.append(event)
            return event

    def bounce(self, message: SentMessage) -> dict[str, Any]:
        return self.add_event(
            "failed",
            message.id,
            message.one("to") or "",
            severity="permanent",
            reason="bounce",
            **{
                "delivery-status": {
                    "code": 550,
                    "message": "5.1.1 The email account does not exist",
                    "description": "Not delivered",
                }
            },
        )

    def handle(self, request: Request) -> Response:
        if not self._authorised(request):
            return Response(401, b"Forbidden", {"Content-Type": "text/plain"})
        prefix = f"/v3/{self.domain}/"
        if not request.path.startswith(prefix):
            return Response.json({"message": "Domain not found"}, 404)
        rest = request.path[len(prefix) :]
        if rest == "messages" and request.method == "POST":
            return self._send(request)
        if rest == "events" and request.method == "GET":
            position = 0
            begin = float(request.arg("begin", "0") or 0)
            filters = {"begin": begin, "event": request.arg("event"), "message-id": request.arg("message-id")}
            return self._events(position, filters, int(request.arg("limit", "100") or 100))
        if rest.startswith("events/") and request.method == "GET":
            token = base64.urlsafe_b64decode(rest[7:].encode()).decode()
            position, begin, kind, message_id, limit = token.split("|")
            filters = {"begin": float(begin), "event": kind or None, "message-id": message_id or None}
            return self._events(int(position), filters, int(limit))
        return Response.json({"message": "Not found"}, 404)

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        return base64.b64decode(header[6:]).decode() == f"api:{self.api_key}"

    def _send(self, request: Request) -> Response:
        parsed = email.message_from_bytes(
            f"Content-Type: {request.headers.get('content-type', '')}\r\n\r\n".encode() + request.body,
            policy=email.policy.HTTP,
        )
        fields: dict[str, list[str]] = {}
        attachments = []
        for part in parsed.iter_parts() if parsed.is_multipart() else []:
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename():
                attachments.append((part.get_filename(), payload))
            elif name:
                fields.setdefault(str(name), []).append(payload.decode("utf-8"))
        if not parsed.is_multipart():
            fields = request.form()
        for required in ("from", "to"):
            if not fields.get(required):
                return Response.json({"message": f"'{required}' parameter is missing"}, 400)
        if "@" not in fields["to"][0]:
            return Response.json({"message": "'to' parameter is not a valid address. please check documentation"}, 400)
        copies = [address.strip() for value in fields.get("cc", []) for address in value.split(",")]
        if any("@" not in address for address in copies):
            return Response.json({"message": "'cc' parameter is not a valid address. please check documentation"}, 400)
        custom = fields.get("h:Message-Id", [""])[0].strip("<>")
        message_id = custom or f"{uuid.uuid4().hex}@{self.domain}"
        with self.lock:
            message = SentMessage(message_id, fields, attachments)
            self.messages.append(message)
        self.add_event("accepted", message_id, fields["to"][0])
        self.add_event(
            "delivered",
            message_id,
            fields["to"][0],
            **{"delivery-status": {"code": 250, "message": "OK", "description": ""}},
        )
        return Response.json({"id": f"<{message_id}>", "message": "Queued. Thank you."})

    def _events(self, position: int, filters: dict[str, Any], limit: int) -> Response:
        limit = min(limit, 300)
        with self.lock:
            matching = [
                event
                for event in self.events
                if event["timestamp"] >= filters["begin"]
                and (not filters["event"] or event["event"] == filters["event"])
                and (not filters["message-id"] or event["message"]["headers"]["message-id"] == filters["message-id"])
            ]
        page = matching[position : position + limit]
        following = position + len(page)

        def link(at: int) -> str:
            token = f"{at}|{filters['begin']}|{filters['event'] or ''}|{filters['message-id'] or ''}|{limit}"
            return f"{self.url}/v3/{self.domain}/events/{base64.urlsafe_b64encode(token.encode()).decode()}"

        return Response.json(
            {
                "items": page,
                "paging": {
                    "next": link(following),
                    "previous": link(max(position - limit, 0)),
                    "first": link(0),
                    "last": link(max(len(matching) - limit, 0)),
                },
            }
        )
