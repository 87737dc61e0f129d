"""Click-to-call through Twilio's REST API, with twilio's own `Client`.

The API's base URL is the `twilio_api_url` setting, so tests and the
simulator point the client at a loopback server standing in for Twilio.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urlencode

import aiohttp
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from capture.click_to_call import ClickToCall
from capture.errors import NotConfigured, UpstreamFailed
from capture.settings import Settings
from telephony.twiml import (
    BRIDGE_PATH,
    LEG_EVENTS,
    RECORDING_EVENTS,
    RECORDING_PATH,
    STATUS_PATH,
)

log = logging.getLogger(__name__)

# Seconds Touchline waits for Twilio's API to create a call.
API_TIMEOUT = 15


class AiohttpTwilioClient(AsyncHttpClient):
    """twilio's async HTTP client interface on a short-lived aiohttp session.

    twilio 9.x ships AsyncTwilioHttpClient, but it passes credentials as
    aiohttp's BasicAuth, which aiohttp 3.14 deprecates; this sends the
    Authorization header itself.
    """

    def __init__(self, timeout: float = API_TIMEOUT) -> None:
        super().__init__(logger=log, is_async=True, timeout=timeout)

    async def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        # The name and meaning are twilio's AsyncHttpClient interface.
        timeout: float | None = None,  # noqa: ASYNC109
        allow_redirects: bool = False,
    ) -> Response:
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = aiohttp.encode_basic_auth(auth[0], auth[1])
        limit = aiohttp.ClientTimeout(total=timeout or self.timeout)
        async with (
            aiohttp.ClientSession(timeout=limit) as session,
            session.request(
                method,
                uri,
                params=_pairs(params),
                data=_pairs(data),
                headers=sent,
                allow_redirects=allow_redirects,
            ) as response,
        ):
            text = await response.text()
            return Response(response.status, text, response.headers)


def _pairs(values: dict[str, object] | None) -> list[tuple[str, str]] | None:
    """Flatten twilio's parameters, where a list repeats its key."""
    if values is None:
        return None
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        items = value if isinstance(value, list) else [value]
        pairs.extend((key, str(item)) for item in items)
    return pairs


class TwilioCalls:
    """Starts click-to-call calls for one service."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def start(self, plan: ClickToCall) -> str:
        """Ask Twilio to ring the rep, then bridge the customer; return the CallSid.

        Twilio records the call from the rep's answer in two channels, the
        rep's leg (the parent) on channel 1.
        """
        client = self._client()
        try:
            call = await asyncio.wait_for(
                client.calls.create_async(**self._call_parameters(plan)),
                timeout=API_TIMEOUT,
            )
        except TwilioRestException as error:
            log.warning(
                "click-to-call for customer %s failed: Twilio %s code %s",
                plan.customer_id,
                error.status,
                error.code,
            )
            raise UpstreamFailed(
                f"Twilio rejected the call: {error.msg} (HTTP {error.status}, "
                f"code {error.code})"
            ) from None
        except (TimeoutError, aiohttp.ClientError) as error:
            log.warning(
                "click-to-call for customer %s failed: %r", plan.customer_id, error
            )
            raise UpstreamFailed(f"request to Twilio's API failed: {error!r}") from None
        log.info("click-to-call %s started for customer %s", call.sid, plan.customer_id)
        return str(call.sid)

    def _client(self) -> Client:
        settings = self.settings
        if not settings.twilio_account_sid:
            raise NotConfigured(
                "twilio_account_sid is not set, so no call can be placed",
                "twilio_account_sid",
            )
        client = Client(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            http_client=AiohttpTwilioClient(),
        )
        client.api.base_url = settings.twilio_api_url
        return client

    def _call_parameters(self, plan: ClickToCall) -> dict[str, Any]:
        public = self.settings.public_url
        bridge = f"{public}{BRIDGE_PATH}?{urlencode({'to': plan.customer_number})}"
        return {
            "to": plan.rep_party,
            "from_": plan.caller_id,
            "url": bridge,
            "method": "POST",
            "timeout": self.settings.ring_seconds,
            "status_callback": f"{public}{STATUS_PATH}",
            "status_callback_method": "POST",
            "status_callback_event": LEG_EVENTS.split(),
            "record": True,
            "recording_channels": "dual",
            "recording_status_callback": f"{public}{RECORDING_PATH}",
            "recording_status_callback_method": "POST",
            "recording_status_callback_event": RECORDING_EVENTS.split(),
        }
