"""Structured logging: one JSON line per event with the ticket id, to stdout (stderr for commands whose result is
their stdout) and LOG_FILE, secrets redacted.

Two layers: configured secrets by value (RedactingFilter), and credentials in any URL by shape, on the whole
rendered line including extra fields and tracebacks (JsonFormatter), whether or not secrets are configured.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from connectors.redaction import redact_url_credentials
from engine.core.settings import Settings

STANDARD_FIELDS = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in STANDARD_FIELDS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact_url_credentials(json.dumps(entry, default=str, ensure_ascii=False))


class RedactingFilter(logging.Filter):
    """Replace every configured secret wherever it appears in a rendered line, as a last line of defence."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = sorted(set(secrets), key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        exc = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        if any(secret in message or secret in exc for secret in self.secrets):
            for secret in self.secrets:
                message = message.replace(secret, "***")
                exc = exc.replace(secret, "***")
            record.msg, record.args = message, None
            if exc:
                record.exc_info, record.exc_text = None, None
                record.msg = f"{message}\n{exc}"
        return True


def configure_logging(settings: Settings, stream: TextIO | None = None) -> None:
    """Install the JSON handlers once per process; calling again only refreshes the secrets list. `stream`: where
    the lines go besides LOG_FILE (stdout by default; a command whose result is its stdout logs to stderr)."""
    root = logging.getLogger()
    redactor = RedactingFilter(settings.secret_values())
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stdout)]
    if settings.LOG_FILE:
        settings.LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(settings.LOG_FILE, encoding="utf-8"))
    for handler in list(root.handlers):
        if getattr(handler, "no_touch", False):
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        handler.no_touch = True  # type: ignore[attr-defined]
        handler.setFormatter(JsonFormatter())
        handler.addFilter(redactor)
        root.addHandler(handler)
    root.setLevel(settings.LOG_LEVEL)
    for noisy in ("apscheduler", "httpx", "urllib3", "chromadb", "sentence_transformers", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
