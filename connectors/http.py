"""What every HTTP connector shares: timeouts, retries with backoff, Retry-After, a circuit breaker, safe errors.

Written once so each vendor module only says which paths to call and how to read the answers. Errors
name the connector, the method and the path, never a query string, header or body that could carry a
secret: SerpAPI takes its key in the query, and requests' own exceptions print whole URLs.

Every call that fails for good is counted in `nts_connector_errors_total` (the default Prometheus registry, which
the engine's metrics endpoint serves; alert rules in deploy/prometheus-alerts.yml).
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import random
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import certifi
import requests
from prometheus_client import Counter
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from connectors.base import ConfigurationError, ConnectorSettings
from connectors.redaction import redact_url_credentials

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
REJECTED_BEFORE_PROCESSING = frozenset({429, 503})
MAX_JSON_BYTES = 50 * 1024 * 1024
CONNECTOR_ERRORS = Counter(
    "nts_connector_errors", "Connector calls failed after their retries, by error class", ["connector", "kind"]
)


class ConnectorError(RuntimeError):
    """A call to an outside system failed; the message says which connector and what to do, never a secret.

    Messages are built from URLs and vendor answers, so credentials in any URL they quote are removed here.
    """

    def __init__(
        self,
        connector: str,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        not_sent: bool = False,
    ) -> None:
        super().__init__(redact_url_credentials(f"{connector}: {message}"))
        self.not_sent = not_sent
        self.connector = connector
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class AuthenticationError(ConnectorError):
    """401/403: the credentials are wrong or lack a permission; retrying will not help."""


class NotFoundError(ConnectorError):
    """404: the record or the endpoint does not exist (a wrong base URL looks like this too)."""


class UnreachableError(ConnectorError):
    """No answer at all: DNS, refused connection, TLS failure or timeout."""


class MalformedResponseError(ConnectorError):
    """The server answered 2xx with something we cannot read."""


class CircuitOpenError(ConnectorError):
    """Calls are paused after repeated failures, so one dead source does not hold up the engine."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one call: attempts in total, exponential backoff with jitter, Retry-After up to a cap."""

    attempts: int = 4
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 60.0
    max_retry_after_seconds: float = 300.0
    connect_timeout: float = 5.0
    read_timeout: float = 30.0

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.connect_timeout, self.read_timeout)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before attempt `attempt + 1`: the server's Retry-After when given, else backoff."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after_seconds)
        base = min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)
        return base * (0.5 + random.random() / 2)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


@dataclass
class CircuitBreaker:
    """Closed → open after `threshold` failed calls in a row → half-open after `reset_seconds` → closed on success."""

    name: str
    threshold: int = 5
    reset_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    last_error: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half-open" if self.clock() - self.opened_at >= self.reset_seconds else "open"

    def before_call(self) -> None:
        with self._lock:
            if self.state == "open":
                assert self.opened_at is not None
                wait = self.reset_seconds - (self.clock() - self.opened_at)
                raise CircuitOpenError(
                    self.name,
                    f"paused for {wait:.0f}s more after {self.failures} failed calls in a row "
                    f"(last: {self.last_error})",
                    retryable=True,
                    retry_after=wait,
                    not_sent=True,
                )

    def probe(self) -> None:
        """Let the next call through now as the half-open trial, instead of after `reset_seconds`: a poller calls
        this on its own interval, so a source that is back is read again within one poll interval."""
        with self._lock:
            if self.opened_at is not None:
                self.opened_at = min(self.opened_at, self.clock() - self.reset_seconds)

    def record_success(self) -> None:
        """Close the breaker; the one line that says calls go through again."""
        with self._lock:
            if self.opened_at is not None:
                log.warning("%s: reachable again after %s failed calls; calls resume", self.name, self.failures)
            self.failures = 0
            self.opened_at = None
            self.last_error = None

    def record_failure(self, error: str) -> None:
        """Count a failed call; the one line when the breaker opens (a failed half-open trial re-opens it quietly)."""
        with self._lock:
            self.failures += 1
            self.last_error = error[:300]
            if self.failures >= self.threshold or self.opened_at is not None:
                if self.opened_at is None:
                    log.warning(
                        "%s: %s failed calls in a row, pausing calls (a trial call every poll or after %.0fs): %s",
                        self.name,
                        self.failures,
                        self.reset_seconds,
                        self.last_error,
                    )
                self.opened_at = self.clock()


_breakers: dict[str, CircuitBreaker] = {}
_breakers_guard = threading.Lock()


