"""Mailgun: send through the Messages API, learn what happened from the Events API, verify webhooks.

We set our own Message-Id (`h:Message-Id`), so the outbox can ask the Events API whether a message it
lost track of in a crash was accepted (`was_delivered`) instead of marking it uncertain. Delivery,
bounce and complaint events become `DeliveryEvent` records (`delivery_event`) that the engine puts on the
ticket's timeline (engine/delivery/delivery_events.py), from the poller and from the optional webhook alike
(`MailgunWebhook`, the registry's webhook receiver for Mailgun).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formataddr
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr

from connectors.base import (
    ConfigurationError,
    ConnectorSettings,
    DeliveryError,
    DeliveryEvent,
    DeliveryKind,
    DeliveryPage,
    OutgoingEmail,
    RejectedWebhookError,
    Required,
    VerifiedWebhook,
    require_configured,
    setting_problems,
)
from connectors.http import (
    AuthenticationError,
    CircuitOpenError,
    ConnectorError,
    HttpClient,
    MalformedResponseError,
    RetryPolicy,
    breaker_from_settings,
    policy_from_settings,
    verify_setting,
)

log = logging.getLogger(__name__)
NAME = "mailgun"
EVENT_TYPES: dict[str, DeliveryKind] = {
    "delivered": "email_delivered",
    "failed": "email_bounced",
    "complained": "email_complained",
    "unsubscribed": "email_unsubscribed",
}
MAX_WEBHOOK_JSON_DEPTH = 32
MAX_WEBHOOK_TOKEN_LENGTH = 200
# A whole string (an unterminated one runs to the end, so scanning stays linear) or one bracket.
_JSON_NESTING = re.compile(rb'"(?:[^"\\]|\\.)*+"?|[\[\]{}]', re.DOTALL)


class MailgunSettings(ConnectorSettings):
    """Mailgun: the sending domain and key, the address customers see, and webhook verification."""

    MAILGUN_API_KEY: Annotated[SecretStr, Required("Mailgun → API Security → sending or private API key")] = SecretStr(
        ""
    )
    MAILGUN_DOMAIN: Annotated[str, Required("the sending domain, e.g. mg.example.com")] = ""
    MAILGUN_FROM_EMAIL: Annotated[str, Required("the address customers see and reply to")] = ""
    MAILGUN_WEBHOOK_SIGNING_KEY: SecretStr = SecretStr("")
    MAILGUN_API_BASE_URL: str = "https://api.mailgun.net"
    MAILGUN_EVENTS_INTERVAL_SECONDS: float = Field(default=60.0, gt=0)
    MAILGUN_WEBHOOK_MAX_AGE_SECONDS: float = Field(default=300.0, gt=0)
    MAILGUN_CA_BUNDLE: str = ""
    """A private CA's PEM file, added to the system trust store for this connector only (CONNECTOR_CA_BUNDLE, by
    contrast, replaces the store for every connector)."""


def configuration_problems(settings: MailgunSettings) -> list[str]:
    return setting_problems(
        settings,
        MailgunSettings,
        MAILGUN_DOMAIN=lambda domain: "must be a bare domain like mg.example.com" if set("/@") & set(domain) else None,
        MAILGUN_API_BASE_URL=lambda url: (
            None
            if urlsplit(url).scheme in ("http", "https")
            else "must be https://api.mailgun.net or https://api.eu.mailgun.net"
        ),
    )


def is_configured(settings: MailgunSettings) -> bool:
    return bool(settings.MAILGUN_DOMAIN or settings.MAILGUN_API_KEY.get_secret_value())


def _client(settings: MailgunSettings, sleep: Callable[[float], None], policy: RetryPolicy | None = None) -> HttpClient:
    require_configured("Mailgun", configuration_problems(settings))
    return HttpClient(
        NAME,
        f"{settings.MAILGUN_API_BASE_URL.rstrip('/')}/v3/{settings.MAILGUN_DOMAIN}",
        policy=policy or policy_from_settings(settings),
        auth=("api", settings.MAILGUN_API_KEY.get_secret_value()),
        verify=verify_setting(settings, settings.MAILGUN_CA_BUNDLE),
        sleep=sleep,
        breaker=breaker_from_settings(NAME, settings),
    )


def bare_id(message_id: str) -> str:
    """Mailgun filters and reports message ids without the angle brackets."""
    return message_id.strip().removeprefix("<").removesuffix(">")


class MailgunTransport:
    """The outbox's transport through the Messages API; retries 429/5xx a few times, then hands back to the outbox."""

    name = NAME
    confirms_delivery = True

    def __init__(self, settings: MailgunSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.http = _client(settings, sleep)

    def send(self, email: OutgoingEmail) -> str:
        data: list[tuple[str, str]] = [
            ("from", formataddr((email.from_name, email.from_address))),
            ("to", email.to_address),
            ("subject", email.subject),
            ("text", email.body_text),
            ("h:Message-Id", email.message_id),
        ]
        if email.cc:
            data.append(("cc", ", ".join(email.cc)))
        if email.body_html:
            data.append(("html", email.body_html))
        if email.in_reply_to:
            data.append(("h:In-Reply-To", email.in_reply_to))
        if email.references:
            data.append(("h:References", " ".join(email.references)))
        data += [(f"h:{name}", value) for name, value in email.headers.items()]
        files = [("attachment", (a.filename, a.data, a.content_type)) for a in email.attachments]
        try:
            body = self.http.json("POST", "messages", data=data, files=files or None, idempotent=False)
        except AuthenticationError as error:
            raise DeliveryError(f"{error}: check MAILGUN_API_KEY and MAILGUN_DOMAIN") from None
        except ConnectorError as error:
            permanent = error.status is not None and 400 <= error.status < 500 and error.status != 429
            raise DeliveryError(
                str(error),
                permanent=permanent,
                retry_after=error.retry_after,
                uncertain=error.status is None and not error.not_sent,
                deferred=isinstance(error, CircuitOpenError),
            ) from None
        provider_id = body.get("id") if isinstance(body, dict) else None
        return str(provider_id or email.message_id)

    def was_delivered(self, message_id: str) -> bool | None:
        """Whether Mailgun accepted `message_id`: any event for it means yes; None when Mailgun cannot be asked."""
        try:
            body = self.http.get_json("events", params={"message-id": bare_id(message_id), "limit": 10})
        except ConnectorError as error:
            log.warning("cannot ask Mailgun about %s: %s", message_id, error)
            return None
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return None
        return any(item.get("event") in ("accepted", "delivered", "failed", "opened") for item in items)

    def ping(self) -> None:
        self.http.get_json("events", params={"limit": 1})


class MailgunEvents:
    """Pages of the Events API in time order; the cursor is the `paging.next` URL to ask next time."""

    name = NAME

    def __init__(
        self,
        settings: MailgunSettings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        lookback_seconds: float = 3600.0,
    ) -> None:
        self.http = _client(settings, sleep)
        self.lookback_seconds = lookback_seconds
        self.page_size = min(settings.CONNECTOR_PAGE_SIZE, 300)

    def pages(self, cursor: str | None) -> Iterator[DeliveryPage]:
        """Each page of events with the cursor to resume after it; stops at the first empty page."""
        if cursor:
            url = self._rebase(cursor)
            params: dict[str, Any] | None = None
        else:
            url = "events"
            params = {"begin": int(time.time() - self.lookback_seconds), "ascending": "yes", "limit": self.page_size}
        while True:
            body = self.http.get_json(url, params=params)
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise MalformedResponseError(NAME, "events answer has no `items` list")
            next_url = (body.get("paging") or {}).get("next")
            if not body["items"] or not next_url:
                return
            events = [delivery_event(item) if isinstance(item, dict) else None for item in body["items"]]
            tracked = [event for event in events if event is not None]
            yield DeliveryPage(events=tracked, ignored=len(events) - len(tracked), cursor=str(next_url))
            url, params = self._rebase(str(next_url)), None

    def _rebase(self, url: str) -> str:
        """Mailgun's paging URLs name api.mailgun.net; keep only the path so MAILGUN_API_BASE_URL applies."""
        parts = urlsplit(url)
        path = parts.path.split("/events", 1)[-1]
        return f"events{path}" + (f"?{parts.query}" if parts.query else "")


def delivery_event(event: dict[str, Any]) -> DeliveryEvent | None:
    """One Events API item or webhook event as a delivery record; None for what the desk does not track
    (opens, clicks, temporary failures that Mailgun retries itself, items without an id or a message id)."""
    kind = EVENT_TYPES.get(str(event.get("event")))
    event_id = str(event.get("id") or "")
    message = event.get("message") if isinstance(event.get("message"), dict) else {}
    headers = message.get("headers") if isinstance(message.get("headers"), dict) else {}
    message_id = headers.get("message-id")
    if kind is None or not event_id or not isinstance(message_id, str) or not message_id:
        return None
    if event.get("event") == "failed" and event.get("severity") == "temporary":
        return None
    recipient = event.get("recipient")
    return DeliveryEvent(
        provider=NAME,
        event_id=event_id,
        kind=kind,
        message_id=f"<{bare_id(message_id)}>",
        recipient=recipient if isinstance(recipient, str) and recipient else None,
        reason=_reason(event),
    )


def _reason(event: dict[str, Any]) -> str:
    status = event.get("delivery-status") if isinstance(event.get("delivery-status"), dict) else {}
    parts = [str(event.get("reason") or ""), str(status.get("message") or status.get("description") or "")]
    return "; ".join(part for part in parts if part)[:300]


class MalformedWebhookError(RejectedWebhookError):
    """A webhook body that is not what Mailgun posts; the message is the short reason answered with 406."""


@dataclass(frozen=True)
class SignedEvent:
    """A webhook body of the right shape: its signature's three strings and its event object."""

    timestamp: str
    token: str
    signature: str
    event: dict[str, Any]


def json_depth(payload: bytes, limit: int = MAX_WEBHOOK_JSON_DEPTH) -> int:
    """How deeply `payload` nests arrays and objects, counted up to `limit` + 1 without recursion, so a
    200,000-deep body is refused before `json.loads` recurses into it. Brackets inside strings do not count."""
    depth = deepest = 0
    for match in _JSON_NESTING.finditer(payload):
        bracket = match[0]
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if depth > limit:
                break
        elif bracket in (b"]", b"}"):
            depth -= 1
    return deepest


def parse_webhook(payload: bytes) -> SignedEvent:
    """The `{"signature": {...}, "event-data": {...}}` body Mailgun posts, every field this desk reads checked
    for its type before anything uses it; MalformedWebhookError says what is wrong."""
    if json_depth(payload) > MAX_WEBHOOK_JSON_DEPTH:
        raise MalformedWebhookError(f"JSON nested deeper than {MAX_WEBHOOK_JSON_DEPTH} levels")
    try:
        body = json.loads(payload)
    except ValueError:
        raise MalformedWebhookError("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise MalformedWebhookError("body must be a JSON object")
    signature = body.get("signature")
    fields = ("timestamp", "token", "signature")
    if not isinstance(signature, dict) or not all(isinstance(signature.get(f), str) and signature[f] for f in fields):
        raise MalformedWebhookError("signature must be an object of timestamp, token and signature strings")
    if len(signature["token"]) > MAX_WEBHOOK_TOKEN_LENGTH:
        raise MalformedWebhookError(f"signature.token longer than {MAX_WEBHOOK_TOKEN_LENGTH} characters")
    event = body.get("event-data")
    if not isinstance(event, dict):
        raise MalformedWebhookError("event-data must be an object")
    for name in ("id", "event"):
        if not isinstance(event.get(name), str) or not event[name]:
            raise MalformedWebhookError(f"event-data.{name} must be a non-empty string")
    stamp = event.get("timestamp", 0)
    if isinstance(stamp, bool) or not isinstance(stamp, int | float):
        raise MalformedWebhookError("event-data.timestamp must be a number")
    message = event.get("message", {})
    headers = message.get("headers", {}) if isinstance(message, dict) else None
    if not isinstance(headers, dict):
        raise MalformedWebhookError("event-data.message.headers must be an object")
    if not isinstance(headers.get("message-id", ""), str):
        raise MalformedWebhookError("event-data.message.headers.message-id must be a string")
    return SignedEvent(signature["timestamp"], signature["token"], signature["signature"], event)


def verify_webhook_signature(
    signing_key: str, timestamp: str, token: str, signature: str, *, max_age: float = 300.0, now: float | None = None
) -> bool:
    """Mailgun's webhook check: HMAC-SHA256(key, timestamp + token) == signature, and fresh.

    Replays are refused where the event is stored, in the same transaction (engine/delivery/webhooks.py), so a delivery
    the database refused leaves its token unused for Mailgun's retry.
    """
    if not (signing_key and timestamp and token and signature):
        return False
    try:
        signed_at = float(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if not math.isfinite(signed_at) or abs(current - signed_at) > max_age:
        return False
    expected = hmac.new(signing_key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.lower().encode())


class MailgunWebhook:
    """The `WebhookReceiver` (connectors/base.py) behind the webhook URL configured at Mailgun: a body of Mailgun's
    shape, signed with MAILGUN_WEBHOOK_SIGNING_KEY within MAILGUN_WEBHOOK_MAX_AGE_SECONDS."""

    name = NAME
    content_type = "application/json"

    def __init__(self, settings: MailgunSettings) -> None:
        if not settings.MAILGUN_WEBHOOK_SIGNING_KEY.get_secret_value():
            raise ConfigurationError("MAILGUN_WEBHOOK_SIGNING_KEY is not set (webhooks cannot be verified)")
        self.signing_key = settings.MAILGUN_WEBHOOK_SIGNING_KEY
        self.max_age = settings.MAILGUN_WEBHOOK_MAX_AGE_SECONDS

    def verify(self, payload: bytes) -> VerifiedWebhook:
        signed = parse_webhook(payload)
        key = self.signing_key.get_secret_value()
        if not verify_webhook_signature(key, signed.timestamp, signed.token, signed.signature, max_age=self.max_age):
            raise RejectedWebhookError("signature not accepted: wrong signing key or stale timestamp")
        return VerifiedWebhook(
            token=signed.token,
            signed_at=datetime.fromtimestamp(float(signed.timestamp), UTC),
            event_id=signed.event["id"],
            event_name=signed.event["event"],
            delivery=delivery_event(signed.event),
        )
