"""Signed, rate-limited webhook posts, their retry and their error records."""

import asyncio
import logging
from dataclasses import dataclass

import aiohttp
from twilio.request_validator import RequestValidator
from yarl import URL

from telephony.simulate.options import SimulationOptions

logger = logging.getLogger(__name__)

USER_AGENT = "TwilioProxy/1.1"
RETRY_DELAY_S = 0.5


@dataclass(frozen=True)
class WebhookError:
    path: str
    sid: str
    event: str
    status: int | None  # None when no HTTP response arrived
    body_start: str
    attempt: int


class RateLimiter:
    """Space requests at least 1/rate seconds apart, or not at all for rate 0."""

    def __init__(self, rate: float) -> None:
        self._interval_s = 1 / rate if rate > 0 else 0.0
        self._next_slot = 0.0

    async def wait(self) -> None:
        if not self._interval_s:
            return
        now = asyncio.get_running_loop().time()
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval_s
        if slot > now:
            await asyncio.sleep(slot - now)


class WebhookSender:
    """Send signed form posts as Twilio does and record every non-2xx response."""

    def __init__(
        self, session: aiohttp.ClientSession, options: SimulationOptions
    ) -> None:
        self._session = session
        self._base_url = options.url.rstrip("/")
        self._validator = RequestValidator(options.auth_token)
        self._limiter = RateLimiter(options.rate)
        self.errors: list[WebhookError] = []
        self.requests_sent = 0

    async def send(
        self, path: str, params: dict[str, str], token: str, sid: str, event: str
    ) -> bool:
        """POST params to base URL + path and return whether a 2xx came back.

        A 5xx response or a connection failure is retried once with the same
        signature and idempotency token.
        """
        accepted, _ = await self.exchange(path, params, token, sid, event)
        return accepted

    async def exchange(
        self, path: str, params: dict[str, str], token: str, sid: str, event: str
    ) -> tuple[bool, str]:
        """Send as `send` does; return whether a 2xx came back, and the body."""
        url = self._base_url + path
        headers = {
            "X-Twilio-Signature": self._validator.compute_signature(url, params),
            "I-Twilio-Idempotency-Token": token,
            "User-Agent": USER_AGENT,
        }
        for attempt in (1, 2):
            status, body = await self._post(url, params, headers)
            if status is not None and 200 <= status < 300:
                return True, body
            self._record_error(path, sid, event, status, body, attempt)
            if status is not None and status < 500:
                return False, body
            if attempt == 1:
                logger.warning("retrying %s %s for %s", path, event, sid)
                await asyncio.sleep(RETRY_DELAY_S)
        return False, body

    async def _post(
        self, url: str, params: dict[str, str], headers: dict[str, str]
    ) -> tuple[int | None, str]:
        await self._limiter.wait()
        self.requests_sent += 1
        # encoded=True sends the URL byte for byte as signed. Without it yarl
        # would decode %40 in the query to @ and the signature would not match.
        target = URL(url, encoded=True)
        try:
            async with self._session.post(
                target, data=params, headers=headers
            ) as response:
                return response.status, await response.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            return None, f"{type(exc).__name__}: {exc}"

    def _record_error(
        self,
        path: str,
        sid: str,
        event: str,
        status: int | None,
        body: str,
        attempt: int,
    ) -> None:
        error = WebhookError(path, sid, event, status, body[:200], attempt)
        self.errors.append(error)
        logger.error(
            "webhook %s %s for %s failed (attempt %d): status %s, body %r",
            path,
            event,
            sid,
            attempt,
            status,
            error.body_start[:80],
        )
