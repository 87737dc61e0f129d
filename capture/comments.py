"""Comments pinned to a moment of a call, with replies and @mentions of users."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from capture.access import Viewer, visible_calls
from capture.errors import InvalidInput, NotFound
from capture.models import Activity, Call, CallComment, CommentMention, User
from capture.next_step import set_next_step

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


def _check(new: NewComment) -> str:
    body = new.body.strip()
    if not body:
        raise InvalidInput("body is missing; write the comment", "body")
    if len(body) > MAX_BODY_LENGTH:
        raise InvalidInput(f"body is longer than {MAX_BODY_LENGTH} characters", "body")
    if not 0 <= new.at_ms <= MAX_AT_MS:
        raise InvalidInput(f"at {new.at_ms / 1000} s is outside the recording", "at")
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
        comment.plan_id = await _plan_of_comment(session, author, call, new)
    session.add(comment)
    await session.flush()
    for user in mentioned:
        session.add(CommentMention(comment_id=comment.id, user_id=user.id))
    await session.flush()
    return comment


async def _plan_of_comment(
    session: AsyncSession, author: User, call: Call, new: NewComment
) -> int:
    customer_id = await session.scalar(
        select(Activity.customer_id).where(Activity.id == call.activity_id)
    )
    if customer_id is None:
        raise InvalidInput("the call has no customer to plan for", "plan_purpose")
    plan = await set_next_step(
        session, customer_id, author.id, str(new.plan_purpose), new.plan_note.strip()
    )
    return plan.id


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
