"""Comments pinned to a moment of a call, with replies and @mentions of users.

Anyone who may review a call may comment on it. Only a comment's author may
edit or delete it. A comment, new or edited, may set the customer's
next-step plan.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from capture.access import Viewer, visible_calls
from capture.errors import Conflict, Forbidden, InvalidInput, NotFound
from capture.models import Activity, Call, CallComment, CommentMention, User
from capture.next_step import set_next_step

log = logging.getLogger(__name__)

MAX_BODY_LENGTH = 4000
# Maximum moment of a comment: 24 hours into the recording.
MAX_AT_MS = 24 * 3600 * 1000
# "@ben" (the part of an email address before the @) or "@ben@example.com";
# an @ inside a word, as in an email address, is no mention.
MENTION = re.compile(r"(?<![\w@])@([\w.+-]+(?:@[\w-]+(?:\.[\w-]+)+)?)")


@dataclass
class CommentThread:
    comment: CallComment
    mentioned: list[User]
    replies: list[CommentThread] = field(default_factory=list)


@dataclass(frozen=True)
class NewComment:
    at_ms: int
    body: str
    parent_id: int | None = None
    # Set or change the customer's next-step plan: a purpose and its note.
    plan_purpose: str | None = None
    plan_note: str = ""


def mention_names(body: str) -> list[str]:
    """Return the mentioned names of `body`, lower case, each once, in order."""
    names: list[str] = []
    for name in MENTION.findall(body):
        name = name.rstrip(".").lower()
        if name not in names:
            names.append(name)
    return names


async def _mentioned_users(
    session: AsyncSession, body: str, call_id: int
) -> list[User]:
    users = []
    for name in mention_names(body):
        if "@" in name:
            by_name = func.lower(User.email) == name
        else:
            escaped = name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")
            by_name = func.lower(User.email).like(escaped + "@%", escape="\\")
        user = await session.scalar(
            select(User)
            .where(by_name, User.active.is_(True))
            .order_by(User.id)
            .limit(1)
        )
        if user is None:
            raise InvalidInput(f"@{name} matches no active user", "body")
        if not await _can_see_call(session, Viewer.of(user), call_id):
            raise InvalidInput(f"@{name} cannot see this call", "body")
        users.append(user)
    return users


async def _can_see_call(session: AsyncSession, viewer: Viewer, call_id: int) -> bool:
    if not viewer.can_play_recordings:
        return False
    found = await session.scalar(
        select(Call.id).where(Call.id == call_id, visible_calls(viewer))
    )
    return found is not None


@dataclass(frozen=True)
class CommentChange:
    """An edit of a comment. A field left None keeps that part unchanged."""

    body: str | None = None
    at_ms: int | None = None
    # Set or change the customer's next-step plan, as a new comment can.
    plan_purpose: str | None = None
    plan_note: str = ""


def _checked_body(raw: str) -> str:
    body = raw.strip()
    if not body:
        raise InvalidInput("body is missing; write the comment", "body")
    if len(body) > MAX_BODY_LENGTH:
        raise InvalidInput(f"body is longer than {MAX_BODY_LENGTH} characters", "body")
    return body


def _check_moment(at_ms: int) -> None:
    if not 0 <= at_ms <= MAX_AT_MS:
        raise InvalidInput(f"at {at_ms / 1000} s is outside the recording", "at")


def _check(new: NewComment) -> str:
    body = _checked_body(new.body)
    _check_moment(new.at_ms)
    return body


async def _parent(session: AsyncSession, call: Call, parent_id: int) -> CallComment:
    parent = await session.get(CallComment, parent_id)
    if parent is None or parent.call_id != call.id:
        raise InvalidInput(
            f"parent comment {parent_id} not found on this call", "parent"
        )
    # A reply to a reply joins the thread of the first comment.
    if parent.parent_id is not None:
        root = await session.get(CallComment, parent.parent_id)
        if root is not None:
            return root
    return parent


async def add_comment(
    session: AsyncSession, author: User, call: Call, new: NewComment
) -> CallComment:
    """Store a comment and its plan change, if any, in the caller's transaction."""
    body = _check(new)
    at_ms = new.at_ms
    parent_id = None
    if new.parent_id is not None:
        parent = await _parent(session, call, new.parent_id)
        parent_id, at_ms = parent.id, parent.at_ms
    mentioned = await _mentioned_users(session, body, call.id)
    comment = CallComment(
        call_id=call.id,
        parent_id=parent_id,
        author_id=author.id,
        at_ms=at_ms,
        body=body,
    )
    if new.plan_purpose:
        comment.plan_id = await _plan_of_comment(
            session, author, call, new.plan_purpose, new.plan_note
        )
    session.add(comment)
    await session.flush()
    for user in mentioned:
        session.add(CommentMention(comment_id=comment.id, user_id=user.id))
    await session.flush()
    return comment


