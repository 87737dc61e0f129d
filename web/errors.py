"""One place that turns errors into responses: JSON for machines, a page for people."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import aiohttp_jinja2
from aiohttp import web

from capture.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotConfigured,
    NotFound,
    UpstreamFailed,
)
from web.domain_messages import translate_message
from web.i18n import gettext_noop as N_
from web.i18n import template_values

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATUS = {
    InvalidInput: 400,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    UpstreamFailed: 502,
    NotConfigured: 503,
}
INTERNAL_ERROR = N_("internal error; the failure is logged")
# Fixed messages of the domain layer and of aiohttp's HTTP errors that reach
# pages. They are marked here so that the catalogue contains their translations.
PAGE_MESSAGES = (
    N_("this page needs the admin role"),
    N_("this page needs the ops or admin role"),
    N_("recording file not found"),
    N_("name is empty"),
    N_("another user has this phone number"),
    N_("this phone number is one of the company's numbers"),
    N_("this phone number belongs to a customer"),
    N_("team name must be 1 to 200 characters"),
    N_("Not Found"),
    N_("Method Not Allowed"),
    N_("Forbidden"),
    N_("Bad Request"),
    N_("Request Entity Too Large"),
)
MACHINE_PREFIXES = ("/api/", "/twilio/", "/email/", "/healthz")


def wants_json(request: web.Request) -> bool:
    return request.path.startswith(MACHINE_PREFIXES)


def render_error(
    request: web.Request, status: int, message: str, field: str | None = None
) -> web.Response:
    if wants_json(request):
        body: dict[str, str] = {"error": message}
        if field:
            body["field"] = field
        return web.json_response(body, status=status)
    # Pages show the message translated when the catalogue has it. Logs and
    # JSON keep the English.
    context = {
        **template_values(request),
        "status": status,
        "message": translate_message(message),
        "field": field,
    }
    response = aiohttp_jinja2.render_template("error.html", request, context)
    response.set_status(status)
    return response


@web.middleware
async def error_middleware(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as error:
        status = STATUS.get(type(error), 400)
        # %r escapes line breaks, so a crafted path cannot forge log lines.
        log.info("%s %r: %s %r", request.method, request.path, status, error.message)
        return render_error(request, status, error.message, error.field)
    except web.HTTPException as error:
        if error.status < 400 or error.content_type == "application/json":
            raise
        return render_error(request, error.status, error.reason)
    except Exception:
        log.exception("%s %r failed", request.method, request.path)
        return render_error(request, 500, INTERNAL_ERROR)
