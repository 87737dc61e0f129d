"""Pages for transcript search, keyword trackers, call comments and the review queue."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from capture.call_list import calling_users
from capture.comments import NewComment, add_comment, mentions_of_user, visible_call
from capture.db import transaction
from capture.errors import Conflict, Forbidden, InvalidInput, NotFound
from reports.periods import parse_range
from transcripts.review_queue import (
    REVIEWER_ROLES,
    mark_reviewed,
    parse_score,
    require_reviewer,
    review_queue,
)
from transcripts.search import search
from transcripts.tracker_counts import tracker_counts
from transcripts.trackers import (
    compiled_trackers,
    delete_tracker,
    list_trackers,
    save_tracker,
)
from web.access import user_of, viewer_of
from web.keys import DATABASE, SETTINGS
from web.review_inputs import (
    long_text,
    offset_cursor,
    optional_id,
    parse_moment,
    queue_filters,
    search_filters,
)

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
PAGE = 50
MAX_COMMENT = 4000
MAX_PHRASES_TEXT = 6000


@routes.get("/search")
@aiohttp_jinja2.template("search.html")
async def search_page(request: web.Request) -> dict[str, Any]:
    settings = request.app[SETTINGS]
    query = request.query.get("q", "").strip()
    filters = search_filters(request.query, settings.zone)
    offset = offset_cursor(request.query.get("cursor"))
    hits = []
    async with request.app[DATABASE].reads() as session:
        reps = await calling_users(session, viewer_of(request))
        if query:
            hits = await search(
                session, viewer_of(request), query, filters, offset=offset, limit=PAGE
            )
    following = offset + PAGE if len(hits) > PAGE else None
    return {
        "query": query,
        "values": request.query,
        "hits": hits[:PAGE],
        "reps": reps,
        "next": following,
        "zone": settings.zone,
    }


def _can_define_trackers(request: web.Request) -> bool:
    return viewer_of(request).role in REVIEWER_ROLES


def _period(request: web.Request) -> Any:
    zone = request.app[SETTINGS].zone
    today = datetime.now(zone).date()
    first = request.query.get("from") or (today - timedelta(days=30)).isoformat()
    last = request.query.get("to") or today.isoformat()
    return parse_range(first, last, zone)


@routes.get("/trackers")
async def trackers_page(request: web.Request) -> web.Response:
    return await _render_trackers(request)


async def _render_trackers(
    request: web.Request, status: int = 200, error: Exception | None = None
) -> web.Response:
    period = _period(request)
    async with request.app[DATABASE].reads() as session:
        trackers = await list_trackers(session)
        compiled = await compiled_trackers(session)
        calls, reps = await tracker_counts(
            session, viewer_of(request), compiled, period.start, period.end
        )
    context = {
        "trackers": compiled,
        "stored": trackers,
        "calls": [call for call in calls if call.counts],
        "reps": reps,
        "period": period,
        "zone": request.app[SETTINGS].zone,
        "can_define": _can_define_trackers(request),
        "error": error,
        "field": getattr(error, "field", None),
    }
    return aiohttp_jinja2.render_template(
        "trackers.html", request, context, status=status
    )


@routes.post("/trackers")
async def save_tracker_form(request: web.Request) -> web.Response:
    if not _can_define_trackers(request):
        raise Forbidden("only managers and admins define trackers")
    form = await request.post()
    try:
        tracker_id = optional_id(str(form.get("id") or ""), "id")
        name = long_text(form, "name", 200)
        phrases = long_text(form, "phrases", MAX_PHRASES_TEXT)
        async with transaction(request.app[DATABASE].writes) as session:
            await save_tracker(session, user_of(request), name, phrases, tracker_id)
    except (InvalidInput, Conflict) as error:
        log.info("tracker not saved: %s (field %s)", error, error.field)
        status = 409 if isinstance(error, Conflict) else 400
        return await _render_trackers(request, status, error)
    raise web.HTTPSeeOther("/trackers")


@routes.post("/trackers/{id}/delete")
async def delete_tracker_form(request: web.Request) -> web.Response:
    if not _can_define_trackers(request):
        raise Forbidden("only managers and admins define trackers")
    tracker_id = optional_id(request.match_info["id"], "id")
    if tracker_id is None:
        raise NotFound("tracker id is missing", "id")
    async with transaction(request.app[DATABASE].writes) as session:
        await delete_tracker(session, tracker_id)
    raise web.HTTPSeeOther("/trackers")


@routes.get("/review")
@aiohttp_jinja2.template("review_queue.html")
async def review_queue_page(request: web.Request) -> dict[str, Any]:
    viewer = viewer_of(request)
    require_reviewer(viewer)
    filters = queue_filters(request.query)
    async with request.app[DATABASE].reads() as session:
        trackers = await compiled_trackers(session)
        rows = await review_queue(session, viewer, filters, trackers)
        mentions = await mentions_of_user(session, viewer)
    return {
        "rows": rows,
        "trackers": trackers,
        "values": request.query,
        "mentions": mentions,
        "zone": request.app[SETTINGS].zone,
    }


@routes.post("/calls/{call_sid}/comments")
async def post_comment(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    form = await request.post()
    new = NewComment(
        at_ms=parse_moment(long_text(form, "at", 20)),
        body=long_text(form, "body", MAX_COMMENT),
        parent_id=optional_id(str(form.get("parent") or ""), "parent"),
        plan_purpose=long_text(form, "plan_purpose", 40) or None,
        plan_note=long_text(form, "plan_note", 2000),
    )
    async with transaction(request.app[DATABASE].writes) as session:
        call = await visible_call(session, viewer, request.match_info["call_sid"])
        comment = await add_comment(session, user_of(request), call, new)
    seconds = comment.at_ms // 1000
    location = f"/calls/{call.call_sid}?t={seconds}#comment-{comment.id}"
    raise web.HTTPSeeOther(location)


@routes.post("/calls/{call_sid}/review")
async def post_review(request: web.Request) -> web.Response:
    viewer = viewer_of(request)
    require_reviewer(viewer)
    form = await request.post()
    score = parse_score(long_text(form, "score", 4))
    note = long_text(form, "note", MAX_COMMENT)
    async with transaction(request.app[DATABASE].writes) as session:
        call = await visible_call(session, viewer, request.match_info["call_sid"])
        await mark_reviewed(session, viewer, call, score, note)
    raise web.HTTPSeeOther(f"/calls/{call.call_sid}#review")
