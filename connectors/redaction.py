"""Credentials written into URLs (`https://user:password@host`, `?api_key=...`) removed from any text a person or a
file will see: log lines, job status, health output, connector errors and the dashboard.

Configured SecretStr values are redacted by value (engine/core/logs.py); a URL setting carries its password in plain
text, and third-party libraries print whole URLs, so every URL is cleaned by shape wherever it appears. It lives at
the bottom of the stack, with the connectors, so their errors are clean before the engine ever sees them.
"""

from __future__ import annotations

import re

MASK = "***"
_USER_INFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)[^\s/?#\"'<>`\\]+@")
_CREDENTIAL_PARAMETER = re.compile(
    r"(?P<name>(?<![\w\-])(?:[a-z0-9]+[_\-])*(?:api[_\-]?key|apikey|key|token|password|passwd|pwd|secret|signature|sig))"
    r"=(?P<value>[^&\s#\"'<>`\\]+)",
    re.IGNORECASE,
)


def redact_url_credentials(text: str) -> str:
    """`text` with the user-info of every URL replaced by `***@` and credential-like query values by `***`."""
    if "=" not in text and "@" not in text:
        return text
    text = _USER_INFO.sub(lambda match: f"{match['scheme']}{MASK}@", text)
    return _CREDENTIAL_PARAMETER.sub(
        lambda match: match[0] if match["value"] == MASK else f"{match['name']}={MASK}", text
    )
