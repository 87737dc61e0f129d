"""Settings as they are now: the file's, with the settings page's changes.

`current_settings(request)` is what handlers read for the keys an admin can
change while the service runs (capture/runtime.py). The stored changes are
read at most every few seconds, so every process of a deployment follows a
change within that time, and at once in the process that made it.
"""

from __future__ import annotations

import time

from aiohttp import web

from capture import runtime
from capture.db import Database
from capture.settings import Settings

# Seconds a process keeps the stored changes before reading them again.
REFRESH_SECONDS = 5.0


class RuntimeSettings:
    def __init__(self, base: Settings, database: Database) -> None:
        self.base = base
        self.database = database
        self.settings = base
        self.read_at: float | None = None

    async def current(self) -> Settings:
        now = time.monotonic()
        if self.read_at is None or now - self.read_at > REFRESH_SECONDS:
            async with self.database.reads() as session:
                changed = await runtime.overrides(session)
            self.settings = runtime.effective(self.base, changed)
            self.read_at = now
        return self.settings

    def forget(self) -> None:
        """Read the stored changes again at the next request."""
        self.read_at = None


RUNTIME = web.AppKey("runtime", RuntimeSettings)


async def current_settings(request: web.Request) -> Settings:
    return await request.app[RUNTIME].current()
