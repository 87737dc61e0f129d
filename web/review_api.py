"""The JSON API of transcript search, keyword trackers and call review."""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from capture.comments import CommentThread
from capture.db import transaction
from capture.errors import Forbidden, InvalidInput
from capture.queries import call_detail, page_size
from reports.periods import parse_range
from transcripts.figures import ConversationFigures
from transcripts.review_queue import REVIEWER_ROLES
from transcripts.search import EMAIL, SearchHit, search
from transcripts.tracker_counts import CallCounts, RepCounts, tracker_counts
from transcripts.trackers import CompiledTracker, compiled_trackers, save_tracker
from web.access import user_of, viewer_of
from web.keys import DATABASE, SETTINGS
from web.review_context import review_context
from web.review_inputs import offset_cursor, search_filters
from web.serialize import when

routes = web.RouteTableDef()


def moment_url(call_sid: str, offset_ms: int) -> str:
    """Return the review page address that opens the call at `offset_ms`."""
    seconds = offset_ms // 1000
    return f"/calls/{call_sid}?t={seconds}#t={seconds}"


def touch_url(customer_id: int, activity_id: int) -> str:
    """Return the customer page address that shows the touch in the stream."""
    return f"/customers/{customer_id}?touch={activity_id}#activity-{activity_id}"


def hit_json(hit: SearchHit, zone: ZoneInfo) -> dict[str, Any]:
    found: dict[str, Any] = {
        "source": hit.source,
        "activity_id": hit.activity_id,
        "occurred_at": when(hit.occurred_at, zone),
        "text": hit.text,
        "customer": None,
        "rep": None,
    }
    if hit.customer_id is not None:
        found["customer"] = {"id": hit.customer_id, "name": hit.customer_name}
    if hit.rep_id is not None:
        found["rep"] = {"id": hit.rep_id, "name": hit.rep_name}
    if hit.call_sid is not None and hit.offset_ms is not None:
        found["call_sid"] = hit.call_sid
        found["speaker"] = hit.speaker
        found["second"] = hit.second
        found["url"] = moment_url(hit.call_sid, hit.offset_ms)
    elif hit.customer_id is not None and hit.on_stream:
        found["url"] = touch_url(hit.customer_id, hit.activity_id)
    else:
        found["url"] = None
    if hit.source == EMAIL:
        found["email_id"] = hit.item_id
        found["subject"] = hit.subject
        found["email_url"] = f"/emails/{hit.item_id}"
    return found


@routes.get("/api/v1/search")
async def search_api(request: web.Request) -> web.Response:
    zone = request.app[SETTINGS].zone
    limit = page_size(request.query.get("limit"))
    offset = offset_cursor(request.query.get("cursor"))
    filters = search_filters(request.query, zone)
    async with request.app[DATABASE].reads() as session:
        hits = await search(
            session,
            viewer_of(request),
            request.query.get("q", ""),
            filters,
            offset=offset,
            limit=limit,
        )
    following = str(offset + limit) if len(hits) > limit else None
    items = [hit_json(hit, zone) for hit in hits[:limit]]
    return web.json_response({"items": items, "next": following})


def tracker_json(tracker: CompiledTracker) -> dict[str, Any]:
    return {"id": tracker.id, "name": tracker.name, "phrases": list(tracker.phrases)}


@routes.get("/api/v1/trackers")
async def trackers_api(request: web.Request) -> web.Response:
    async with request.app[DATABASE].reads() as session:
        trackers = await compiled_trackers(session)
    return web.json_response(
        {"items": [tracker_json(t) for t in trackers], "next": None}
    )


