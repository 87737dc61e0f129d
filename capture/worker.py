"""The job worker loop: claims jobs and runs the handler of each kind."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from capture import jobs

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[None]]


def _start_time(pid: int) -> str | None:
    """Return the process's start time in clock ticks after boot, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name in field 2 may hold spaces, so count from ")".
    return stat.rsplit(")", 1)[1].split()[19]


def process_token(pid: int) -> str:
    """Identify a process as pid.starttime, which a reused pid does not match."""
    start = _start_time(pid)
    return f"{pid}.{start}" if start is not None else str(pid)


def process_alive(token: str) -> bool:
    """True if the process named by `token` (from process_token) still runs."""
    pid_text, _, start = token.partition(".")
    if not pid_text.isascii() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    if start:
        return _start_time(pid) == start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RetryLater(Exception):
    """A try failed for a reason that may pass (404 not ready, timeout, 5xx)."""


class PermanentFailure(Exception):
    """A job that can never succeed; it goes straight to the dead state."""


class Worker:
    """Run queued jobs with `concurrency` tasks until `stop` is set."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        handlers: Mapping[str, Handler],
        *,
        concurrency: int = 1,
        poll_interval: float = 0.5,
        worker_id: str | None = None,
        probe_sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        """Set up the worker. `probe_sessions` check for a due job before each
        claim, so they should be read sessions (`Database.reads`)."""
        self.sessions = sessions
        self.probe_sessions = probe_sessions
        self.handlers = dict(handlers)
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.worker_id = worker_id or (
            f"{socket.gethostname()}:{process_token(os.getpid())}"
        )
        self.wakeup = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        log.info("worker %s started: kinds=%s", self.worker_id, sorted(self.handlers))
        await jobs.release_orphans(self.sessions, socket.gethostname(), process_alive)
        tasks = [
            asyncio.create_task(self._loop(stop, slot))
            for slot in range(self.concurrency)
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info("worker %s stopped", self.worker_id)

    def notify(self) -> None:
        """Wake idle loops now that a job was queued."""
        self.wakeup.set()

    async def _loop(self, stop: asyncio.Event, slot: int) -> None:
        worker_id = f"{self.worker_id}/{slot}"
        while not stop.is_set():
            ran = await self.run_once(worker_id)
            if not ran:
                await self._idle(stop)

    async def _idle(self, stop: asyncio.Event) -> None:
        self.wakeup.clear()
        waits = [
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self.wakeup.wait()),
        ]
        await asyncio.wait(
            waits, timeout=self.poll_interval, return_when=asyncio.FIRST_COMPLETED
        )
        for waiter in waits:
            waiter.cancel()

    async def run_once(self, worker_id: str | None = None) -> bool:
        """Claim and run one due job; False when none was due."""
        worker_id = worker_id or self.worker_id
        kinds = tuple(self.handlers)
        if self.probe_sessions is not None and not await jobs.any_due(
            self.probe_sessions, kinds
        ):
            return False
        job = await jobs.claim(self.sessions, worker_id, kinds)
        if job is None:
            return False
        started = time.monotonic()
        try:
            await self.handlers[job.kind](job.payload)
        except asyncio.CancelledError:
            # Leave the lease to run out so that another worker retries it.
            log.warning("job %s %s cancelled on try %s", job.id, job.kind, job.attempts)
            raise
        except (RetryLater, PermanentFailure) as error:
            retry = isinstance(error, RetryLater)
            await self._record_failure(job, worker_id, str(error), retry, started)
        except Exception as error:
            log.exception("job %s %s raised on try %s", job.id, job.kind, job.attempts)
            await self._record_failure(job, worker_id, repr(error), True, started)
        else:
            await asyncio.shield(jobs.finish(self.sessions, job.id, worker_id))
            log.info(
                "job %s %s done: try=%s elapsed=%.2fs",
                job.id,
                job.kind,
                job.attempts,
                time.monotonic() - started,
            )
        return True

    async def _record_failure(
        self,
        job: jobs.ClaimedJob,
        worker_id: str,
        error: str,
        retry: bool,
        started: float,
    ) -> None:
        status = await asyncio.shield(
            jobs.fail(self.sessions, job.id, worker_id, error, retry=retry)
        )
        log.warning(
            "job %s %s failed: try=%s elapsed=%.2fs next=%s error=%s",
            job.id,
            job.kind,
            job.attempts,
            time.monotonic() - started,
            status,
            error,
        )
