"""The job queue: a table with leases, retries with backoff and a dead state.

A worker claims a job by taking a lease; if the worker dies, the lease runs
out and another worker claims the job again. On PostgreSQL the claim uses
`FOR UPDATE SKIP LOCKED` so that concurrent workers never take the same job.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from capture.db import transaction
from capture.models import Job, table_of, utcnow
from capture.sql import insert_ignore

log = logging.getLogger(__name__)

# Retry delays double from BACKOFF_BASE up to BACKOFF_MAX, in seconds.
BACKOFF_BASE = 2.0
BACKOFF_MAX = 3600.0
DEFAULT_LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str | None = None,
    max_attempts: int = 8,
) -> bool:
    """Queue a job in the caller's transaction; False if `dedupe_key` exists."""
    now = utcnow()
    return insert_ignore(
        session,
        table_of(Job),
        {
            "kind": kind,
            "payload": json.dumps(payload, sort_keys=True),
            "dedupe_key": dedupe_key,
            "status": "queued",
            "attempts": 0,
            "max_attempts": max_attempts,
            "run_after": now,
            "created_at": now,
            "updated_at": now,
        },
    )


def backoff_delay(attempts: int) -> float:
    """Seconds to wait before the next try, after `attempts` failed tries."""
    return float(min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX))


def _due(now: datetime) -> ColumnElement[bool]:
    """Jobs that may run now: queued and due, or running on a lapsed lease."""
    return or_(
        and_(Job.status == "queued", Job.run_after <= now),
        and_(Job.status == "running", Job.lease_until < now),
    )


async def any_due(
    sessions: async_sessionmaker[AsyncSession], kinds: tuple[str, ...]
) -> bool:
    """Return whether a job of one of `kinds` is due, read without a lock.

    On SQLite a claim begins with BEGIN IMMEDIATE and keeps the write lock
    until it commits. Under webhook load the event loop took 18 ms on
    average to finish an empty claim, and the webhook writer waited for the
    lock all that time (docs/benchmarks.md). So workers call this first, on
    a read session, and claim only when it returns True. The claim checks
    again under its lock.
    """
    query = select(Job.id).where(_due(utcnow()), Job.kind.in_(kinds)).limit(1)
    async with sessions() as session:
        return (await session.execute(query)).first() is not None


async def claim(
    sessions: async_sessionmaker[AsyncSession],
    worker_id: str,
    kinds: tuple[str, ...],
    lease: timedelta = DEFAULT_LEASE,
) -> ClaimedJob | None:
    """Take the next due job of one of `kinds`, or None when none is due."""
    now = utcnow()
    query = (
        select(Job)
        .where(_due(now), Job.kind.in_(kinds))
        .order_by(Job.run_after, Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    async with transaction(sessions) as session:
        job = (await session.execute(query)).scalar_one_or_none()
        if job is None:
            return None
        if job.status == "running":
            log.warning(
                "job %s lease expired (was %s); claiming again", job.id, job.locked_by
            )
        job.status = "running"
        job.attempts += 1
        job.lease_until = now + lease
        job.locked_by = worker_id
        job.updated_at = now
        return ClaimedJob(
            job.id, job.kind, json.loads(job.payload), job.attempts, job.max_attempts
        )


async def finish(
    sessions: async_sessionmaker[AsyncSession], job_id: int, worker_id: str
) -> bool:
    """Mark a job done; False if another worker has taken it over."""
    async with transaction(sessions) as session:
        job = await _owned(session, job_id, worker_id)
        if job is None:
            return False
        job.status = "done"
        job.lease_until = None
        job.last_error = None
        job.updated_at = utcnow()
        return True


async def fail(
    sessions: async_sessionmaker[AsyncSession],
    job_id: int,
    worker_id: str,
    error: str,
    *,
    retry: bool,
) -> str | None:
    """Record a failed try; return the new status (queued or dead)."""
    async with transaction(sessions) as session:
        job = await _owned(session, job_id, worker_id)
        if job is None:
            return None
        now = utcnow()
        job.last_error = error[:2000]
        job.lease_until = None
        job.updated_at = now
        if retry and job.attempts < job.max_attempts:
            job.status = "queued"
            job.run_after = now + timedelta(seconds=backoff_delay(job.attempts))
        else:
            job.status = "dead"
        return job.status


async def retry_dead(sessions: async_sessionmaker[AsyncSession], job_id: int) -> bool:
    """Queue a dead job again with a fresh count of tries."""
    async with transaction(sessions) as session:
        job = await session.get(Job, job_id)
        if job is None or job.status != "dead":
            return False
        job.status = "queued"
        job.attempts = 0
        job.run_after = utcnow()
        job.updated_at = job.run_after
        return True


async def release_orphans(
    sessions: async_sessionmaker[AsyncSession],
    host: str,
    is_alive: Callable[[str], bool],
) -> list[int]:
    """Queue again the running jobs of dead worker processes on `host`.

    A worker killed mid-job leaves its lease to run out, which takes up to
    the lease length. A worker starting on the same host can tell from the
    process token in `locked_by` (host:token/slot, the token being the pid
    and the process start time) that the holder is gone and release its
    jobs at once. Jobs of other hosts wait for their leases.
    """
    released = []
    async with transaction(sessions) as session:
        query = select(Job).where(
            Job.status == "running", Job.locked_by.startswith(f"{host}:")
        )
        for job in (await session.execute(query.with_for_update())).scalars():
            token = (job.locked_by or "")[len(host) + 1 :].split("/", 1)[0]
            if is_alive(token):
                continue
            log.warning(
                "job %s held by dead worker %s; queued again", job.id, job.locked_by
            )
            job.status = "queued"
            job.lease_until = None
            job.run_after = utcnow()
            released.append(job.id)
    return released


async def _owned(session: AsyncSession, job_id: int, worker_id: str) -> Job | None:
    job = await session.get(Job, job_id, with_for_update=True)
    if job is None or job.status != "running" or job.locked_by != worker_id:
        log.warning("job %s is no longer held by %s", job_id, worker_id)
        return None
    return job


@dataclass(frozen=True)
class QueueFigures:
    # Jobs by kind and status (queued, running, done, dead).
    counts: dict[tuple[str, str], int]
    # Seconds the oldest job of each kind has waited to run, among queued jobs.
    oldest_queued_seconds: dict[str, float]


async def queue_figures(sessions: async_sessionmaker[AsyncSession]) -> QueueFigures:
    """Counts and waiting times of the job queue, for the metrics endpoint."""
    now = utcnow()
    async with sessions() as session:
        counted = await session.execute(
            select(Job.kind, Job.status, func.count()).group_by(Job.kind, Job.status)
        )
        counts = {(kind, status): int(n) for kind, status, n in counted}
        waiting = await session.execute(
            select(Job.kind, func.min(Job.run_after))
            .where(Job.status == "queued", Job.run_after <= now)
            .group_by(Job.kind)
        )
        oldest = {
            kind: max(0.0, (now - since).total_seconds())
            for kind, since in waiting
            if since is not None
        }
    return QueueFigures(counts=counts, oldest_queued_seconds=oldest)
