"""Reads of stored emails for pages: one email, its thread and its files."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from capture.access import Viewer, visible_activities
from capture.errors import NotFound
from capture.models import Activity, Email, EmailAttachment


async def email_detail(
    session: AsyncSession, viewer: Viewer, email_id: int
) -> tuple[Email, list[Email]]:
    """Return a visible email and the visible emails of its thread, oldest first."""
    email = await session.scalar(
        select(Email)
        .join(Activity, Email.activity_id == Activity.id)
        .where(Email.id == email_id, visible_activities(viewer))
        .options(
            selectinload(Email.attachments),
            selectinload(Email.activity).selectinload(Activity.customer),
            selectinload(Email.activity).selectinload(Activity.rep),
        )
    )
    if email is None:
        raise NotFound(f"email {email_id} not found", "id")
    thread = await session.scalars(
        select(Email)
        .join(Activity, Email.activity_id == Activity.id)
        .where(Email.thread_key == email.thread_key, visible_activities(viewer))
        .options(selectinload(Email.activity))
        .order_by(Activity.occurred_at, Activity.id)
    )
    return email, list(thread.all())


async def attachment_file(
    session: AsyncSession, viewer: Viewer, email_id: int, attachment_id: int
) -> EmailAttachment:
    """Return an attachment of a visible email, or raise NotFound."""
    attachment = await session.scalar(
        select(EmailAttachment)
        .join(Email, EmailAttachment.email_id == Email.id)
        .join(Activity, Email.activity_id == Activity.id)
        .where(
            EmailAttachment.id == attachment_id,
            Email.id == email_id,
            visible_activities(viewer),
        )
    )
    if attachment is None:
        raise NotFound(f"attachment {attachment_id} not found", "attachment_id")
    return attachment
