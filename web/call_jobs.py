"""Retrying a failed transcription from the call page and from the API.

`POST /calls/{call_sid}/transcription/retry` is the call page's button (a
form with the CSRF token) and redirects back to the page;
`POST /api/v1/calls/{call_sid}/transcription/retry` returns the job as JSON.
"""

from __future__ import annotations

from aiohttp import web

from capture.transcription_retry import retry_transcription
from web.access import viewer_of
from web.keys import DATABASE, WORKER

routes = web.RouteTableDef()


async def _retry(request: web.Request) -> int:
    call_sid = request.match_info["call_sid"]
    job_id = await retry_transcription(
        request.app[DATABASE].writes, viewer_of(request), call_sid
    )
    request.app[WORKER].notify()
    return job_id


@routes.post("/calls/{call_sid}/transcription/retry")
async def retry_from_page(request: web.Request) -> web.Response:
    await _retry(request)
    raise web.HTTPSeeOther(f"/calls/{request.match_info['call_sid']}")


@routes.post("/api/v1/calls/{call_sid}/transcription/retry")
async def retry_from_api(request: web.Request) -> web.Response:
    job_id = await _retry(request)
    return web.json_response({"job_id": job_id, "status": "queued"})
