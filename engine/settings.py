"""Configuration from the environment and `.env`, with the seed's variable names kept as they are.

Every setting has a safe default (the embedded, keyless mode) or fails with one message that names
the variable, so an operator knows exactly what to fix. Secrets are `SecretStr`: they never print.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.redaction import redact_url_credentials

PROJECT_ROOT = Path(__file__).resolve().parent.parent


DEMO_COMPANY_DOMAINS = ("northwind-labs.example", "northwind-cloud.example")
"""The fictional company of the demo feed and its articles: the demo desk speaks for it."""


class ConfigurationError(RuntimeError):
    """A setting is missing or malformed; the message names the variable and never its secret value."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True)

    # Storage
    DATA_DIR: Path = PROJECT_ROOT / "data"
    DATABASE_URL: str = ""
    LOG_FILE: Path | None = None
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Engine
    ENGINE_ENABLED: bool = True
    WORKER_ID: str = ""
    POLL_INTERVAL_SECONDS: float = Field(default=30.0, gt=0)
    PROCESS_INTERVAL_SECONDS: float = Field(default=2.0, gt=0)
    OUTBOX_INTERVAL_SECONDS: float = Field(default=2.0, gt=0)
    CLAIM_LEASE_SECONDS: float = Field(default=300.0, gt=0)
    PROCESS_BATCH_SIZE: int = Field(default=50, ge=1)
    ANALYSIS_CONCURRENCY: int = Field(default=8, ge=1, le=64)
    OUTBOX_MAX_ATTEMPTS: int = Field(default=8, ge=1)
    OUTBOX_BACKOFF_SECONDS: float = Field(default=30.0, gt=0)
    OUTBOX_CONFIRM_WINDOW_SECONDS: float = Field(default=3600.0, ge=0)
    MAX_ATTACHMENT_BYTES: int = Field(default=25 * 1024 * 1024, ge=1)

    # Demo feed: the built-in source that keeps a fresh install alive.
    DEMO_FEED_ENABLED: bool = True
    DEMO_FEED_INTERVAL_SECONDS: float = Field(default=15.0, gt=0)
    DEMO_FEED_BATCH: int = Field(default=1, ge=1)
    DEMO_FEED_FIRST_BATCH: int = Field(default=20, ge=0)

    # Outgoing mail
    OUTBOX_TRANSPORT: Literal["database", "smtp", "mailgun"] = "database"
    SUPPORT_FROM_EMAIL: str = "support@no-touch.localhost"
    SUPPORT_FROM_NAME: str = "No-Touch Support"
    SUPPORT_SIGNATURE: str = "— The Support Team"
    AUTOPILOT_ENABLED: bool = False
    AUTO_SEND_MIN_CONFIDENCE: float = Field(default=0.85, ge=0, le=1)
    RESOLVE_MIN_CONFIDENCE: float = Field(default=0.5, ge=0, le=1)
    DEFAULT_TEAM: str = "Service Desk"
    ROUTING_ENABLED: bool = True
    """Learn team routing from resolved tickets (engine/routing.py) for tickets whose category names no team."""
    ROUTING_MIN_HISTORY: int = Field(default=300, ge=10)
    ROUTING_RETRAIN_AFTER: int = Field(default=100, ge=1)
    ROUTING_TARGET_PRECISION: float = Field(default=0.85, gt=0, le=1)
    ROUTING_INTERVAL_SECONDS: float = Field(default=900.0, gt=0)
    OUTGOING_ALLOWED_DOMAINS: str = ""
    """Comma-separated domains an automatic message may link or write to; the desk's own domains always are."""
    MAX_AUTOMATED_EMAILS_PER_HOUR: int = Field(default=5, ge=0)
    SMTP_HOST: str = ""
    SMTP_PORT: int = Field(default=587, ge=1, le=65535)
    SMTP_USERNAME: str = ""
    SMTP_PASSWORD: SecretStr = SecretStr("")
    SMTP_SECURITY: Literal["none", "starttls", "ssl"] = "starttls"
    SMTP_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)

    # Seed §4.3: ServiceNow, Jira, Microsoft Graph, Azure OpenAI, Mailgun, SerpAPI
    SNOW_API_URL: str = ""
    SNOW_AUTH_USERNAME: str = ""
    SNOW_AUTH_PASSWORD: SecretStr = SecretStr("")
    JIRA_SERVER: str = ""
    JIRA_USERNAME: str = ""
    JIRA_API_TOKEN: SecretStr = SecretStr("")
    JIRA_SSL_VERIFY: bool = True
    MS_GRAPH_CLIENT_ID: str = ""
    MS_GRAPH_CLIENT_SECRET: SecretStr = SecretStr("")
    MS_GRAPH_TENANT_ID: str = ""
    MS_GRAPH_MAILBOX: str = ""
    AZURE_OPENAI_ENDPOINT: str = ""
    AZURE_OPENAI_API_KEY: SecretStr = SecretStr("")
    AZURE_OPENAI_API_VERSION: str = "2024-10-21"
    AZURE_OPENAI_DEPLOYMENT: str = ""
    AZURE_OPENAI_EMBED_API_ENDPOINT: str = ""
    AZURE_OPENAI_EMBED_API_KEY: SecretStr = SecretStr("")
    AZURE_OPENAI_EMBED_VERSION: str = "2024-10-21"
    AZURE_OPENAI_EMBED_MODEL: str = "text-embedding-ada-002"
    MAILGUN_API_KEY: SecretStr = SecretStr("")
    MAILGUN_DOMAIN: str = ""
    MAILGUN_FROM_EMAIL: str = ""
    MAILGUN_WEBHOOK_SIGNING_KEY: SecretStr = SecretStr("")
    SERPAPI_API_KEY: SecretStr = SecretStr("")

    # Connectors
    CONNECTOR_CONNECT_TIMEOUT_SECONDS: float = Field(default=5.0, gt=0)
    CONNECTOR_READ_TIMEOUT_SECONDS: float = Field(default=30.0, gt=0)
    CONNECTOR_RETRY_ATTEMPTS: int = Field(default=4, ge=1)
    CONNECTOR_BACKOFF_SECONDS: float = Field(default=1.0, ge=0)
    CONNECTOR_MAX_BACKOFF_SECONDS: float = Field(default=60.0, ge=0)
    CONNECTOR_MAX_RETRY_AFTER_SECONDS: float = Field(default=300.0, ge=0)
    CONNECTOR_BREAKER_THRESHOLD: int = Field(default=5, ge=1)
    CONNECTOR_BREAKER_RESET_SECONDS: float = Field(default=60.0, gt=0)
    CONNECTOR_CA_BUNDLE: str = ""
    CONNECTOR_PAGE_SIZE: int = Field(default=100, ge=1, le=10_000)
    SNOW_EXTRA_TABLES: str = ""
    SNOW_POLL_INTERVAL_SECONDS: float = Field(default=60.0, gt=0)
    SNOW_START_AT: str = ""
    SNOW_RESOLVED_CLOSE_CODE: str = "Solution provided"
    SNOW_CLOSE_NOTES_DEFAULT: str = "Closed by the support desk"
    SNOW_ASSIGNMENT_GROUPS: dict[str, str] = Field(default_factory=dict)
    """Team name → assignment group (sys_id or name) set when a ticket is assigned or escalated to that team."""
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
    MS_GRAPH_AUTHORITY_HOST: str = "https://login.microsoftonline.com"
    MS_GRAPH_BASE_URL: str = "https://graph.microsoft.com/v1.0"
    MS_GRAPH_FOLDER: str = "inbox"
    MS_GRAPH_POLL_INTERVAL_SECONDS: float = Field(default=30.0, gt=0)
    MAILGUN_API_BASE_URL: str = "https://api.mailgun.net"
    MAILGUN_EVENTS_INTERVAL_SECONDS: float = Field(default=60.0, gt=0)
    MAILGUN_WEBHOOK_MAX_AGE_SECONDS: float = Field(default=300.0, gt=0)
    IMAP_HOST: str = ""
    IMAP_PORT: int = Field(default=993, ge=1, le=65535)
    IMAP_SECURITY: Literal["none", "starttls", "ssl"] = "ssl"
    IMAP_USERNAME: str = ""
    IMAP_PASSWORD: SecretStr = SecretStr("")
    IMAP_FOLDER: str = "INBOX"
    IMAP_POLL_INTERVAL_SECONDS: float = Field(default=30.0, gt=0)
    SERPAPI_BASE_URL: str = "https://serpapi.com"
    SERPAPI_ENGINE: str = "google"
    SYNC_BACK_ENABLED: bool = True
    SYNC_BACK_INTERVAL_SECONDS: float = Field(default=30.0, gt=0)
    SYNC_BACK_MAX_ATTEMPTS: int = Field(default=5, ge=1)

    # AI
    LLM_PROVIDER: Literal["none", "azure", "openai"] = "none"
    EMBEDDINGS_PROVIDER: Literal["local", "azure", "openai"] = "local"

    # LLM: the chat model behind LLM_PROVIDER=azure|openai (AZURE_OPENAI_* above; OPENAI_BASE_URL/KEY below)
    OPENAI_CHAT_MODEL: str = "gpt-4o-mini"
    LLM_TEMPERATURE: float = Field(default=0.2, ge=0, le=2)
    LLM_TIMEOUT_SECONDS: float = Field(default=60.0, gt=0)
    LLM_MAX_RETRIES: int = Field(default=3, ge=0, le=10)
    """Retries of one call on 408/409/429/5xx, timeouts and broken connections (Retry-After honoured)."""
    LLM_MAX_OUTPUT_TOKENS: int = Field(default=1500, ge=64)
    LLM_TOKENS_PER_MINUTE: int = Field(default=0, ge=0)
    """The deployment's token quota; calls wait (at most LLM_BUDGET_MAX_WAIT_SECONDS) when it is spent. 0: no limit."""
    LLM_BUDGET_MAX_WAIT_SECONDS: float = Field(default=30.0, ge=0)
    LLM_PRICE_INPUT_PER_1K: float = Field(default=0.0, ge=0)
    LLM_PRICE_OUTPUT_PER_1K: float = Field(default=0.0, ge=0)
    LLM_REDACT_PII: bool = True
    """Replace e-mail addresses, phone, IBAN and card numbers in ticket text before it reaches the model."""
    LLM_TOOL_CALLING: bool = True
    """False for servers without tool calling (e.g. llama.cpp without --jinja): a fixed chain replaces the agent."""
    LLM_STRUCTURED_OUTPUT: Literal["json_schema", "function_calling"] = "json_schema"
    LLM_AGENT_MAX_ITERATIONS: int = Field(default=3, ge=1, le=10)

    # Knowledge base and embeddings
    CHROMA_HOST: str = ""
    CHROMA_PORT: int = Field(default=8000, ge=1, le=65535)
    CHROMA_COLLECTION: str = Field(default="kb_chunks", min_length=3, max_length=512)
    OPENAI_BASE_URL: str = ""
    OPENAI_API_KEY: SecretStr = SecretStr("")
    OPENAI_EMBED_MODEL: str = "text-embedding-3-small"
    EMBED_BATCH_SIZE: int = Field(default=32, ge=1)
    KB_MAX_FILE_BYTES: int = Field(default=25 * 1024 * 1024, ge=1)
    KB_CHUNK_SIZE: int = Field(default=400, ge=100)
    KB_CHUNK_OVERLAP: int = Field(default=80, ge=0)
    KB_TESSERACT_CMD: str = "tesseract"
    KB_OCR_LANGUAGES: str = "eng"
    KB_INDEX_INTERVAL_SECONDS: float = Field(default=60.0, gt=0)
    KB_SEARCH_CANDIDATES: int = Field(default=50, ge=1)

    # Dashboard and sign-in
    DASHBOARD_SESSION_IDLE_MINUTES: float = Field(default=30.0, gt=0)
    DASHBOARD_MAX_FAILED_LOGINS: int = Field(default=5, ge=1)
    DASHBOARD_LOCKOUT_MINUTES: float = Field(default=15.0, gt=0)
    DASHBOARD_SSO_DEFAULT_ROLE: Literal["viewer", "agent", "lead", "admin"] = "viewer"
    DASHBOARD_REFRESH_SECONDS: float = Field(default=10.0, ge=1)
    DASHBOARD_PAGE_SIZE: int = Field(default=50, ge=10, le=500)
    SLA_RESOLUTION_HOURS: dict[str, float] = Field(
        default_factory=lambda: {"critical": 4.0, "high": 8.0, "medium": 24.0, "low": 72.0, "": 24.0}
    )
    """Hours to resolve by priority (lower-case); "" is the target for tickets without a priority."""

    @field_validator("DATABASE_URL")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        if value.startswith("postgresql://"):
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @property
    def database_url(self) -> str:
        """The configured database, or a SQLite file under DATA_DIR."""
        return self.DATABASE_URL or f"sqlite:///{self.DATA_DIR / 'no_touch.db'}"

    @property
    def from_address(self) -> str:
        """The desk's sending address: the seed's MAILGUN_FROM_EMAIL when set, else SUPPORT_FROM_EMAIL."""
        return self.MAILGUN_FROM_EMAIL or self.SUPPORT_FROM_EMAIL

    def own_domains(self) -> set[str]:
        """The desk's own domains (its sending addresses and Mailgun domain) and the configured extra ones."""
        addresses = (self.SUPPORT_FROM_EMAIL, self.MAILGUN_FROM_EMAIL)
        domains = {address.rsplit("@", 1)[-1] for address in addresses if "@" in address}
        domains |= {self.MAILGUN_DOMAIN, *self.OUTGOING_ALLOWED_DOMAINS.split(",")}
        if self.DEMO_FEED_ENABLED:
            domains |= set(DEMO_COMPANY_DOMAINS)
        return {domain.strip().lower().lstrip("@.") for domain in domains if domain and domain.strip()}

    def secret_values(self) -> list[str]:
        """Every configured secret, so logging can redact it wherever it appears, also outside a URL's shape."""
        secrets = [value.get_secret_value() for value in self.__dict__.values() if isinstance(value, SecretStr)]
        for value in self.__dict__.values():
            if isinstance(value, str) and "@" in value and "://" in value:
                password = _url_password(value)
                secrets += [password, unquote(password)]
        return list(dict.fromkeys(secret for secret in secrets if len(secret) >= 4))


def _url_password(url: str) -> str:
    """The password in a URL's user-info (`scheme://user:password@host`), or "" when it has none."""
    try:
        return urlsplit(url).password or ""
    except ValueError:
        return ""


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning pydantic's report into one message per variable, without values."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        problems = [f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()]
        raise ConfigurationError(redact_url_credentials("Invalid configuration — " + "; ".join(problems))) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
