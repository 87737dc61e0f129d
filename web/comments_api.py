"""The JSON API of call comments: add, reply, edit and delete one's own.

The rules are those of the review page (`capture.comments`). Whoever may
review a call may comment on it, mentions must name active users who can
see the call, and a comment may set the customer's next-step plan. Ops
cannot review calls, so every request of theirs is forbidden.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from capture.access import Viewer
from capture.comments import (
    MAX_BODY_LENGTH,
    CommentChange,
    NewComment,
    add_comment,
    comment_thread,
    delete_comment,
    edit_comment,
    own_comment,
    visible_call,
)
from capture.db import transaction
from capture.errors import Forbidden, InvalidInput, NotFound
from capture.next_step import MAX_NOTE_LENGTH
from capture.queries import json_id, parse_id
from web.access import user_of, viewer_of
from web.keys import DATABASE, SETTINGS
from web.review_api import comment_json
from web.review_inputs import CONTROL, parse_moment
from web.values_api import json_object

routes = web.RouteTableDef()
NEW_FIELDS = ("body", "at", "at_ms", "parent_id", "plan_purpose", "plan_note")
EDIT_FIELDS = ("body", "at", "at_ms", "plan_purpose", "plan_note")


def _reviewer(request: web.Request) -> Viewer:
    viewer = viewer_of(request)
    if not viewer.can_play_recordings:
        raise Forbidden("call comments are not available to the ops role")
    return viewer


def _check_keys(document: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(document) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"{unknown[0]} is not a comment field; use {', '.join(allowed)}",
            unknown[0],
        )


def _text(document: dict[str, Any], name: str, max_length: int) -> str | None:
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", name)
    if CONTROL.search(value):
        raise InvalidInput(f"{name} contains control characters", name)
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", name)
    return value


# No call lasts longer than a day, so no moment in one lies further in.
MAX_MOMENT_MS = 86_400_000


def _moment(document: dict[str, Any]) -> tuple[int | None, str]:
    """Read `at` (seconds, or "m:ss" text) or `at_ms`, with the key it came from."""
    if document.get("at") is not None and document.get("at_ms") is not None:
        raise InvalidInput("give at or at_ms, not both", "at_ms")
    if document.get("at_ms") is not None:
        at_ms = document["at_ms"]
        if isinstance(at_ms, bool) or not isinstance(at_ms, int):
            raise InvalidInput("at_ms must be a whole number of milliseconds", "at_ms")
        if not 0 <= at_ms <= MAX_MOMENT_MS:
            raise InvalidInput(f"at_ms must be from 0 to {MAX_MOMENT_MS}", "at_ms")
        return at_ms, "at_ms"
    at = document.get("at")
    if at is None:
        return None, "at"
    if isinstance(at, str):
        return parse_moment(at), "at"
    if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
        raise InvalidInput(
            "at must be seconds, such as 75.5, or text such as 1:15", "at"
        )
    if not 0 <= at <= MAX_MOMENT_MS / 1000:
        raise InvalidInput(
            f"at must be from 0 to {MAX_MOMENT_MS // 1000} seconds", "at"
        )
    return round(at * 1000), "at"


def _plan(document: dict[str, Any]) -> tuple[str | None, str]:
    purpose = _text(document, "plan_purpose", 40) or None
    note = _text(document, "plan_note", MAX_NOTE_LENGTH) or ""
    if note and purpose is None:
        raise InvalidInput("plan_note needs a plan_purpose", "plan_note")
    return purpose, note


def _parent_id(document: dict[str, Any]) -> int | None:
    value = document.get("parent_id")
    if value is None:
        return None
    if isinstance(value, str):
        raise InvalidInput("parent_id must be the id of a comment", "parent_id")
    return json_id(value, "parent_id")


def new_comment_of(document: dict[str, Any]) -> tuple[NewComment, str]:
    """Read a new comment, with the key its moment came from."""
    _check_keys(document, NEW_FIELDS)
    body = _text(document, "body", MAX_BODY_LENGTH)
    if body is None:
        raise InvalidInput("body is missing; write the comment", "body")
    at_ms, moment_key = _moment(document)
    parent_id = _parent_id(document)
    if at_ms is None and parent_id is None:
        raise InvalidInput(
            "at is missing; give the moment (at or at_ms) or a parent_id", "at"
        )
    purpose, note = _plan(document)
    new = NewComment(
        at_ms=0 if at_ms is None else at_ms,
        body=body,
        parent_id=parent_id,
        plan_purpose=purpose,
        plan_note=note,
    )
    return new, moment_key


def change_of(document: dict[str, Any]) -> tuple[CommentChange, str]:
    """Read an edit, with the key its moment came from."""
    _check_keys(document, EDIT_FIELDS)
    body = _text(document, "body", MAX_BODY_LENGTH)
    at_ms, moment_key = _moment(document)
    purpose, note = _plan(document)
    if body is None and at_ms is None and purpose is None:
        raise InvalidInput(
            "body is missing; give at least one of body, at, at_ms or plan_purpose",
            "body",
        )
    return CommentChange(body, at_ms, purpose, note), moment_key


def _named(error: InvalidInput, moment_key: str) -> InvalidInput:
    """Name the JSON key at fault where the domain names the page's form field."""
    keys = {"at": moment_key, "parent": "parent_id"}
    if error.field in keys:
        return InvalidInput(error.message, keys[error.field])
    return error


def _comment_id(request: web.Request) -> int:
    raw = request.match_info["comment_id"]
    number = parse_id(raw)
    if number is None:
        raise NotFound(f"comment {raw[:20]!r} not found", "comment_id")
    return number


@routes.post("/api/v1/calls/{call_sid}/comments")
async def create_comment(request: web.Request) -> web.Response:
    viewer = _reviewer(request)
    zone = request.app[SETTINGS].zone
    new, moment_key = new_comment_of(await json_object(request))
    async with transaction(request.app[DATABASE].writes) as session:
        call = await visible_call(session, viewer, request.match_info["call_sid"])
        try:
            comment = await add_comment(session, user_of(request), call, new)
        except InvalidInput as error:
            raise _named(error, moment_key) from error
        thread = await comment_thread(session, call.id, comment.id)
        body = comment_json(thread, zone)
    return web.json_response(body, status=201)


@routes.patch("/api/v1/calls/{call_sid}/comments/{comment_id}")
async def update_comment(request: web.Request) -> web.Response:
    viewer = _reviewer(request)
    zone = request.app[SETTINGS].zone
    change, moment_key = change_of(await json_object(request))
    async with transaction(request.app[DATABASE].writes) as session:
        call = await visible_call(session, viewer, request.match_info["call_sid"])
        comment = await own_comment(session, viewer, call, _comment_id(request))
        try:
            await edit_comment(session, user_of(request), call, comment, change)
        except InvalidInput as error:
            raise _named(error, moment_key) from error
        thread = await comment_thread(session, call.id, comment.id)
        body = comment_json(thread, zone)
    return web.json_response(body)


@routes.delete("/api/v1/calls/{call_sid}/comments/{comment_id}")
async def remove_comment(request: web.Request) -> web.Response:
    viewer = _reviewer(request)
    async with transaction(request.app[DATABASE].writes) as session:
        call = await visible_call(session, viewer, request.match_info["call_sid"])
        comment = await own_comment(session, viewer, call, _comment_id(request))
        await delete_comment(session, call, comment)
    return web.Response(status=204)
