"""Queueing a dead transcription job again, for admins and managers."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from capture import jobs
from capture.access import Viewer
from capture.errors import Conflict, Forbidden
from capture.queries import call_detail

log = logging.getLogger(__name__)

# Roles that may queue a failed transcription again: admins for every call,
# managers for the calls of their team (call_detail enforces the scope).
RETRY_ROLES = frozenset({"admin", "manager"})


async def retry_transcription(
    sessions: async_sessionmaker[AsyncSession], viewer: Viewer, call_sid: str
) -> int:
    """Queue the call's dead transcription job again; return the job id.

    Raises Forbidden for other roles, NotFound for a call the viewer cannot
    see, and Conflict when the call has no dead transcription job.
    """
    if viewer.role not in RETRY_ROLES:
        raise Forbidden("retrying a transcription needs the admin or manager role")
    async with sessions() as session:
        detail = await call_detail(session, viewer, call_sid)
    job = detail.transcription_job
    if job is None or job.status != "dead":
        raise Conflict(
            f"call {call_sid!r} has no failed transcription to retry", "call_sid"
        )
    if not await jobs.retry_dead(sessions, job.id):
        raise Conflict(f"transcription job {job.id} is no longer failed", "call_sid")
    log.info("job %s queued again by user %s", job.id, viewer.user_id)
    return job.id
