"""Configuration from the environment and `.env`, with the seed's variable names kept as they are.

Every setting has a safe default (the embedded, keyless mode) or fails with one message that names
the variable, so an operator knows exactly what to fix. Secrets are `SecretStr`: they never print.
"""

from __future__ import annotations

import ipaddress
from functools import cache, lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connectors import registry
from connectors.base import ConfigurationError
from connectors.redaction import redact_url_credentials

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class CoreSettings(BaseSettings):
    """The engine's own settings; `Settings` adds every connector's, and the variables all connectors share."""

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
    # MAX_ATTACHMENT_BYTES: connectors.base.ConnectorSettings (sources read it when they fetch attachments)

    # Outgoing mail
    OUTBOX_TRANSPORT: str = "database"
    """`database` (the embedded local mailbox) or the name of a connector that sends mail (connectors/registry.py)."""
    SUPPORT_FROM_EMAIL: str = "support@no-touch.localhost"
    SUPPORT_FROM_NAME: str = "No-Touch Support"
    SUPPORT_SIGNATURE: str = "— The Support Team"
    SUPPORT_REPLY_TO: str = ""
    """Where customers' replies should go (`Reply-To` on every message we send), when not to the sending address.
    Bounces still go to the sender (the envelope), so they reach the desk only if that mailbox is the polled one."""
    AUTOPILOT_ENABLED: bool = False
    AUTO_SEND_MIN_CONFIDENCE: float = Field(default=0.75, ge=0, le=1)
    """The measured operating point of the per-desk calibrated confidence (bench/evaluation.py)."""
    RESOLVE_MIN_CONFIDENCE: float = Field(default=0.3, ge=0, le=1)
    """Retrieval-only: the least confidence at which a draft answer is prepared; under AUTO_SEND_MIN_CONFIDENCE it
    waits for a person, who approves a right one instead of writing it (and so teaches the desk)."""
    REQUEST_SIMILARITY_FLOOR: float = Field(default=0.30, ge=-1, le=1)
    """A question the cited passage answers in other words: its embedding similarity to that passage reaches this floor
    and no other passage found is closer (engine/analysers/confidence.py). Measured for the bundled MiniLM model on the
    demo articles: off-topic questions reach at most 0.25, answered ones 0.30-0.65; re-measure for another embedder."""
    LEARNED_MATCH_MIN_SIMILARITY: float = Field(default=0.45, ge=0, le=1)
    """A new ticket whose match score (0..1: its question and the answer's text by embedding and shared terms, fused,
    engine/analysers/learned_match.py) with a learned answer reaches this may be given that answer, until the desk's
    own learned paraphrases support a floor of their own; closer matches earn more confidence. At 0.45, 29 of
    30 matches were right on the paraphrase stream it was tuned on (bench/learned_match.py, its last 70 %)."""
    LEARNED_FULL_SIMILARITY: float = Field(default=0.8, ge=0, le=1)
    """From this match score on, a learned answer's confidence is its track record alone (a close paraphrase)."""
    LEARNED_REOPENS_TO_HOLD: int = Field(default=2, ge=1)
    """An answer customers re-opened this many times is no longer sent on its own until a lead looks at it."""
    LEARNED_ARTICLE_MIN_APPROVALS: int = Field(default=3, ge=1)
    """A learned answer approved this many times is offered to the leads as a knowledge-base article draft."""
    DEFAULT_TEAM: str = "Service Desk"
    ROUTING_ENABLED: bool = True
    """Learn team routing from resolved tickets (engine/analysers/routing.py) for tickets whose category names no
    team."""
    ROUTING_MIN_HISTORY: int = Field(default=300, ge=10)
    ROUTING_RETRAIN_AFTER: int = Field(default=100, ge=1)
    ROUTING_TARGET_PRECISION: float = Field(default=0.85, gt=0, le=1)
    ROUTING_SPECIALIST_PRECISION: float = Field(default=0.95, gt=0, le=1)
    """How often a ticket the learned specialist signal escalates must really need a specialist team."""
    ROUTING_INTERVAL_SECONDS: float = Field(default=900.0, gt=0)
    MAIL_AUTHSERV_ID: str = ""
    """The name the receiving mail server writes its SPF/DKIM/DMARC verdicts under (Authentication-Results, RFC
    8601). Set, a message it did not verify neither continues a ticket nor gets an automatic answer
    (engine/trust/mailguard.py); empty, the From address is believed as the server delivers it."""
    OUTGOING_ALLOWED_DOMAINS: str = ""
    """Comma-separated domains an automatic message may link or write to; the desk's own domains always are."""
    OUTGOING_CONTACT_POINTS: str = ""
    """Comma-separated phone numbers and e-mail addresses of the desk's own that an automatic message may carry (a lead
    adds more on the Settings page); any other number or address holds the message and quarantines knowledge."""
    MAX_AUTOMATED_EMAILS_PER_HOUR: int = Field(default=5, ge=0)
    """Mail-loop guard per recipient address and hour, counted apart for acknowledgements and for answers, so a
    customer with several tickets does not lose acknowledgements to answers (or the other way round)."""

    # Outcomes: "Did this solve your problem?" links and resolution states (engine/outcomes/outcomes.py)
    DESK_PUBLIC_URL: str = ""
    """The base URL customers reach the engine's web endpoint at (https://support.example.com); unset: no links."""
    DESK_LINK_SECRET: SecretStr = SecretStr("")
    """Signs the links; unset: a random key generated once and kept in DATA_DIR/link_secret."""
    DESK_LINK_TTL_DAYS: float = Field(default=14.0, gt=0)
    OUTCOME_ASSUMED_HOURS: float = Field(default=24.0, gt=0)
    """A resolution with no reply for this long counts as assumed solved."""
    OUTCOME_DURABLE_DAYS: float = Field(default=7.0, gt=0)
    """A resolution not re-opened for this long is durable."""
    OUTCOME_INTERVAL_SECONDS: float = Field(default=300.0, gt=0)

    # The engine's web endpoint, `python -m engine run --webhook-port N` (engine/delivery/webhooks.py, on waitress)
    WEB_THREADS: int = Field(default=4, ge=1, le=64)
    """Worker threads that run requests; the server reads each request whole before a worker takes it."""
    WEB_CONNECTION_LIMIT: int = Field(default=500, ge=1, le=10_000)
    """Open connections at most; past it the server stops accepting until some close."""
    WEB_IDLE_TIMEOUT_SECONDS: int = Field(default=30, ge=1)
    """A connection that sends nothing for this long, inside a request or between requests, is closed."""
    WEB_REQUEST_TIMEOUT_SECONDS: int = Field(default=30, ge=1)
    """A request must arrive whole within this, however slowly it trickles in, else its connection is closed."""

    # Seed §4.3: Azure OpenAI (each connector's own settings live in its module, see connectors/registry.py)
    AZURE_OPENAI_ENDPOINT: str = ""
    AZURE_OPENAI_API_KEY: SecretStr = SecretStr("")
    AZURE_OPENAI_API_VERSION: str = "2024-10-21"
    AZURE_OPENAI_DEPLOYMENT: str = ""
    AZURE_OPENAI_EMBED_API_ENDPOINT: str = ""
    AZURE_OPENAI_EMBED_API_KEY: SecretStr = SecretStr("")
    AZURE_OPENAI_EMBED_VERSION: str = "2024-10-21"
    AZURE_OPENAI_EMBED_MODEL: str = "text-embedding-ada-002"

    # Connectors (CONNECTOR_* timeouts, retries, breaker, CA bundle and page size: connectors.base.ConnectorSettings)
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
    KB_EXTRACT_TIMEOUT_SECONDS: float = Field(default=20.0, gt=0)
    """Wall-clock time one untrusted file (a ticket's attachment, a knowledge file) may take to be read (kb/sandbox.py);
    then its reader is killed and the file is "too complex to read safely"."""
    KB_EXTRACT_MEMORY_MB: int = Field(default=512, ge=32)
    """Memory the reader of one file may take on top of what it starts with (its address space, RLIMIT_AS)."""
    KB_EXTRACT_MAX_CHARACTERS: int = Field(default=5_000_000, ge=1)
    """Text one file may produce (about 2,500 pages); more and the file is too complex to read safely."""
    KB_INDEX_INTERVAL_SECONDS: float = Field(default=60.0, gt=0)
    KB_CALIBRATE_INTERVAL_SECONDS: float = Field(default=30.0, gt=0)
    """How often the `calibrate` job checks whether the knowledge base changed enough to calibrate again."""
    KB_READY_WAIT_SECONDS: float = Field(default=900.0, ge=0)
    """How long a queued ticket waits for a knowledge base that is still being added, read or calibrated for the
    first time (engine/readiness.py) before it is analysed with what there is; 0: never wait."""
    KB_SEARCH_CANDIDATES: int = Field(default=50, ge=1)

    # Dashboard and sign-in
    DASHBOARD_SESSION_IDLE_MINUTES: float = Field(default=30.0, gt=0)
    DASHBOARD_SESSION_MAX_HOURS: float = Field(default=12.0, gt=0)
    """A session ends this long after sign-in, however active it is: a stolen cookie dies with it."""
    DASHBOARD_MAX_FAILED_LOGINS: int = Field(default=5, ge=1)
    """Failed sign-ins (per name typed, per client, per trusted browser) before each next attempt must wait."""
    DASHBOARD_SIGN_IN_MAX_DELAY_MINUTES: float = Field(
        default=15.0,
        gt=0,
        validation_alias=AliasChoices("DASHBOARD_SIGN_IN_MAX_DELAY_MINUTES", "DASHBOARD_LOCKOUT_MINUTES"),
    )
    """The longest wait the back-off imposes (the wait doubles from 1 s); the old name is still read."""
    DASHBOARD_SESSION_SECRET: SecretStr = SecretStr("")
    """Keys the trusted-browser cookies and the sign-in back-off's counters; unset: a random key generated once
    and kept in DATA_DIR/session-signing-key. Dashboard replicas that do not share DATA_DIR need the same value."""
    DASHBOARD_TRUSTED_PROXIES: str = ""
    """Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For names the client; a proxy on
    the loopback interface is always believed."""
    DASHBOARD_SSO_DEFAULT_ROLE: Literal["viewer", "agent", "lead", "admin"] = "viewer"
    DASHBOARD_REFRESH_SECONDS: float = Field(default=10.0, ge=1)
    DASHBOARD_PAGE_SIZE: int = Field(default=50, ge=10, le=500)
    SLA_RESOLUTION_HOURS: dict[str, float] = Field(
        default_factory=lambda: {"critical": 4.0, "high": 8.0, "medium": 24.0, "low": 72.0, "": 24.0}
    )
    """Hours to resolve by priority (lower-case); "" is the target for tickets without a priority."""
    SLA_FIRST_RESPONSE_HOURS: dict[str, float] = Field(
        default_factory=lambda: {"critical": 0.5, "high": 1.0, "medium": 4.0, "low": 8.0, "": 4.0}
    )
    """Hours to the first answer by priority (lower-case), while nobody has answered; "" is the default target."""
    SLA_BREACHING_SOON_HOURS: float = Field(default=2.0, gt=0)
    """A ticket within this many hours of a deadline is "breaching soon" (queue view, Home)."""

    @field_validator("OUTBOX_TRANSPORT")
    @classmethod
    def _known_transport(cls, value: str) -> str:
        senders = [entry.name for entry in registry.connectors() if entry.transport is not None]
        if value not in ("database", *senders):
            raise ValueError(f"must be one of: database, {', '.join(senders)}")
        return value

    @field_validator("DASHBOARD_TRUSTED_PROXIES")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        for part in filter(None, (item.strip() for item in value.split(","))):
            try:
                ipaddress.ip_network(part, strict=False)
            except ValueError:
                raise ValueError(f"{part!r} is not an IP address or network such as 10.0.0.0/8") from None
        return value

    @field_validator("DESK_PUBLIC_URL")
    @classmethod
    def _public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname):
            raise ValueError("must be an http(s) URL such as https://support.example.com")
        return value

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
        """The desk's sending address: the address a mail connector sets, when one does, else SUPPORT_FROM_EMAIL."""
        senders = (entry.sender(self) for entry in registry.connectors() if entry.sender is not None)
        return next((address for address in senders if address), self.SUPPORT_FROM_EMAIL)

    def own_domains(self) -> set[str]:
        """The desk's own domains (its sending addresses, its connectors' domains, its public URL) and the configured
        extra ones."""
        addresses = (self.SUPPORT_FROM_EMAIL, self.from_address)
        domains = {address.rsplit("@", 1)[-1] for address in addresses if "@" in address}
        domains |= set(self.OUTGOING_ALLOWED_DOMAINS.split(","))
        for entry in registry.connectors():
            if entry.own_domains is not None:
                domains |= set(entry.own_domains(self))
        if self.DESK_PUBLIC_URL:
            domains.add(urlsplit(self.DESK_PUBLIC_URL).hostname or "")
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


class Settings(*registry.settings_mixins(), CoreSettings):
    """The core settings and every registered connector's, so `settings.SNOW_API_URL` reads as it always did."""

    model_config = CoreSettings.model_config


def settings_class() -> type[Settings]:
    """`Settings`, extended with the settings of any connector registered after this module was imported."""
    late = tuple(mixin for mixin in registry.settings_mixins() if not issubclass(Settings, mixin))
    return _extended(late) if late else Settings


@cache
def _extended(mixins: tuple[type[BaseSettings], ...]) -> type[Settings]:
    return type("Settings", (*mixins, Settings), {"model_config": CoreSettings.model_config, "__module__": __name__})


def load_settings(**overrides: object) -> Settings:
    """Read settings, turning pydantic's report into one message per variable, without values."""
    try:
        return settings_class()(**overrides)
    except ValidationError as error:
        problems = [f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()]
        raise ConfigurationError(redact_url_credentials("Invalid configuration — " + "; ".join(problems))) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
