"""The "Did this solve your problem?" links of every resolution e-mail and the page behind them.

A link is `DESK_PUBLIC_URL/r/<outcome>.<y|n>.<expiry>.<signature>`, signed with HMAC-SHA256 under
DESK_LINK_SECRET (or a key generated once under DATA_DIR). Opening it (GET) only shows a page, so mail
scanners that follow links record nothing; the customer's button (POST) records the answer, an optional
comment and an optional 1–5 rating. The page shows no ticket data, only a question and a thank-you. The
answer is single-use per resolution (engine/outcomes/outcomes.py `claim_answer`, in the answer's transaction): a
replay, or the other link after one was used, shows the thank-you and changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.core.db import transaction
from engine.core.models import utcnow
from engine.core.settings import Settings
from engine.outcomes.outcomes import Answer, record_link_answer

log = logging.getLogger(__name__)
PREFIX = "/r/"
MAX_FORM_BYTES = 16 * 1024
SECRET_FILE = "link_secret"  # noqa: S105 - the file name, not a secret
StartResponse = Callable[[str, list[tuple[str, str]]], Any]
ANSWER_CODE: dict[Answer, str] = {"yes": "y", "no": "n"}


def link_secret(settings: Settings) -> bytes:
    """DESK_LINK_SECRET, or a random key created once under DATA_DIR (readable by the desk's user only)."""
    configured = settings.DESK_LINK_SECRET.get_secret_value()
    if configured:
        return configured.encode()
    path = Path(settings.DATA_DIR) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it a moment ago
            pass
        else:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip().encode()


def _signature(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_link(key: bytes, outcome_id: int, answer: Answer, expires: datetime) -> str:
    payload = f"{outcome_id}.{ANSWER_CODE[answer]}.{int(expires.timestamp())}"
    return f"{payload}.{_signature(key, payload)}"


@dataclass(frozen=True)
class LinkCheck:
    verdict: Literal["valid", "expired", "forged", "malformed"]
    outcome_id: int = 0
    answer: Answer = "yes"


TOKEN_SHAPE = re.compile(r"[0-9]{1,18}\.[yn]\.[0-9]{1,12}\.[A-Za-z0-9_-]{1,64}")
"""Our links' shape, ASCII only: a token of any other shape is refused before it is parsed or compared."""


def check_link(key: bytes, token: str, *, now: datetime | None = None) -> LinkCheck:
    """Whether `token` is one of ours (signature first, so a forged expiry is "forged") and still in time;
    "malformed" for anything not of our links' shape (wrong parts, non-ASCII characters, Unicode digits)."""
    if not TOKEN_SHAPE.fullmatch(token):
        return LinkCheck("malformed")
    parts = token.split(".")
    if not hmac.compare_digest(_signature(key, ".".join(parts[:3])).encode("ascii"), parts[3].encode("ascii")):
        return LinkCheck("forged")
    answer: Answer = "yes" if parts[1] == "y" else "no"
    if int(parts[2]) < (now or utcnow()).timestamp():
        return LinkCheck("expired", int(parts[0]), answer)
    return LinkCheck("valid", int(parts[0]), answer)


def confirmation_block(settings: Settings, outcome_id: int) -> str:
    """The lines a resolution e-mail ends with, or "" when DESK_PUBLIC_URL is not set."""
    if not settings.DESK_PUBLIC_URL:
        return ""
    key = link_secret(settings)
    expires = utcnow() + timedelta(days=settings.DESK_LINK_TTL_DAYS)
    base = settings.DESK_PUBLIC_URL + PREFIX
    return (
        "Did this solve your problem?\n"
        f"Yes, it is solved: {base}{sign_link(key, outcome_id, 'yes', expires)}\n"
        f"No, I still need help: {base}{sign_link(key, outcome_id, 'no', expires)}"
    )


PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""The page runs no script, loads nothing, posts only to itself and is never framed (clickjacking on the button)."""
PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex">
<title>{title}</title><style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}}
textarea{{width:100%}}button{{font-size:1rem;padding:.5rem 1.2rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>"""


def _page(title: str, body: str) -> bytes:
    return PAGE.format(title=html.escape(title), body=body).encode()


def _question(answer: Answer) -> bytes:
    """The form a link opens: the answer is confirmed by a button, with an optional comment and rating."""
    stars = "".join(f'<label><input type="radio" name="rating" value="{n}"> {n}</label> ' for n in range(1, 6))
    comment = (
        '<p><label for="comment">What is still not working? (optional)</label><br>'
        '<textarea id="comment" name="comment" rows="4" maxlength="2000"></textarea></p>'
        if answer == "no"
        else ""
    )
    label = "Yes, my problem is solved" if answer == "yes" else "No, I still need help"
    return _page(
        "Did this solve your problem?",
        f'<form method="post">{comment}<p>How satisfied are you with our support? (optional, 1 = not at all, '
        f'5 = very)<br>{stars}</p><p><button type="submit">{label}</button></p></form>',
    )


NOT_VALID = "This link is not valid"
THANKS = {
    "yes": "Thank you! We are glad it is solved.",
    "no": "Thank you. A person from our team will take it from here and get back to you.",
    "again": "Thank you, we already have your answer. To add something, simply reply to our e-mail.",
}


def confirmation_app(factory: sessionmaker[Session], settings: Settings) -> Callable[..., Iterable[bytes]]:
    """The WSGI application for `/r/<token>`: GET shows the question, POST records the answer once."""
    key = link_secret(settings)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def answer_with(status: str, page: bytes) -> list[bytes]:
            start_response(
                status,
                [
                    ("Content-Type", "text/html; charset=utf-8"),
                    ("Cache-Control", "no-store"),
                    ("Referrer-Policy", "no-referrer"),
                    ("X-Frame-Options", "DENY"),
                    ("Content-Security-Policy", PAGE_POLICY),
                ],
            )
            return [page]

        token = str(environ.get("PATH_INFO", ""))[len(PREFIX) :]
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "POST"):
            return answer_with("405 Method Not Allowed", _page("Not allowed", "<p>Open the link from the e-mail.</p>"))
        link = check_link(key, token)
        if link.verdict == "malformed":
            log.warning("confirmation link refused: not of the desk's link shape (%s characters)", len(token))
            return answer_with("400 Bad Request", _page(NOT_VALID, "<p>Please reply to our e-mail.</p>"))
        if link.verdict == "forged":
            log.warning("confirmation link refused: not signed by this desk")
            return answer_with("404 Not Found", _page(NOT_VALID, "<p>Please reply to our e-mail.</p>"))
        if link.verdict == "expired":
            log.info("confirmation link expired for outcome %s", link.outcome_id)
            body = "<p>This link has expired. If you still need help, simply reply to our e-mail.</p>"
            return answer_with("410 Gone", _page("This link has expired", body))
        if method == "GET":
            return answer_with("200 OK", _question(link.answer))
        try:
            form = _read_form(environ)
        except ValueError as error:
            log.warning("confirmation answer refused for outcome %s: %s", link.outcome_id, error)
            return answer_with("400 Bad Request", _page("Please try again", f"<p>{html.escape(str(error))}</p>"))
        try:
            with transaction(factory) as session:
                first = record_link_answer(session, link.outcome_id, link.answer, **form)
        except SQLAlchemyError as error:
            log.error("confirmation answer for outcome %s not stored: %s", link.outcome_id, type(error).__name__)
            body = "<p>We could not record your answer just now. Please try the link again in a minute.</p>"
            return answer_with("503 Service Unavailable", _page("Please try again", body))
        log.info("confirmation %s for outcome %s: %s", link.answer, link.outcome_id, "recorded" if first else "again")
        return answer_with("200 OK", _page("Thank you", f"<p>{THANKS[link.answer if first else 'again']}</p>"))

    return app


def _read_form(environ: dict[str, Any]) -> dict[str, Any]:
    """The optional comment and rating; ValueError with what to fix for a body we will not read."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if not 0 <= length <= MAX_FORM_BYTES:
        raise ValueError("the answer is too long")
    fields = parse_qs(environ["wsgi.input"].read(length).decode("utf-8", "replace")) if length else {}
    rating = (fields.get("rating") or [""])[0].strip()
    if rating and rating not in {"1", "2", "3", "4", "5"}:
        raise ValueError("a rating is a number from 1 to 5")
    comment = "".join(ch for ch in (fields.get("comment") or [""])[0] if ch.isprintable() or ch in "\n\t")
    return {"comment": comment, "csat": int(rating) if rating else None}