def breaker_for(name: str, *, threshold: int = 5, reset_seconds: float = 60.0) -> CircuitBreaker:
    """The process-wide breaker of one connector, shared by its poller, write-back and health check."""
    with _breakers_guard:
        breaker = _breakers.get(name)
        if breaker is None:
            breaker = _breakers[name] = CircuitBreaker(name, threshold=threshold, reset_seconds=reset_seconds)
        return breaker


def reset_breakers() -> None:
    """Forget every breaker's state (tests, and the Settings page after a configuration change)."""
    with _breakers_guard:
        _breakers.clear()


def call_with_retry(
    operation: Callable[[], T],
    *,
    policy: RetryPolicy,
    breaker: CircuitBreaker | None = None,
    sleep: Callable[[float], None] = time.sleep,
    idempotent: bool = True,
) -> T:
    """Run `operation`, retrying ConnectorErrors marked retryable; the breaker sees one outcome per call.

    A non-idempotent call (a send) is retried only when the server said it did not process it (429/503)
    or the connection was never made, so a retry cannot do the thing twice.
    """
    if breaker is not None:
        breaker.before_call()
    attempt = 0
    while True:
        attempt += 1
        try:
            result = operation()
        except ConnectorError as error:
            safe_to_repeat = idempotent or error.status in REJECTED_BEFORE_PROCESSING or error.not_sent
            if error.retryable and safe_to_repeat and attempt < policy.attempts:
                wait = policy.delay(attempt, error.retry_after)
                log.warning("%s; attempt %s of %s, retrying in %.1fs", error, attempt, policy.attempts, wait)
                sleep(wait)
                continue
            if breaker is not None and _counts_against_source(error):
                breaker.record_failure(str(error))
            elif breaker is not None:
                breaker.record_success()
            count_connector_error(error)
            raise
        if breaker is not None:
            breaker.record_success()
        return result


def count_connector_error(error: ConnectorError) -> None:
    """A connector call failed for good (after its retries), so the caller sees the error."""
    CONNECTOR_ERRORS.labels(error.connector, type(error).__name__).inc()


def _counts_against_source(error: ConnectorError) -> bool:
    """Only an unhealthy source opens the breaker: a 404 for one record or a 400 for one payload does not."""
    return isinstance(error, UnreachableError | AuthenticationError | MalformedResponseError) or error.retryable


def url_host(url: str) -> str:
    """A URL's host and port, without the user-info (`user:password@`) a configured URL may carry."""
    return urlsplit(url).netloc.rpartition("@")[2]


def describe_url(url: str) -> str:
    """Host, port and path only: user-info carries passwords, query strings keys (SerpAPI) and user data."""
    return f"{url_host(url)}{urlsplit(url).path}"


def error_from_response(connector: str, method: str, response: requests.Response) -> ConnectorError:
    """The ConnectorError a non-2xx answer means, with the vendor's own error message when it gives one."""
    status = response.status_code
    where = f"{method} {describe_url(response.url or '')}"
    detail = vendor_message(response)
    text = f"{where} answered {status}" + (f": {detail}" if detail else "")
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    if status in (401, 403):
        hint = "check the credentials" if status == 401 else "the account lacks a permission for this"
        return AuthenticationError(connector, f"{text} ({hint})", status=status)
    if status == 404:
        return NotFoundError(connector, text, status=status)
    return ConnectorError(connector, text, status=status, retryable=status in RETRYABLE_STATUS, retry_after=retry_after)


def vendor_message(response: requests.Response, limit: int = 300) -> str:
    """The error text a vendor put in its body (ServiceNow, Graph, Jira, Mailgun, SerpAPI shapes), shortened."""
    try:
        body = response.json()
    except ValueError:
        return ""
    candidates: list[Any] = []
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            candidates += [error.get("message"), error.get("detail"), error.get("code")]
        candidates += [
            error if isinstance(error, str) else None,
            body.get("error_description"),
            body.get("message"),
            "; ".join(str(m) for m in body.get("errorMessages", []) if m) or None,
        ]
    message = next((str(value) for value in candidates if value), "")
    return message.replace("\n", " ")[:limit]


