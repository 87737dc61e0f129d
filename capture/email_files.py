"""Attachment files, stored under the data folder by their SHA-256.

A file is named by its content's hash, so the same attachment sent twice
(a retried webhook, a message captured by SMTP and a webhook) is stored
once. A retry after a failed database write finds its file in place.
Files are written before the database row that lists them; a file whose
row never commits stays unlisted.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from capture.email_parse import Attachment


@dataclass(frozen=True)
class SavedAttachment:
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    # Relative to data_dir.
    file_path: str


def save_attachments(
    data_dir: Path, attachments: tuple[Attachment, ...]
) -> tuple[SavedAttachment, ...]:
    """Write each attachment's content to disk; blocking, so run it off the loop."""
    return tuple(_save(data_dir, attachment) for attachment in attachments)


def _save(data_dir: Path, attachment: Attachment) -> SavedAttachment:
    digest = hashlib.sha256(attachment.content).hexdigest()
    relative = Path("attachments") / digest[:2] / digest
    path = data_dir / relative
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written under a temporary name and renamed, so a reader never
        # sees half a file.
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".part")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(attachment.content)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return SavedAttachment(
        filename=attachment.filename,
        content_type=attachment.content_type[:200],
        size_bytes=len(attachment.content),
        sha256=digest,
        file_path=relative.as_posix(),
    )
