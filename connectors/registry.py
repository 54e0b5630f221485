"""Every vendor the desk can talk to, one descriptor each: the only list of connectors in the project.

The engine's settings are composed from each descriptor's settings mixin (engine/core/settings.py), the runtime
builds sources, write-back targets, the mail transport and delivery-event readers from the builders, the
analyser asks for the web search, the engine's web endpoint serves the webhook receivers, the scheduler polls at
each connector's interval, and health and the Settings page list what is here. Adding a vendor is its module and
one entry in `CONNECTORS`; no engine module names a vendor.

Every builder takes the composed settings; each is typed on the connector's own settings class, which the
composed one inherits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from connectors import demo, graph_mail, imap, jira, mailgun, serpapi, servicenow, smtp
from connectors.base import (
    ConfigurationError,
    ConnectorSettings,
    DeliveryEvents,
    MailTransport,
    SyncBack,
    TicketSource,
    WebhookReceiver,
    WebSearch,
)

S = TypeVar("S", bound=ConnectorSettings)
WEBHOOK_PREFIX = "/webhooks/"


@dataclass(frozen=True)
class Connector(Generic[S]):
    """What the engine needs to know about one vendor; a builder is None where the vendor has no such part."""

    name: str
    """Also the source name on its tickets, the prefix of its jobs (`poll_<name>`) and its OUTBOX_TRANSPORT value."""
    label: str
    settings: type[S]
    configured: Callable[[S], bool]
    """Whether the operator meant to use it (some of its settings are set); `problems` then says what is missing."""
    problems: Callable[[S], list[str]]
    poll_interval: Callable[[S], float] | None = None
    """How often its source or event log is read; None: POLL_INTERVAL_SECONDS."""
    source: Callable[[S], TicketSource] | None = None
    sync_back: Callable[[S], SyncBack] | None = None
    transport: Callable[[S], MailTransport] | None = None
    delivery_events: Callable[[S], DeliveryEvents] | None = None
    web_search: Callable[[S], WebSearch] | None = None
    """The agent's web search, when this vendor is the configured one (`web_search`)."""
    webhook: Callable[[S], WebhookReceiver] | None = None
    """What receives the vendor's webhooks at `webhook_path(name)`; raises ConfigurationError when it cannot verify
    them (`webhook_receivers`)."""
    ping: Callable[[S], list[str] | None] | None = None
    """One live, authenticated call: raises when the vendor cannot be used, else names permissions it lacks."""
    knowledge: Path | None = None
    """A folder of articles the desk needs to answer this source's tickets; the engine adds them once."""
    sender: Callable[[S], str] | None = None
    """The address customers see on our mail, when this vendor sets it."""
    own_domains: Callable[[S], Iterable[str]] | None = None
    """Domains that are the desk's own while this vendor is in use (links and addresses there are trusted)."""
    contact_points: Callable[[S], Iterable[str]] | None = None
    """Phone numbers (with country code) and e-mail addresses that are the desk's own while this vendor is in use."""

    @property
    def fields(self) -> list[str]:
        """Its own environment variables (not the CONNECTOR_* ones all connectors share), for the Settings page."""
        return self.settings.own_fields()


def _no_problems(_: ConnectorSettings) -> list[str]:
    return []