@dataclass
class HttpClient:
    """A requests session bound to one connector: base URL, auth, timeouts, retries and its breaker."""

    connector: str
    base_url: str
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    auth: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    verify: bool | str = True
    sleep: Callable[[float], None] = time.sleep
    breaker: CircuitBreaker | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session.headers.update({"Accept": "application/json", "User-Agent": "no-touch-support/0.1"})
        self.session.headers.update(self.headers)
        self.session.auth = self.auth
        self.session.verify = self.verify
        if self.breaker is None:
            self.breaker = breaker_for(self.connector)

    def url(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else f"{self.base_url}/{path_or_url.lstrip('/')}"

    def request(
        self, method: str, path_or_url: str, *, idempotent: bool | None = None, **kwargs: Any
    ) -> requests.Response:
        """One call with retries; a 2xx response or a ConnectorError."""
        url = self.url(path_or_url)
        retry_safe = method.upper() in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS") if idempotent is None else idempotent
        assert self.breaker is not None
        return call_with_retry(
            lambda: self._attempt(method, url, **kwargs),
            policy=self.policy,
            breaker=self.breaker,
            sleep=self.sleep,
            idempotent=retry_safe,
        )

    def download(self, path_or_url: str, *, max_bytes: int, **kwargs: Any) -> bytes | None:
        """A file's bytes, streamed, with retries; None as soon as it passes `max_bytes`, whatever the server
        declared (the rest is never read)."""
        url = self.url(path_or_url)

        def attempt() -> bytes | None:
            response = self._attempt("GET", url, stream=True, **kwargs)
            try:
                return read_capped(response, max_bytes)
            except requests.exceptions.Timeout:
                raise _unreachable(self.connector, "GET", url, "timed out waiting for the answer") from None
            except (requests.exceptions.RequestException, OSError):
                raise _unreachable(self.connector, "GET", url, "the answer was cut off mid-body") from None

        assert self.breaker is not None
        return call_with_retry(attempt, policy=self.policy, breaker=self.breaker, sleep=self.sleep)

    def _attempt(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One try of one call: a 2xx response or a ConnectorError saying whether trying again may help."""
        kwargs.setdefault("timeout", self.policy.timeout)
        kwargs.setdefault("verify", self.verify)  # per request: REQUESTS_CA_BUNDLE would override the session's
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.exceptions.ConnectTimeout:
            raise _unreachable(self.connector, method, url, "connection timed out", not_sent=True) from None
        except requests.exceptions.SSLError:
            raise _unreachable(self.connector, method, url, "TLS handshake failed", not_sent=True) from None
        except requests.exceptions.ConnectionError as error:
            reason = "connection reset" if "reset" in str(error).lower() else "connection failed"
            not_sent = "refused" in str(error).lower() or "resolve" in str(error).lower()
            raise _unreachable(self.connector, method, url, reason, not_sent=not_sent) from None
        except requests.exceptions.Timeout:
            raise _unreachable(self.connector, method, url, "timed out waiting for the answer") from None
        except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError):
            raise _unreachable(self.connector, method, url, "the answer was cut off mid-body") from None
        if response.status_code >= 400:
            raise error_from_response(self.connector, method, response)
        return response

    def json(self, method: str, path_or_url: str, **kwargs: Any) -> Any:
        """A call whose 2xx answer must be JSON; anything else is a MalformedResponseError."""
        response = self.request(method, path_or_url, **kwargs)
        return parse_json(self.connector, method, response)

    def get_json(self, path_or_url: str, **kwargs: Any) -> Any:
        return self.json("GET", path_or_url, **kwargs)


def parse_json(connector: str, method: str, response: requests.Response) -> Any:
    where = f"{method} {describe_url(response.url or '')}"
    if len(response.content) > MAX_JSON_BYTES:
        raise MalformedResponseError(connector, f"{where}: answer of {len(response.content)} bytes is too large")
    try:
        text = response.content.decode("utf-8")
    except UnicodeDecodeError:
        # One bad byte in one description must not stall a source forever: keep the rest, mark the damage.
        log.warning("%s %s: answer is not valid UTF-8; undecodable bytes replaced", connector, where)
        text = response.content.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError as error:
        raise MalformedResponseError(connector, f"{where}: answer is not JSON ({error.msg} at {error.pos})") from None


DEFAULT_PORTS = {"http": 80, "https": 443}
DOWNLOAD_CHUNK_BYTES = 64 * 1024


def origin(url: str, *, allow_userinfo: bool = False) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL as the HTTP client will connect to it (urllib3's parser, the one
    requests uses: a backslash ends the host there, as in browsers), or None for anything else: no scheme or host,
    user-info (unless allowed, for a configured base URL), whitespace or control characters."""
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return None
    try:
        parsed = parse_url(url)
    except LocationParseError:
        return None
    scheme = (parsed.scheme or "").lower()
    if scheme not in DEFAULT_PORTS or not parsed.host or (parsed.auth is not None and not allow_userinfo):
        return None
    return scheme, parsed.host.lower().rstrip("."), parsed.port or DEFAULT_PORTS[scheme]


def same_origin(url: str, base_url: str) -> bool:
    """Whether `url` is served by the configured `base_url`'s server: the same scheme, host and port (RFC 6454),
    compared parsed, never as strings, so `https://jira.example.com.evil.test` or `https://jira.example.com@evil.test`
    is not `https://jira.example.com`."""
    mine = origin(base_url, allow_userinfo=True)
    return mine is not None and origin(url) == mine


def read_capped(response: requests.Response, max_bytes: int) -> bytes | None:
    """A streamed response's body, or None once it passes `max_bytes` (a declared Content-Length over it stops
    before the first byte, a false or missing one when the count passes it); the connection is closed either way."""
    try:
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            return None
        chunks, received = [], 0
        for chunk in response.iter_content(DOWNLOAD_CHUNK_BYTES):
            received += len(chunk)
            if received > max_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        response.close()


def tls_problem(error: ssl.SSLError) -> str:
    """What went wrong in a TLS handshake, with the setting that fixes the usual cause."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"TLS certificate not trusted ({error.verify_message}); for a private CA set the connector's "
            "<PREFIX>_CA_BUNDLE (e.g. IMAP_CA_BUNDLE; added to the system store) or CONNECTOR_CA_BUNDLE (replaces it)"
        )
    return f"TLS handshake failed ({error.reason or type(error).__name__})"


def _unreachable(connector: str, method: str, url: str, reason: str, *, not_sent: bool = False) -> UnreachableError:
    return UnreachableError(connector, f"{method} {describe_url(url)}: {reason}", retryable=True, not_sent=not_sent)


def policy_from_settings(settings: ConnectorSettings) -> RetryPolicy:
    """The retry policy the `# Connectors` settings describe."""
    return RetryPolicy(
        attempts=settings.CONNECTOR_RETRY_ATTEMPTS,
        backoff_seconds=settings.CONNECTOR_BACKOFF_SECONDS,
        max_backoff_seconds=settings.CONNECTOR_MAX_BACKOFF_SECONDS,
        max_retry_after_seconds=settings.CONNECTOR_MAX_RETRY_AFTER_SECONDS,
        connect_timeout=settings.CONNECTOR_CONNECT_TIMEOUT_SECONDS,
        read_timeout=settings.CONNECTOR_READ_TIMEOUT_SECONDS,
    )


def verify_setting(settings: ConnectorSettings, own_bundle: str = "") -> bool | str:
    """What `requests` checks certificates against: CONNECTOR_CA_BUNDLE when set (it replaces the trust store for
    every connector), else the system store (certifi, as requests ships it); plus `own_bundle`, the connector's
    own <PREFIX>_CA_BUNDLE, which adds its private CA to that store instead of replacing it."""
    if not own_bundle:
        return settings.CONNECTOR_CA_BUNDLE or True
    return combined_bundle(settings.CONNECTOR_CA_BUNDLE or certifi.where(), own_bundle)


def tls_context(settings: ConnectorSettings, own_bundle: str = "") -> ssl.SSLContext:
    """The TLS context for a socket connector (IMAP, SMTP): the system store (OpenSSL's default paths), or
    CONNECTOR_CA_BUNDLE instead of it; plus the connector's own CA bundle, added."""
    context = ssl.create_default_context(cafile=settings.CONNECTOR_CA_BUNDLE or None)
    if own_bundle:
        try:
            context.load_verify_locations(cafile=own_bundle)
        except (OSError, ssl.SSLError) as error:
            raise ConfigurationError(f"CA bundle {own_bundle} cannot be read as PEM certificates: {error}") from None
    return context


_bundle_guard = threading.Lock()


def combined_bundle(*paths: str) -> str:
    """One PEM file holding every certificate of `paths`, in a private cache folder, named by its content (requests
    takes one file); written once per distinct content."""
    parts = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigurationError(f"CA bundle {path} cannot be read: {error}") from None
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise ConfigurationError(f"CA bundle {path} holds no PEM certificate")
        parts.append(text.strip() + "\n")
    content = "".join(parts)
    folder = Path(tempfile.gettempdir()) / f"no-touch-ca-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    target = folder / f"{hashlib.sha256(content.encode()).hexdigest()[:24]}.pem"
    with _bundle_guard:
        if not target.exists():
            folder.mkdir(mode=0o700, exist_ok=True)
            partial = target.with_suffix(f".{os.getpid()}.tmp")
            partial.write_text(content, encoding="ascii")
            partial.replace(target)
    return str(target)


class VerifyingSession(requests.Session):
    """A session whose `verify` wins over REQUESTS_CA_BUNDLE (requests lets the environment override a session's)."""

    def __init__(self, verify: bool | str) -> None:
        super().__init__()
        self.verify = verify

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)


def breaker_from_settings(name: str, settings: ConnectorSettings) -> CircuitBreaker:
    return breaker_for(
        name, threshold=settings.CONNECTOR_BREAKER_THRESHOLD, reset_seconds=settings.CONNECTOR_BREAKER_RESET_SECONDS
    )
