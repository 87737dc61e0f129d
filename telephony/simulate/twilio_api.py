"""A loopback stand-in for the Calls resource of Twilio's REST API.

`POST /2010-04-01/Accounts/{AccountSid}/Calls.json` with HTTP basic auth
(AccountSid, auth token) records the form and returns 201 with a call
resource that carries a new CallSid, as Twilio does. It returns 401 without
valid credentials, 404 for another account and 400 when `To`, `From` or
`Url` is missing. The simulator then plays the call that Twilio would
place, from the recorded request.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from aiohttp import web
from multidict import MultiDict

from telephony.simulate.media import authorized, twilio_error
from telephony.simulate.options import SimulationOptions
from telephony.simulate.params import API_VERSION

logger = logging.getLogger(__name__)

REQUIRED_PARAMETERS = ("To", "From", "Url")


@dataclass(frozen=True)
class CreatedCall:
    """One call the service asked the API to create, with the form it sent."""

    call_sid: str
    form: MultiDict[str]


class TwilioApiServer:
    """Serve the Calls resource of Twilio's REST API on 127.0.0.1."""

    def __init__(self, options: SimulationOptions) -> None:
        self._options = options
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.calls: dict[str, CreatedCall] = {}
        self.rejected = 0

    @property
    def base_url(self) -> str:
        """The URL to set as the service's `twilio_api_url`."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(
            f"/{API_VERSION}/Accounts/{{account_sid}}/Calls.json", self._create_call
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._options.twilio_api_port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        logger.info("Twilio API stand-in listening on port %d", self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            logger.info("Twilio API stand-in stopped")

    async def _create_call(self, request: web.Request) -> web.Response:
        if not authorized(request, self._options):
            self.rejected += 1
            return twilio_error(401, 20003, "Authenticate")
        if request.match_info["account_sid"] != self._options.account_sid:
            self.rejected += 1
            return twilio_error(404, 20404, "The requested resource was not found")
        posted = await request.post()
        form = MultiDict((key, str(value)) for key, value in posted.items())
        missing = [name for name in REQUIRED_PARAMETERS if not form.get(name)]
        if missing:
            self.rejected += 1
            return twilio_error(400, None, f"Missing required parameter {missing[0]}")
        call_sid = "CA" + secrets.token_hex(16)
        self.calls[call_sid] = CreatedCall(call_sid, form)
        logger.info("Twilio API stand-in created call %s", call_sid)
        return web.json_response(self._call_resource(call_sid, form), status=201)

    def _call_resource(self, call_sid: str, form: MultiDict[str]) -> dict[str, object]:
        now = format_datetime(datetime.now(UTC), usegmt=True)
        account_sid = self._options.account_sid
        return {
            "sid": call_sid,
            "account_sid": account_sid,
            "to": form["To"],
            "from": form["From"],
            "status": "queued",
            "direction": "outbound-api",
            "api_version": API_VERSION,
            "date_created": now,
            "date_updated": now,
            "parent_call_sid": None,
            "uri": f"/{API_VERSION}/Accounts/{account_sid}/Calls/{call_sid}.json",
        }