CONNECTORS: dict[str, Connector[Any]] = {
    connector.name: connector
    for connector in (
        Connector(
            name=demo.NAME,
            label="Demo feed",
            settings=demo.DemoSettings,
            configured=demo.is_configured,
            problems=_no_problems,
            poll_interval=lambda s: s.DEMO_FEED_INTERVAL_SECONDS,
            source=lambda s: demo.DemoSource(first_batch=s.DEMO_FEED_FIRST_BATCH, batch=s.DEMO_FEED_BATCH),
            knowledge=demo.KNOWLEDGE,
            own_domains=demo.own_domains,
            contact_points=demo.contact_points,
        ),
        Connector(
            name=servicenow.NAME,
            label="ServiceNow",
            settings=servicenow.ServiceNowSettings,
            configured=servicenow.is_configured,
            problems=servicenow.configuration_problems,
            poll_interval=lambda s: s.SNOW_POLL_INTERVAL_SECONDS,
            source=servicenow.ServiceNowSource,
            sync_back=servicenow.ServiceNowSource,
            ping=lambda s: servicenow.ServiceNowClient(s).ping(),
        ),
        Connector(
            name=jira.NAME,
            label="Jira",
            settings=jira.JiraSettings,
            configured=jira.is_configured,
            problems=jira.configuration_problems,
            poll_interval=lambda s: s.JIRA_POLL_INTERVAL_SECONDS,
            source=jira.JiraSource,
            sync_back=jira.JiraSource,
            ping=lambda s: jira.JiraSource(s).ping(),
        ),
        Connector(
            name=graph_mail.NAME,
            label="Outlook (Microsoft Graph)",
            settings=graph_mail.GraphMailSettings,
            configured=graph_mail.is_configured,
            problems=graph_mail.configuration_problems,
            poll_interval=lambda s: s.MS_GRAPH_POLL_INTERVAL_SECONDS,
            source=graph_mail.GraphMailSource,
            ping=lambda s: graph_mail.GraphMailSource(s).ping(),
        ),
        Connector(
            name=imap.NAME,
            label="IMAP mailbox",
            settings=imap.ImapSettings,
            configured=imap.is_configured,
            problems=imap.configuration_problems,
            poll_interval=lambda s: s.IMAP_POLL_INTERVAL_SECONDS,
            source=imap.ImapSource,
            ping=lambda s: imap.ImapSource(s).ping(),
        ),
        Connector(
            name=smtp.NAME,
            label="SMTP",
            settings=smtp.SmtpSettings,
            configured=smtp.is_configured,
            problems=smtp.configuration_problems,
            transport=smtp.SmtpTransport,
            ping=smtp.ping,
        ),
        Connector(
            name=mailgun.NAME,
            label="Mailgun",
            settings=mailgun.MailgunSettings,
            configured=mailgun.is_configured,
            problems=mailgun.configuration_problems,
            poll_interval=lambda s: s.MAILGUN_EVENTS_INTERVAL_SECONDS,
            transport=mailgun.MailgunTransport,
            delivery_events=mailgun.MailgunEvents,
            webhook=mailgun.MailgunWebhook,
            ping=lambda s: mailgun.MailgunTransport(s).ping(),
            sender=lambda s: s.MAILGUN_FROM_EMAIL,
            own_domains=lambda s: [s.MAILGUN_DOMAIN],
        ),
        Connector(
            name=serpapi.NAME,
            label="SerpAPI web search",
            settings=serpapi.SerpApiSettings,
            configured=serpapi.is_configured,
            problems=serpapi.configuration_problems,
            web_search=serpapi.SerpApiClient,
            ping=serpapi.ping,
        ),
    )
}


def connectors() -> list[Connector[Any]]:
    """Every registered connector, in registration order."""
    return list(CONNECTORS.values())


def connector(name: str) -> Connector[Any]:
    """The connector called `name`; a ValueError naming the known ones otherwise."""
    if name not in CONNECTORS:
        raise ValueError(f"unknown connector {name!r}; known: {', '.join(CONNECTORS)}")
    return CONNECTORS[name]


def settings_mixins() -> tuple[type[ConnectorSettings], ...]:
    """Each connector's settings class, for engine.core.settings.Settings to inherit."""
    return tuple(dict.fromkeys(entry.settings for entry in CONNECTORS.values()))


def web_search(settings: ConnectorSettings) -> WebSearch | None:
    """The web search of the first connector that offers one and is set up without problems; None: no web search."""
    for entry in connectors():
        if entry.web_search is not None and entry.configured(settings) and not entry.problems(settings):
            return entry.web_search(settings)
    return None


def webhook_path(name: str) -> str:
    """Where the engine's web endpoint receives connector `name`'s webhooks."""
    return f"{WEBHOOK_PREFIX}{name}"


def webhook_receivers(settings: ConnectorSettings) -> tuple[dict[str, WebhookReceiver], list[str]]:
    """The receivers that can verify their webhooks, by route path, and why each of the others cannot."""
    receivers: dict[str, WebhookReceiver] = {}
    unavailable: list[str] = []
    for entry in connectors():
        if entry.webhook is None:
            continue
        try:
            receivers[webhook_path(entry.name)] = entry.webhook(settings)
        except ConfigurationError as error:
            unavailable.append(str(error))
    return receivers, unavailable
