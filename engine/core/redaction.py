"""URL-credential redaction for the engine's logs, job status, health output and dashboard.

One implementation, in connectors/redaction.py: connectors clean their own error messages with it and import no
engine code, so the engine takes it from there.
"""

from connectors.redaction import MASK, redact_url_credentials

__all__ = ["MASK", "redact_url_credentials"]
