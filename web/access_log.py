"""The access log: no query strings, and no lines for accepted webhooks.

Query strings carry phone numbers and email addresses (customer search),
which must not reach the logs, so a line names the path only. Accepted
webhooks are counted by outcome at `/metrics`, and logged with their SID at
DEBUG; a line each at INFO would cost a tenth of a webhook's time at peak
load. Rejected webhooks are still logged here.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.web_log import AccessLogger


class AccessLog(AccessLogger):
    def log(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float
    ) -> None:
        if request.path.startswith("/twilio/") and response.status < 400:
            return
        # %r escapes line breaks, so a crafted path cannot forge log lines.
        self.logger.info(
            "%s %r %s %s bytes %.1fms",
            request.method,
            request.path,
            response.status,
            response.body_length,
            time * 1000,
        )


class BadRequestFilter(logging.Filter):
    """Shorten aiohttp's report of a malformed request to one line.

    aiohttp logs a request it cannot parse (an over-long URL or header, a
    broken request line) with a traceback that quotes the first bytes of
    the offending line, and those can hold phone numbers from a query
    string. The record keeps the client address and the error's class.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BadHttpMessage):
            remote = record.args[0] if isinstance(record.args, tuple) else None
            record.msg = "malformed HTTP request from %s rejected: %s (status %s)"
            record.args = (remote or "unknown", type(error).__name__, error.code)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install_bad_request_filter() -> None:
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(item, BadRequestFilter) for item in logger.filters):
        logger.addFilter(BadRequestFilter())
