"""The media server: recording WAVs and MMS media at Twilio-style media URLs."""

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging
from collections import Counter
from pathlib import Path

from aiohttp import web

from telephony.simulate.options import SimulationOptions
from telephony.simulate.params import API_VERSION

logger = logging.getLogger(__name__)


class RecordingServer:
    """Serve recordings like Twilio's media URLs, behind HTTP basic auth.

    GET /2010-04-01/Accounts/{AccountSid}/Recordings/{RecordingSid}[.wav]
    returns the WAV to a client that sends (AccountSid, auth token). It returns
    401 without valid credentials, and 404 for unknown sids or for the first
    `not_ready_requests` requests of each recording.

    GET /2010-04-01/Accounts/{AccountSid}/Messages/{MessageSid}/Media/{MediaSid}
    returns an MMS attachment with its content type, behind the same auth.
    """

    def __init__(self, options: SimulationOptions) -> None:
        self._options = options
        self._recordings: dict[str, Path] = {}
        self._media: dict[str, tuple[str, bytes]] = {}
        self._requests: Counter[str] = Counter()
        self.fetched: set[str] = set()
        self.stats: Counter[str] = Counter()
        self._awaited: set[str] = set()
        self._fetch_event = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    def add(self, recording_sid: str, path: Path) -> None:
        self._recordings[recording_sid] = path

    def add_media(self, media_sid: str, content_type: str, body: bytes) -> None:
        self._media[media_sid] = (content_type, body)

    def expect_fetch(self, recording_sid: str) -> None:
        """Make wait_until_fetched wait for this recording or media SID."""
        self._awaited.add(recording_sid)

    @property
    def media_not_fetched(self) -> list[str]:
        return sorted(set(self._media) - self.fetched)

    def message_media_url(self, message_sid: str, media_sid: str) -> str:
        return (
            f"http://{self._options.media_host}:{self._port}/{API_VERSION}"
            f"/Accounts/{self._options.account_sid}/Messages/{message_sid}"
            f"/Media/{media_sid}"
        )

    @property
    def not_fetched(self) -> list[str]:
        return sorted(set(self._recordings) - self.fetched)

    def media_url(self, recording_sid: str) -> str:
        return (
            f"http://{self._options.media_host}:{self._port}/{API_VERSION}"
            f"/Accounts/{self._options.account_sid}/Recordings/{recording_sid}"
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(
            f"/{API_VERSION}/Accounts/{{account_sid}}/Recordings/{{name}}",
            self._handle,
        )
        app.router.add_get(
            f"/{API_VERSION}/Accounts/{{account_sid}}/Messages/{{message_sid}}"
            "/Media/{media_sid}",
            self._handle_media,
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, self._options.media_bind_host, self._options.media_port
        )
        await site.start()
        self._port = self._runner.addresses[0][1]
        logger.info("media server listening on port %d", self._port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            logger.info("media server stopped")

    async def wait_until_fetched(self, timeout_s: float) -> None:
        """Wait until every expected recording was fetched or timeout_s passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self._awaited - self.fetched:
                    self._fetch_event.clear()
                    await self._fetch_event.wait()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            self.stats["unauthorized"] += 1
            return twilio_error(401, 20003, "Authenticate")

        sid, _, extension = request.match_info["name"].partition(".")
        path = self._recordings.get(sid)
        account_sid = request.match_info["account_sid"]
        if path is None or extension not in ("", "wav"):
            self.stats["not_found"] += 1
            return twilio_error(404, 20404, "The requested resource was not found")
        if account_sid != self._options.account_sid:
            self.stats["not_found"] += 1
            return twilio_error(404, 20404, "The requested resource was not found")

        self._requests[sid] += 1
        if self._requests[sid] <= self._options.not_ready_requests:
            self.stats["not_ready"] += 1
            return twilio_error(404, 20404, "The requested resource was not found")

        self.stats["ok"] += 1
        body = await asyncio.to_thread(path.read_bytes)
        response = web.StreamResponse(headers={"Content-Type": "audio/x-wav"})
        response.content_length = len(body)
        await response.prepare(request)
        if request.method == "GET":
            await response.write(body)
        await response.write_eof()
        # Count a fetch only once the whole file went out, because the server
        # stops soon after the last fetch.
        if request.method == "GET":
            self._mark_fetched(sid)
        return response

    async def _handle_media(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            self.stats["unauthorized"] += 1
            return twilio_error(401, 20003, "Authenticate")
        media_sid = request.match_info["media_sid"]
        found = self._media.get(media_sid)
        if (
            found is None
            or request.match_info["account_sid"] != self._options.account_sid
        ):
            self.stats["not_found"] += 1
            return twilio_error(404, 20404, "The requested resource was not found")
        self.stats["media_ok"] += 1
        content_type, body = found
        response = web.Response(body=body, content_type=content_type)
        self._mark_fetched(media_sid)
        return response

    def _authorized(self, request: web.Request) -> bool:
        return authorized(request, self._options)

    def _mark_fetched(self, sid: str) -> None:
        self.fetched.add(sid)
        self._fetch_event.set()


def authorized(request: web.Request, options: SimulationOptions) -> bool:
    """Check HTTP basic auth for (AccountSid, auth token), as Twilio's API does."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        credentials = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return False
    expected = f"{options.account_sid}:{options.auth_token}"
    return hmac.compare_digest(credentials, expected.encode())


def twilio_error(status: int, code: int | None, message: str) -> web.Response:
    """Return an error body shaped like Twilio's API errors."""
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else {}
    body = {"code": code, "message": message, "more_info": "", "status": status}
    return web.json_response(body, status=status, headers=headers)
