"""The recording download job."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from capture.db import Database
from capture.recordings import mark_failed, mark_stored, recording_query
from capture.settings import Settings
from capture.worker import PermanentFailure, RetryLater
from capture.writer import BatchWriter
from telephony.media import download, remove_stale_partials

log = logging.getLogger(__name__)


class RecordingDownloader:
    def __init__(
        self, settings: Settings, database: Database, writer: BatchWriter
    ) -> None:
        self.settings = settings
        self.database = database
        self.writer = writer
        self.swept = False

    async def __call__(self, payload: dict[str, Any]) -> None:
        if not self.swept:
            self._sweep()
        recording_sid = str(payload["recording_sid"])
        async with self.database.reads() as session:
            recording = (await session.scalars(recording_query(recording_sid))).one()
        if recording.status in ("stored", "deleted"):
            # A recording past retention is not fetched again.
            log.info(
                "recording %s is %s; nothing to do", recording_sid, recording.status
            )
            return
        destination = self.path_for(recording_sid)
        try:
            saved = await download(
                recording.media_url,
                destination,
                media_hosts=self.settings.media_hosts,
                auth=self._auth(),
                max_bytes=self.settings.media_max_bytes,
                timeout_seconds=self.settings.media_timeout,
            )
        except (RetryLater, PermanentFailure) as error:
            message = str(error)
            await self.writer.run(lambda s: mark_failed(s, recording_sid, message))
            raise
        relative = str(saved.path.relative_to(self.settings.data_dir))
        await self.writer.run(
            lambda s: mark_stored(
                s, recording_sid, relative, saved.size_bytes, saved.sha256
            )
        )
        log.info("recording %s stored: bytes=%s", recording_sid, saved.size_bytes)

    def _sweep(self) -> None:
        # A download cannot take longer than its timeout, so older partial
        # files belong to a process that died.
        removed = remove_stale_partials(
            self.settings.recordings_dir, 2 * self.settings.media_timeout
        )
        if removed:
            log.warning(
                "removed %s partial downloads left by a stopped worker", removed
            )
        self.swept = True

    def path_for(self, recording_sid: str) -> Path:
        if not recording_sid.isalnum():
            raise PermanentFailure(
                f"recording SID {recording_sid!r} is not alphanumeric"
            )
        return self.settings.recordings_dir / f"{recording_sid}.wav"

    def _auth(self) -> tuple[str, str] | None:
        if not self.settings.twilio_account_sid:
            return None
        return (self.settings.twilio_account_sid, self.settings.twilio_auth_token)
