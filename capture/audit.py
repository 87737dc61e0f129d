"""The audit log: who logged in, played, exported or changed what.

Entries are written in the same transaction as the change they describe
where there is one. `detail` is a JSON object; callers pass filters, old and
new values and reasons, never a password or a token secret.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.models import AuditEvent, User

LOGIN = "login"
LOGIN_FAILED = "login_failed"
LOGOUT = "logout"
PASSWORD_CHANGED = "password_changed"
TOKEN_CREATED = "token_created"
TOKEN_REVOKED = "token_revoked"
USER_CREATED = "user_created"
USER_UPDATED = "user_updated"
USER_DEACTIVATED = "user_deactivated"
USER_ACTIVATED = "user_activated"
RECORDING_PLAYED = "recording_played"
EXPORT_DOWNLOADED = "export_downloaded"
TEAM_CREATED = "team_created"
TEAM_RENAMED = "team_renamed"
NUMBER_ADDED = "number_added"
NUMBER_REMOVED = "number_removed"
SETTING_CHANGED = "setting_changed"
WEBHOOK_REPLAYED = "webhook_replayed"
EXPORT_SCHEDULED = "export_scheduled"
EXPORT_SCHEDULE_DELETED = "export_schedule_deleted"

ACTIONS = (
    LOGIN,
    LOGIN_FAILED,
    LOGOUT,
    PASSWORD_CHANGED,
    TOKEN_CREATED,
    TOKEN_REVOKED,
    USER_CREATED,
    USER_UPDATED,
    USER_DEACTIVATED,
    USER_ACTIVATED,
    RECORDING_PLAYED,
    EXPORT_DOWNLOADED,
    TEAM_CREATED,
    TEAM_RENAMED,
    NUMBER_ADDED,
    NUMBER_REMOVED,
    SETTING_CHANGED,
    WEBHOOK_REPLAYED,
    EXPORT_SCHEDULED,
    EXPORT_SCHEDULE_DELETED,
)


def record(
    session: AsyncSession,
    action: str,
    *,
    actor: User | None,
    target_type: str = "",
    target_id: object = "",
    detail: dict[str, Any] | None = None,
    remote: str = "",
) -> AuditEvent:
    """Add an audit entry to the session; the caller's transaction commits it.

    An actor of None is the command line or an anonymous visitor.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = AuditEvent(
        action=action,
        actor_id=actor.id if actor else None,
        actor_email=actor.email if actor else "",
        target_type=target_type,
        target_id=str(target_id),
        detail=json.dumps(detail or {}, sort_keys=True, default=str),
        remote=remote[:64],
    )
    session.add(event)
    return event


async def recent_events(
    session: AsyncSession,
    *,
    before_id: int | None,
    limit: int,
    action: str | None = None,
) -> list[AuditEvent]:
    """Return entries newest first, `limit` + 1 of them, for paging by id."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if action:
        query = query.where(AuditEvent.action == action)
    return list((await session.scalars(query)).all())
