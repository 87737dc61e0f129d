"""`POST /api/v1/imports/activities`: touches from other channels, as CSV.

The body is the CSV that `touchline import activities` reads (docs/imports.md),
up to the application's 1 MiB body limit. Larger files go through the command
line, which commits them in parts. Admins only, since imported touches count
in every rep's figures.
"""

from __future__ import annotations

import logging

from aiohttp import web

from capture import imports
from capture.errors import Forbidden, InvalidInput
from web.access import viewer_of
from web.keys import SETTINGS, WRITER

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
CSV_TYPES = ("text/csv", "text/plain")


@routes.post("/api/v1/imports/activities")
async def import_activities(request: web.Request) -> web.Response:
    if not viewer_of(request).is_admin:
        raise Forbidden("imports are for admins")
    if request.content_type not in CSV_TYPES:
        raise InvalidInput("the body must be text/csv", "Content-Type")
    try:
        text = (await request.read()).decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"the body is not UTF-8: {error}", "body") from None
    settings = request.app[SETTINGS]
    rows = imports.read_csv(text, settings.zone, settings.default_region)
    result = await request.app[WRITER].run(
        lambda session: imports.import_rows(session, rows)
    )
    log.info(
        "activities imported: rows=%s created=%s skipped=%s",
        result.rows,
        result.created,
        result.skipped,
    )
    return web.json_response(
        {
            "rows": result.rows,
            "imported": result.created,
            "skipped": result.skipped,
            "unmatched": result.unmatched,
        }
    )
