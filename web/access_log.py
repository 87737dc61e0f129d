"""The access log: no query strings, and no lines for accepted webhooks.

Query strings carry phone numbers and email addresses (customer search),
which must not reach the logs, so a line names the path only. Accepted
webhooks are counted by outcome at `/metrics`, and logged with their SID at
DEBUG; a line each at INFO would cost a tenth of a webhook's time at peak
load. Rejected webhooks are still logged here.
"""

from __future__ import annotations

from aiohttp import web
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