async def _json_object(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("the body is not valid JSON", "body") from None
    if not isinstance(body, dict):
        raise InvalidInput("the body must be a JSON object", "body")
    return body


@routes.post("/api/v1/trackers")
async def create_tracker_api(request: web.Request) -> web.Response:
    if viewer_of(request).role not in REVIEWER_ROLES:
        raise Forbidden("only managers and admins define trackers")
    body = await _json_object(request)
    name, phrases = body.get("name"), body.get("phrases")
    if not isinstance(name, str):
        raise InvalidInput("name must be a string", "name")
    if not isinstance(phrases, list):
        raise InvalidInput("phrases must be a list of strings", "phrases")
    async with transaction(request.app[DATABASE].writes) as session:
        tracker = await save_tracker(session, user_of(request), name, phrases)
        created = CompiledTracker.of(tracker)
    return web.json_response(tracker_json(created), status=201)


def _call_counts_json(call: CallCounts, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "call_sid": call.call_sid,
        "occurred_at": when(call.occurred_at, zone),
        "rep_id": call.rep_id,
        "customer": call.customer_name,
        "counts": {str(key): value for key, value in call.counts.items()},
    }


def _rep_counts_json(rep: RepCounts) -> dict[str, Any]:
    return {
        "rep_id": rep.rep_id,
        "rep": rep.rep_name,
        "calls": rep.calls,
        "counts": {str(key): value for key, value in rep.counts.items()},
        "calls_with_hits": {
            str(key): value for key, value in rep.calls_with_hits.items()
        },
    }


@routes.get("/api/v1/trackers/counts")
async def tracker_counts_api(request: web.Request) -> web.Response:
    zone = request.app[SETTINGS].zone
    period = parse_range(request.query.get("from"), request.query.get("to"), zone)
    async with request.app[DATABASE].reads() as session:
        trackers = await compiled_trackers(session)
        calls, reps = await tracker_counts(
            session, viewer_of(request), trackers, period.start, period.end
        )
    return web.json_response(
        {
            "trackers": [tracker_json(tracker) for tracker in trackers],
            "calls": [_call_counts_json(call, zone) for call in calls],
            "reps": [_rep_counts_json(rep) for rep in reps],
        }
    )


def figures_json(figures: ConversationFigures | None) -> dict[str, Any] | None:
    if figures is None:
        return None
    monologue = figures.longest_monologue
    return {
        "talk_ms": figures.talk_ms,
        "talk_ratio": {
            side: round(figures.talk_ratio(side), 4) for side in figures.talk_ms
        },
        "longest_monologue": None
        if monologue is None
        else {
            "speaker": monologue.speaker,
            "start_ms": monologue.start_ms,
            "duration_ms": monologue.duration_ms,
        },
        "questions": figures.questions,
        "interruptions": figures.interruptions,
    }


def comment_json(thread: CommentThread, zone: ZoneInfo) -> dict[str, Any]:
    comment = thread.comment
    return {
        "id": comment.id,
        "parent_id": comment.parent_id,
        "at_ms": comment.at_ms,
        "body": comment.body,
        "author": comment.author.email if comment.author else None,
        "created_at": when(comment.created_at, zone),
        "plan_id": comment.plan_id,
        "mentions": [user.email for user in thread.mentioned],
        "replies": [comment_json(reply, zone) for reply in thread.replies],
    }


@routes.get("/api/v1/calls/{call_sid}/review")
async def call_review_api(request: web.Request) -> web.Response:
    zone = request.app[SETTINGS].zone
    viewer = viewer_of(request)
    async with request.app[DATABASE].reads() as session:
        detail = await call_detail(session, viewer, request.match_info["call_sid"])
        if detail.media_hidden:
            raise Forbidden("transcripts are not available to the ops role")
        extra = await review_context(session, viewer, detail)
    hits = [
        {
            "tracker_id": hit.tracker_id,
            "tracker": hit.tracker_name,
            "phrase": hit.phrase,
            "speaker": hit.speaker,
            "start_ms": hit.start_ms,
        }
        for hit in extra["tracker_hits"]
    ]
    return web.json_response(
        {
            "call_sid": detail.call.call_sid,
            "figures": figures_json(extra["figures"]),
            "tracker_hits": hits,
            "comments": [comment_json(thread, zone) for thread in extra["comments"]],
            "reviews": [
                {
                    "reviewer_id": review.reviewer_id,
                    "score": review.score,
                    "note": review.note,
                    "reviewed_at": when(review.reviewed_at, zone),
                }
                for review in extra["reviews"]
            ],
        }
    )
