"""File bytes kept once per content hash, whoever brought them: a customer's attachment, a knowledge-base file, a
file a person attached to their reply."""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from engine.core.models import Blob


def store_blob(session: Session, data: bytes) -> str:
    """Keep `data` unless the same bytes are kept already; its sha256 names it."""
    digest = hashlib.sha256(data).hexdigest()
    if session.get(Blob, digest) is None:
        session.add(Blob(sha256=digest, size=len(data), data=data))
        session.flush()
    return digest
