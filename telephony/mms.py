"""MMS media: reading `MediaUrl{N}` from a webhook, and the download job."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from capture import mms
from capture.db import Database
from capture.errors import InvalidInput
from capture.models import Message, MessageMedia
from capture.settings import Settings
from capture.worker import PermanentFailure, RetryLater
from capture.writer import BatchWriter
from telephony import forms
from telephony.media import accept_any, download

log = logging.getLogger(__name__)

# Twilio attaches at most 10 media files to one message.
MAX_MEDIA = 10
MAX_URL = 2000
# A MIME type as RFC 6838 names them: type/subtype, without parameters.
MIME_TYPE = re.compile(
    r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}"
)
DEFAULT_TYPE = "application/octet-stream"


def parse_media(form: Mapping[str, str], num_media: int) -> tuple[mms.MediaRef, ...]:
    """Read `MediaUrl{N}` and `MediaContentType{N}` for N below `NumMedia`."""
    if num_media > MAX_MEDIA:
        raise InvalidInput(
            f"NumMedia {num_media} is more than {MAX_MEDIA}", field="NumMedia"
        )
    items = []
    for position in range(num_media):
        url_field = f"MediaUrl{position}"
        url = forms.required(form, url_field, MAX_URL)
        if not url.startswith(("https://", "http://")):
            raise InvalidInput(f"{url_field} is not an http(s) URL", field=url_field)
        type_field = f"MediaContentType{position}"
        declared = (forms.optional(form, type_field, 128) or DEFAULT_TYPE).lower()
        content_type = declared.split(";", 1)[0].strip()
        if not MIME_TYPE.fullmatch(content_type):
            raise InvalidInput(
                f"{type_field} {declared[:60]!r} is not a MIME type", field=type_field
            )
        items.append(mms.MediaRef(url, content_type))
    return tuple(items)


class MediaDownloader:
    """The job that fetches one MMS media file into the data folder."""

    def __init__(
        self, settings: Settings, database: Database, writer: BatchWriter
    ) -> None:
        self.settings = settings
        self.database = database
        self.writer = writer

    async def __call__(self, payload: dict[str, Any]) -> None:
        media_id = int(payload["media_id"])
        async with self.database.reads() as session:
            row = (
                await session.execute(
                    select(MessageMedia, Message.message_sid)
                    .join(Message, MessageMedia.message_id == Message.id)
                    .where(MessageMedia.id == media_id)
                )
            ).one()
        media, message_sid = row[0], row[1]
        if media.status != "pending":
            log.info("media %s is %s; nothing to do", media_id, media.status)
            return
        destination = self.path_for(message_sid, media.position)
        try:
            saved = await download(
                media.media_url,
                destination,
                media_hosts=self.settings.media_hosts,
                auth=self._auth(),
                max_bytes=self.settings.media_max_bytes,
                timeout_seconds=self.settings.media_timeout,
                check_head=accept_any,
            )
        except (RetryLater, PermanentFailure) as error:
            message = str(error)
            # NOTE: a download that keeps failing with RetryLater until the
            # job goes dead stays `pending`, with its last error.
            final = isinstance(error, PermanentFailure)
            await self.writer.run(
                lambda s: mms.mark_failed(s, media_id, message, final=final)
            )
            raise
        relative = str(saved.path.relative_to(self.settings.data_dir))
        await self.writer.run(
            lambda s: mms.mark_stored(
                s, media_id, relative, saved.size_bytes, saved.sha256
            )
        )
        log.info(
            "media %s of %s stored: bytes=%s", media_id, message_sid, saved.size_bytes
        )

    def path_for(self, message_sid: str, position: int) -> Path:
        if not message_sid.isalnum():
            raise PermanentFailure(f"message SID {message_sid!r} is not alphanumeric")
        return self.settings.media_dir / message_sid / str(position)

    def _auth(self) -> tuple[str, str] | None:
        if not self.settings.twilio_account_sid:
            return None
        return (self.settings.twilio_account_sid, self.settings.twilio_auth_token)
