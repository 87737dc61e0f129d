"""The job queue: leases, retries with backoff, the dead state and dedupe."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from capture import jobs
from capture.db import Database, transaction
from capture.models import Job, utcnow
from capture.worker import (
    PermanentFailure,
    RetryLater,
    Worker,
    process_alive,
    process_token,
)


async def queue(database: Database, kind: str = "echo", key: str | None = None) -> bool:
    def change(session: Any) -> bool:
        return jobs.enqueue(session, kind, {"value": 1}, dedupe_key=key)

    writer_sessions = database.batch_sessions()
    with writer_sessions() as session, session.begin():
        return change(session)


async def job_row(database: Database) -> Job:
    async with database.reads() as session:
        job = await session.scalar(select(Job).order_by(Job.id))
    assert job is not None
    return job


async def make_due(database: Database) -> None:
    async with transaction(database.writes) as session:
        await session.execute(
            update(Job).values(run_after=utcnow() - timedelta(seconds=1))
        )


def test_backoff_doubles_to_a_cap() -> None:
    delays = [jobs.backoff_delay(attempt) for attempt in (1, 2, 3, 20)]

    assert delays == [2.0, 4.0, 8.0, jobs.BACKOFF_MAX]


async def test_jobs_dedupe_key_queues_once(database: Database) -> None:
    first = await queue(database, key="download:RE1")
    second = await queue(database, key="download:RE1")

    assert first is True
    assert second is False


async def test_jobs_retry_then_dead(database: Database) -> None:
    calls: list[int] = []

    async def flaky(payload: dict[str, Any]) -> None:
        calls.append(payload["value"])
        raise RetryLater("media host answered 503")

    await queue(database)
    async with transaction(database.writes) as session:
        await session.execute(update(Job).values(max_attempts=2))
    worker = Worker(database.writes, {"echo": flaky})

    await worker.run_once()
    after_first = await job_row(database)
    await make_due(database)
    await worker.run_once()
    after_second = await job_row(database)

    assert after_first.status == "queued"
    assert after_first.run_after > utcnow()
    assert after_second.status == "dead"
    assert after_second.last_error == "media host answered 503"
    assert calls == [1, 1]


async def test_jobs_permanent_failure_is_dead(database: Database) -> None:
    async def hopeless(payload: dict[str, Any]) -> None:
        raise PermanentFailure("media host not allowed")

    await queue(database)
    worker = Worker(database.writes, {"echo": hopeless})

    await worker.run_once()

    job = await job_row(database)
    assert job.status == "dead"
    assert job.attempts == 1


async def test_jobs_dead_job_retried(database: Database) -> None:
    async def hopeless(payload: dict[str, Any]) -> None:
        raise PermanentFailure("no")

    await queue(database)
    await Worker(database.writes, {"echo": hopeless}).run_once()

    retried = await jobs.retry_dead(database.writes, (await job_row(database)).id)

    job = await job_row(database)
    assert retried is True
    assert job.status == "queued"
    assert job.attempts == 0


async def test_jobs_expired_lease_claimed_again(database: Database) -> None:
    await queue(database)
    first = await jobs.claim(database.writes, "crashed-worker", ("echo",))
    assert first is not None
    nobody = await jobs.claim(database.writes, "other-worker", ("echo",))
    async with transaction(database.writes) as session:
        await session.execute(
            update(Job).values(lease_until=utcnow() - timedelta(seconds=1))
        )

    again = await jobs.claim(database.writes, "other-worker", ("echo",))

    assert nobody is None
    assert again is not None
    assert again.id == first.id
    assert again.attempts == 2
    finished_by_crashed = await jobs.finish(database.writes, first.id, "crashed-worker")
    assert finished_by_crashed is False


@pytest.mark.parametrize("kinds", [("other",)])
async def test_jobs_claim_only_known_kinds(
    database: Database, kinds: tuple[str, ...]
) -> None:
    await queue(database)

    claimed = await jobs.claim(database.writes, "worker", kinds)

    assert claimed is None


async def test_probe_sees_due_and_lapsed(database: Database) -> None:
    empty = await jobs.any_due(database.reads, ("echo",))
    await queue(database)
    queued = await jobs.any_due(database.reads, ("echo",))
    other_kind = await jobs.any_due(database.reads, ("other",))
    claimed = await jobs.claim(database.writes, "worker", ("echo",))
    while_leased = await jobs.any_due(database.reads, ("echo",))
    async with transaction(database.writes) as session:
        await session.execute(
            update(Job).values(lease_until=utcnow() - timedelta(seconds=1))
        )
    lapsed = await jobs.any_due(database.reads, ("echo",))

    assert claimed is not None
    assert empty is False
    assert queued is True
    assert other_kind is False
    assert while_leased is False
    assert lapsed is True


async def test_idle_poll_skips_write_lock(database: Database) -> None:
    """While another writer holds the lock, an idle worker's poll returns at
    once instead of queueing behind it, and a due job is still run."""
    ran: list[int] = []

    async def echo(payload: dict[str, Any]) -> None:
        ran.append(payload["value"])

    worker = Worker(database.writes, {"echo": echo}, probe_sessions=database.reads)
    holder = database.batch_sessions()()
    holder.begin()
    holder.execute(update(Job).values(attempts=0))
    try:
        started = time.monotonic()
        idle = await asyncio.wait_for(worker.run_once(), timeout=5)
        polled_in = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
    await queue(database)
    busy = await worker.run_once()

    assert idle is False
    assert polled_in < 1.0
    assert busy is True
    assert ran == [1]


async def test_jobs_dead_workers_job_released(database: Database) -> None:
    await queue(database)
    await queue(database, key="second")
    dead = await jobs.claim(database.writes, "box:4001.77/0", ("echo",))
    alive = await jobs.claim(database.writes, "box:4002.88/0", ("echo",))
    assert dead is not None
    assert alive is not None

    released = await jobs.release_orphans(
        database.writes, "box", lambda token: token == "4002.88"
    )

    assert released == [dead.id]
    again = await jobs.claim(database.writes, "box:4003.99/0", ("echo",))
    assert again is not None
    assert again.id == dead.id


async def test_jobs_other_hosts_keep_leases(database: Database) -> None:
    await queue(database)
    assert await jobs.claim(database.writes, "other-box:4001/0", ("echo",)) is not None

    released = await jobs.release_orphans(database.writes, "box", lambda token: False)

    assert released == []


def test_process_token_detects_reused_pid() -> None:
    token = process_token(os.getpid())
    pid, _, start = token.partition(".")

    assert process_alive(token) is True
    assert process_alive(f"{pid}.{int(start) + 1}") is False
    assert process_alive("99999999.1") is False


async def test_queue_figures_count_by_status_and_age(database: Database) -> None:
    for number in range(3):
        await queue(database, kind="download", key=f"download:RE{number}")
    await queue(database, kind="transcribe")
    async with transaction(database.writes) as session:
        await session.execute(
            update(Job)
            .where(Job.dedupe_key == "download:RE0")
            .values(run_after=utcnow() - timedelta(seconds=90))
        )
        await session.execute(
            update(Job)
            .where(Job.dedupe_key == "download:RE2")
            .values(status="dead", run_after=utcnow() - timedelta(days=1))
        )
        await session.execute(
            update(Job)
            .where(Job.kind == "transcribe")
            .values(run_after=utcnow() + timedelta(minutes=5))
        )

    figures = await jobs.queue_figures(database.reads)

    assert figures.counts == {
        ("download", "queued"): 2,
        ("download", "dead"): 1,
        ("transcribe", "queued"): 1,
    }
    # A job waiting for its retry time is not late; a dead job is not waiting.
    assert set(figures.oldest_queued_seconds) == {"download"}
    assert 90 <= figures.oldest_queued_seconds["download"] < 120
