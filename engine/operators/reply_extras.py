"""Copies and files a person adds to their reply: checked here, before anything is queued.

CC addresses are typed by the operator, so each must be a plain address, never an automatic mailbox or the desk
itself (the mail-loop guard's rule), and a reply carries at most MAX_CC of them. Files are held to the size limit the
desk applies to the attachments customers send (MAX_ATTACHMENT_BYTES), for each file and for all of them together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import PurePath

from connectors.base import OutgoingAttachment
from engine.core.addresses import normalise_address, same_address
from engine.trust.mailguard import undeliverable_reason

MAX_CC = 20
MAX_FILES = 10
_SEPARATORS = re.compile(r"[,;\s]+")
_ADDRESS = re.compile(r"[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9-]+(\.[a-z0-9-]+)+")
_CONTENT_TYPE = re.compile(r"[a-z0-9.+-]+/[a-z0-9.+-]+")


def cc_addresses(text: str, requester: str, our_address: str) -> list[str]:
    """The CC addresses in `text` (separated by commas, semicolons or spaces), each once; `ValueError` names the
    first one that cannot be sent a copy and why."""
    found: list[str] = []
    for written in filter(None, _SEPARATORS.split(text.strip())):
        address = normalise_address(written)
        if not _ADDRESS.fullmatch(address) or len(address) > 254:
            raise ValueError(f"CC: “{written}” is not an e-mail address")
        if reason := undeliverable_reason(address, our_address):
            raise ValueError(f"CC: {reason}; a copy is never sent there")
        if not same_address(address, requester) and address not in found:
            found.append(address)
    if len(found) > MAX_CC:
        raise ValueError(f"CC: {len(found)} addresses, a reply may copy at most {MAX_CC}")
    return found


def reply_files(files: Sequence[OutgoingAttachment], max_bytes: int) -> list[OutgoingAttachment]:
    """The files as they will be sent (a bare file name, a content type that is one); `ValueError` says which file
    is refused and why."""
    if len(files) > MAX_FILES:
        raise ValueError(f"{len(files)} files attached, a reply may carry at most {MAX_FILES}")
    checked = []
    for file in files:
        name = "".join(c for c in PurePath(file.filename.replace("\\", "/")).name if c.isprintable())[:200]
        if name.strip(". ") == "":
            raise ValueError("an attached file has no name")
        if not file.data:
            raise ValueError(f"{name} is empty")
        if len(file.data) > max_bytes:
            raise ValueError(f"{name} is {_size(len(file.data))}, over the {_size(max_bytes)} limit for one file")
        content_type = file.content_type.lower() if _CONTENT_TYPE.fullmatch(file.content_type.lower()) else ""
        checked.append(OutgoingAttachment(name, content_type or "application/octet-stream", file.data))
    total = sum(len(file.data) for file in checked)
    if total > max_bytes:
        raise ValueError(f"the files together are {_size(total)}, over the {_size(max_bytes)} limit for one reply")
    return checked


def _size(count: int) -> str:
    """Bytes as a person reads them: 25 MB, 340 KB, 12 bytes."""
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")
    return f"{count / 1024:.0f} KB" if count >= 1024 else f"{count} bytes"