async def _plan_of_comment(
    session: AsyncSession, author: User, call: Call, purpose: str, note: str
) -> int:
    customer_id = await session.scalar(
        select(Activity.customer_id).where(Activity.id == call.activity_id)
    )
    if customer_id is None:
        raise InvalidInput("the call has no customer to plan for", "plan_purpose")
    plan = await set_next_step(session, customer_id, author.id, purpose, note.strip())
    return plan.id


async def own_comment(
    session: AsyncSession, viewer: Viewer, call: Call, comment_id: int
) -> CallComment:
    """Return a comment of the call that the viewer wrote.

    Raises NotFound when the call has no such comment, and Forbidden when
    another user wrote it.
    """
    comment = await session.get(CallComment, comment_id)
    if comment is None or comment.call_id != call.id:
        raise NotFound(
            f"comment {comment_id} not found on call {call.call_sid}", "comment_id"
        )
    if comment.author_id != viewer.user_id:
        raise Forbidden(
            f"comment {comment_id} was written by another user; only its author "
            "may change or delete it",
            "comment_id",
        )
    return comment


async def edit_comment(
    session: AsyncSession,
    author: User,
    call: Call,
    comment: CallComment,
    change: CommentChange,
) -> CallComment:
    """Apply an edit of the author's own comment in the caller's transaction.

    A new body replaces the comment's mentions. A new moment is only for a
    comment that starts a thread, and its replies move with it.
    """
    body = None if change.body is None else _checked_body(change.body)
    if change.at_ms is not None:
        if comment.parent_id is not None:
            raise InvalidInput(
                f"comment {comment.id} is a reply, which keeps the moment of "
                f"comment {comment.parent_id}",
                "at",
            )
        _check_moment(change.at_ms)
    mentioned = None if body is None else await _mentioned_users(session, body, call.id)
    if change.plan_purpose:
        comment.plan_id = await _plan_of_comment(
            session, author, call, change.plan_purpose, change.plan_note
        )
    if body is not None and mentioned is not None:
        comment.body = body
        await _replace_mentions(session, comment.id, mentioned)
    if change.at_ms is not None:
        comment.at_ms = change.at_ms
        await session.execute(
            update(CallComment)
            .where(CallComment.parent_id == comment.id)
            .values(at_ms=change.at_ms)
        )
    await session.flush()
    log.info(
        "comment edited: comment=%s call=%s author=%s", comment.id, call.id, author.id
    )
    return comment


async def _replace_mentions(
    session: AsyncSession, comment_id: int, mentioned: list[User]
) -> None:
    await session.execute(
        delete(CommentMention).where(CommentMention.comment_id == comment_id)
    )
    for user in mentioned:
        session.add(CommentMention(comment_id=comment_id, user_id=user.id))


