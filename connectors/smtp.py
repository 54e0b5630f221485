"""Send through any SMTP server (plain, STARTTLS or implicit TLS, with optional login)."""

from __future__ import annotations

import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Annotated, Literal

from pydantic import Field, SecretStr

from connectors.base import (
    ConfigurationError,
    ConnectorSettings,
    DeliveryError,
    OutgoingEmail,
    Required,
    setting_problems,
)
from connectors.http import AuthenticationError, ConnectorError, tls_context, tls_problem

NAME = "smtp"


class SmtpSettings(ConnectorSettings):
    """Any SMTP server the outbox sends through when OUTBOX_TRANSPORT=smtp."""

    SMTP_HOST: Annotated[str, Required()] = ""
    SMTP_PORT: int = Field(default=587, ge=1, le=65535)
    SMTP_USERNAME: str = ""
    SMTP_PASSWORD: SecretStr = SecretStr("")
    SMTP_SECURITY: Literal["none", "starttls", "ssl"] = "starttls"
    SMTP_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)
    SMTP_CA_BUNDLE: str = ""
    """A private CA's PEM file, added to the system trust store for this connector only (CONNECTOR_CA_BUNDLE, by
    contrast, replaces the store for every connector)."""


def configuration_problems(settings: SmtpSettings) -> list[str]:
    return setting_problems(settings, SmtpSettings)


def is_configured(settings: SmtpSettings) -> bool:
    return bool(settings.SMTP_HOST)


def ping(settings: SmtpSettings) -> None:
    """Connect, log in when a username is set, and say NOOP: what "test connection" asks of an SMTP server."""
    transport = SmtpTransport(settings)
    try:
        with transport._connect() as client:
            if transport.username:
                client.login(transport.username, transport.password.get_secret_value())
            client.noop()
    except smtplib.SMTPAuthenticationError:
        raise AuthenticationError(NAME, "login refused: check SMTP_USERNAME/SMTP_PASSWORD", status=535) from None
    except (OSError, smtplib.SMTPException) as error:
        raise ConnectorError(
            NAME, f"{settings.SMTP_HOST}:{settings.SMTP_PORT} unreachable: {type(error).__name__}", retryable=True
        ) from None


def build_mime(email: OutgoingEmail) -> EmailMessage:
    """The RFC 5322 message, threaded by In-Reply-To/References, with our loop-guard headers; `send_message` sends
    it to every address in To and Cc."""
    message = EmailMessage()
    message["From"] = formataddr((email.from_name, email.from_address))
    message["To"] = email.to_address
    if email.cc:
        message["Cc"] = ", ".join(email.cc)
    message["Subject"] = email.subject
    message["Message-ID"] = email.message_id
    message["Date"] = format_datetime(datetime.now(UTC))
    if email.in_reply_to:
        message["In-Reply-To"] = email.in_reply_to
    if email.references:
        message["References"] = " ".join(email.references)
    for name, value in email.headers.items():
        message[name] = value
    message.set_content(email.body_text)
    if email.body_html:
        message.add_alternative(email.body_html, subtype="html")
    for attachment in email.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype or "octet-stream", filename=attachment.filename
        )
    return message


def _text(reply: bytes | str) -> str:
    return (reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)).replace("\n", " ")[:500]


def _refusal(host: str, refused: dict[str, tuple[int, bytes]]) -> DeliveryError:
    """Refused recipients, each with the server's code and text. A 4xx is temporary (greylisting, a full or
    locked mailbox: the outbox retries with its backoff); only when every refusal is a 5xx is it for good."""
    answers = "; ".join(f"{address}: {code} {_text(reply)}" for address, (code, reply) in sorted(refused.items()))
    permanent = all(500 <= code < 600 for code, _ in refused.values())
    kind = "refused" if permanent else "temporarily refused"
    return DeliveryError(f"recipient {kind} by {host}: {answers}", permanent=permanent)


class SmtpTransport:
    name = NAME
    confirms_delivery = False

    def __init__(self, settings: SmtpSettings) -> None:
        if not settings.SMTP_HOST:
            raise ConfigurationError("SMTP_HOST: required when OUTBOX_TRANSPORT=smtp")
        self.host = settings.SMTP_HOST
        self.port = settings.SMTP_PORT
        self.security = settings.SMTP_SECURITY
        self.username = settings.SMTP_USERNAME
        self.password = settings.SMTP_PASSWORD
        self.timeout = settings.SMTP_TIMEOUT_SECONDS
        self.settings = settings

    def _connect(self) -> smtplib.SMTP:
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls())
        client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            client.starttls(context=self._tls())
        return client

    def _tls(self) -> ssl.SSLContext:
        """Certificates checked against the system store (or CONNECTOR_CA_BUNDLE), plus SMTP_CA_BUNDLE's CA."""
        return tls_context(self.settings, self.settings.SMTP_CA_BUNDLE)

    def send(self, email: OutgoingEmail) -> str:
        handed_over = False
        try:
            with self._connect() as client:
                if self.username:
                    client.login(self.username, self.password.get_secret_value())
                handed_over = True
                refused = client.send_message(build_mime(email))
        except smtplib.SMTPRecipientsRefused as error:
            raise _refusal(self.host, error.recipients) from None
        except smtplib.SMTPAuthenticationError:
            raise DeliveryError(f"SMTP login to {self.host} failed: check SMTP_USERNAME/SMTP_PASSWORD") from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(
                f"SMTP {self.host} answered {error.smtp_code} {_text(error.smtp_error)}",
                permanent=500 <= error.smtp_code < 600,
            ) from None
        except ssl.SSLError as error:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {tls_problem(error)}") from None
        except (OSError, smtplib.SMTPException) as error:
            if handed_over:
                raise DeliveryError(
                    f"SMTP {self.host}:{self.port} dropped the connection while taking the message: "
                    f"{type(error).__name__}: {error}",
                    uncertain=True,
                ) from None
            raise DeliveryError(f"SMTP {self.host}:{self.port} unreachable: {type(error).__name__}: {error}") from None
        if refused:
            raise _refusal(self.host, refused)
        return email.message_id

    def was_delivered(self, message_id: str) -> bool | None:
        """SMTP cannot be asked after the fact; a person decides (see the outbox's `uncertain` state)."""
        return None
