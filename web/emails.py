"""Email pages: one email with its thread, and its attachments as downloads.

The plain text shows by default. The HTML body shows only on request, after
nh3 (the Ammonia sanitiser) has removed scripts, event handlers, styles,
forms and images, and under a Content-Security-Policy that runs no script.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp_jinja2
import nh3
from aiohttp import web

from capture.email_reads import attachment_file, email_detail
from capture.email_text import text_of_html
from capture.errors import NotFound
from capture.queries import parse_id
from web.access import viewer_of
from web.keys import DATABASE, SETTINGS

routes = web.RouteTableDef()

# Images are left out: a remote image lets the sender see when the email
# was read, and inline ones would need the message's other parts.
ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img"}
EMAIL_PAGE_POLICY = (
    "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def sanitise_html(html: str) -> str:
    """Return email HTML that is safe to insert into a page."""
    return nh3.clean(html, tags=ALLOWED_TAGS)


def _id(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    number = parse_id(raw)
    if number is None:
        raise NotFound(f"{name} {raw[:40]!r} not found", name)
    return number


@routes.get("/emails/{id}")
async def email_page(request: web.Request) -> web.Response:
    email_id = _id(request, "id")
    async with request.app[DATABASE].reads() as session:
        email, thread = await email_detail(session, viewer_of(request), email_id)
    show_html = request.query.get("view") == "html" and bool(email.html_body)
    context: dict[str, Any] = {
        "email": email,
        "thread": thread,
        "show_html": show_html,
        "safe_html": sanitise_html(email.html_body) if show_html else "",
        "plain_text": email.text_body or text_of_html(email.html_body),
    }
    response = aiohttp_jinja2.render_template("email.html", request, context)
    response.headers["Content-Security-Policy"] = EMAIL_PAGE_POLICY
    return response


@routes.get("/emails/{id}/attachments/{attachment_id}")
async def attachment(request: web.Request) -> web.FileResponse:
    email_id = _id(request, "id")
    attachment_id = _id(request, "attachment_id")
    settings = request.app[SETTINGS]
    async with request.app[DATABASE].reads() as session:
        found = await attachment_file(
            session, viewer_of(request), email_id, attachment_id
        )
    path = (settings.data_dir / found.file_path).resolve()
    if (
        not path.is_relative_to(settings.attachments_dir.resolve())
        or not path.is_file()
    ):
        raise NotFound("attachment file not found", "attachment_id")
    # Always a download with a neutral type: an attachment declared as HTML
    # must not render as a page of this site.
    disposition = f"attachment; filename*=UTF-8''{quote(found.filename, safe='')}"
    return web.FileResponse(
        Path(path),
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": disposition,
        },
    )
