"""Delivery of a scheduled export: into a folder, or attached to an email.

A folder export is written to a hidden temporary file in its final folder
and renamed over the final name once complete, so a reader of the folder
never sees half a file. The folder must lie under the export folder
(`Settings.exports_dir`); a target that leaves it, through `..`, an absolute
path or a symbolic link, is rejected before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import smtplib
import tempfile
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path, PurePosixPath

from capture.errors import InvalidInput
from capture.settings import Settings

log = logging.getLogger(__name__)

FOLDER_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_FOLDER_DEPTH = 4
SMTP_TIMEOUT_SECONDS = 30
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")

WriteFile = Callable[[Path], Awaitable[None]]


class UnsafeTarget(Exception):
    """A folder target that resolves outside the export folder."""


def check_folder_target(text: str) -> str:
    """Return `text` as a relative folder under the export folder, or raise.

    The target is one to `MAX_FOLDER_DEPTH` names joined by `/`, each of
    letters, digits, `.`, `-` and `_` and not starting with `.`.
    """
    if not text:
        raise InvalidInput("target is missing: give a folder name", "target")
    path = PurePosixPath(text)
    if "\\" in text or path.is_absolute() or ".." in path.parts:
        raise InvalidInput(
            f"target {text[:80]!r} is outside the export folder: give a "
            "relative folder such as daily/activities, without '..' or a "
            "leading '/'",
            "target",
        )
    parts = text.split("/")
    if len(parts) > MAX_FOLDER_DEPTH or not all(
        FOLDER_PART.fullmatch(part) for part in parts
    ):
        raise InvalidInput(
            f"target {text[:80]!r} is not a folder name: use up to "
            f"{MAX_FOLDER_DEPTH} names joined by '/', each of letters, digits, "
            "'.', '-' and '_' (up to 64 characters, not starting with '.')",
            "target",
        )
    return text


def resolve_folder(exports_dir: Path, target: str) -> Path:
    """Return the folder of `target`, created, after checking that it stays
    inside `exports_dir` once symbolic links are followed."""
    check_folder_target(target)
    root = exports_dir.resolve()
    folder = (root / target).resolve()
    if not folder.is_relative_to(root):
        raise UnsafeTarget(f"folder {target!r} leads outside the export folder {root}")
    folder.mkdir(parents=True, exist_ok=True)
    # A link created between the check and mkdir is caught here.
    if not folder.resolve().is_relative_to(root):
        raise UnsafeTarget(f"folder {target!r} leads outside the export folder {root}")
    return folder


async def write_to_folder(
    settings: Settings, target: str, name: str, write: WriteFile
) -> Path:
    """Write the export with `write` into the target folder; return its path."""
    folder = await asyncio.to_thread(resolve_folder, settings.exports_dir, target)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".part")
    os.close(handle)
    partial = Path(temporary)
    try:
        await write(partial)
        await asyncio.to_thread(_sync_and_rename, partial, folder / name)
    except BaseException:
        # Also on cancellation, where no further await may run.
        _discard(partial)
        raise
    return folder / name


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _sync_and_rename(partial: Path, final: Path) -> None:
    with partial.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, final)


async def send_by_email(
    settings: Settings,
    address: str,
    subject: str,
    name: str,
    write: WriteFile,
) -> None:
    """Write the export to a temporary file and send it attached to `address`."""
    if not settings.export_smtp_relay:
        raise RuntimeError(
            "email delivery is off: set export_smtp_relay to send this schedule"
        )
    with tempfile.TemporaryDirectory(prefix="touchline-export-") as folder:
        path = Path(folder) / name
        await write(path)
        await asyncio.to_thread(_send_mail, settings, address, subject, path)


def _message(
    settings: Settings, address: str, subject: str, path: Path
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.export_mail_from
    message["To"] = address
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="touchline.invalid")
    message.set_content(f"{subject} is attached as {path.name}.")
    maintype, subtype = ("text", "csv") if path.suffix == ".csv" else XLSX_TYPE
    # NOTE: the whole file is read into memory here, unlike a folder export;
    # very large activity exports are better written to a folder.
    message.add_attachment(
        path.read_bytes(),
        maintype=maintype,
        subtype=subtype,
        filename=path.name,
    )
    return message


def _send_mail(settings: Settings, address: str, subject: str, path: Path) -> None:
    host, _, port = settings.export_smtp_relay.rpartition(":")
    message = _message(settings, address, subject, path)
    with smtplib.SMTP(host, int(port), timeout=SMTP_TIMEOUT_SECONDS) as client:
        try:
            client.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            # Raised without the original, whose text names the address,
            # because the error is logged and shown on the schedules page.
            replies = "; ".join(
                f"{code} {reply.decode(errors='replace')}".replace(address, "<target>")
                for code, reply in error.recipients.values()
            )
            raise RuntimeError(
                f"the mail server rejected the target address: {replies}"
            ) from None
