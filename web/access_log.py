"""The access log, without lines for Twilio webhooks.

Every webhook already logs one line with its outcome and the SID it
concerns. A second, generic line per webhook would double the logging cost
at peak load and carry less.
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
        super().log(request, response, time)