async def delete_comment(
    session: AsyncSession, call: Call, comment: CallComment
) -> None:
    """Delete the author's own comment and the author's replies to it.

    A comment that others replied to stays, so that their words are not lost
    with it. A plan that the comment set stays too.
    """
    replies = list(
        await session.scalars(
            select(CallComment).where(CallComment.parent_id == comment.id)
        )
    )
    others = [reply.id for reply in replies if reply.author_id != comment.author_id]
    if others:
        raise Conflict(
            f"comment {comment.id} has replies from other users; edit it instead",
            "comment_id",
        )
    ids = [comment.id, *(reply.id for reply in replies)]
    await session.execute(
        delete(CommentMention).where(CommentMention.comment_id.in_(ids))
    )
    await session.execute(
        delete(CallComment)
        .where(CallComment.id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    log.info(
        "comment deleted: comment=%s call=%s author=%s replies=%s",
        comment.id,
        call.id,
        comment.author_id,
        len(replies),
    )


async def comment_thread(
    session: AsyncSession, call_id: int, comment_id: int
) -> CommentThread:
    """Return one comment of the call with its mentions and replies."""
    for thread in await call_comments(session, call_id):
        if thread.comment.id == comment_id:
            return thread
        for reply in thread.replies:
            if reply.comment.id == comment_id:
                return reply
    raise NotFound(f"comment {comment_id} not found", "comment_id")


async def call_comments(session: AsyncSession, call_id: int) -> list[CommentThread]:
    """Return the call's comments by moment, each with its replies oldest first."""
    comments = list(
        await session.scalars(
            select(CallComment)
            .where(CallComment.call_id == call_id)
            .options(selectinload(CallComment.author))
            .order_by(CallComment.at_ms, CallComment.id)
        )
    )
    mentions = await _mentions_of(session, [comment.id for comment in comments])
    threads: dict[int, CommentThread] = {}
    roots = []
    for comment in comments:
        thread = CommentThread(comment, mentions.get(comment.id, []))
        threads[comment.id] = thread
        if comment.parent_id is None:
            roots.append(thread)
    for comment in comments:
        if comment.parent_id is not None and comment.parent_id in threads:
            threads[comment.parent_id].replies.append(threads[comment.id])
    for thread in roots:
        thread.replies.sort(key=lambda reply: reply.comment.id)
    return roots


async def _mentions_of(
    session: AsyncSession, comment_ids: list[int]
) -> dict[int, list[User]]:
    if not comment_ids:
        return {}
    rows = await session.execute(
        select(CommentMention.comment_id, User)
        .join(User, CommentMention.user_id == User.id)
        .where(CommentMention.comment_id.in_(comment_ids))
        .order_by(CommentMention.id)
    )
    found: dict[int, list[User]] = {}
    for comment_id, user in rows:
        found.setdefault(comment_id, []).append(user)
    return found


@dataclass(frozen=True)
class Mention:
    comment: CallComment
    call_sid: str


async def mentions_of_user(
    session: AsyncSession, viewer: Viewer, limit: int = 50
) -> list[Mention]:
    """Return the latest comments that mention the viewer, on calls they can see."""
    rows = await session.execute(
        select(CallComment, Call.call_sid)
        .join(CommentMention, CommentMention.comment_id == CallComment.id)
        .join(Call, CallComment.call_id == Call.id)
        .where(CommentMention.user_id == viewer.user_id, visible_calls(viewer))
        .options(selectinload(CallComment.author))
        .order_by(CallComment.created_at.desc(), CallComment.id.desc())
        .limit(limit)
    )
    return [Mention(comment, sid) for comment, sid in rows]


async def visible_call(session: AsyncSession, viewer: Viewer, call_sid: str) -> Call:
    """Return a call whose recording the viewer may review, or raise NotFound."""
    call = await session.scalar(
        select(Call).where(Call.call_sid == call_sid, visible_calls(viewer))
    )
    if call is None or not viewer.can_play_recordings:
        raise NotFound(f"call {call_sid!r} not found", "call_sid")
    return call
