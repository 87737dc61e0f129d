"""`POST /email/inbound/{provider}`: SendGrid, Mailgun, Postmark and raw MIME.

Each provider authenticates its own way: SendGrid and Postmark with HTTP
basic auth carrying `email_webhook_password` (both put credentials in the
webhook URL), Mailgun with an HMAC-SHA256 signature of its timestamp and
token (406 when it is wrong, so that Mailgun does not retry), and `mime`
with an API bearer token. A stored or duplicate email gets 200; a failure
to store gets 500, so that the provider retries.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from capture.accounts import user_for_token
from capture.email_intake import EmailIntake
from capture.email_providers import (
    mailgun_message,
    postmark_message,
    sendgrid_message,
)
from capture.emails import EmailResult
from capture.errors import InvalidInput, NotFound
from capture.settings import Settings
from web.email_bodies import BodyTooLarge, Form, read_body, read_form, read_json
from web.keys import DATABASE

log = logging.getLogger(__name__)

# Mailgun signs a timestamp; older signatures are rejected as replays.
MAILGUN_MAX_AGE_S = 15 * 60
MIME_TYPES = frozenset({"message/rfc822"})


def _json_error(status: int, message: str, field: str) -> web.Response:
    return web.json_response({"error": message, "field": field}, status=status)


class EmailWebhooks:
    def __init__(self, settings: Settings, intake: EmailIntake) -> None:
        self.settings = settings
        self.intake = intake
        self.providers: dict[
            str, Callable[[web.Request], Awaitable[web.StreamResponse]]
        ] = {
            "sendgrid": self.sendgrid,
            "mailgun": self.mailgun,
            "postmark": self.postmark,
            "mime": self.mime,
        }

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/email/inbound/{provider}", self.inbound)]

    async def inbound(self, request: web.Request) -> web.StreamResponse:
        provider = request.match_info["provider"]
        handler = self.providers.get(provider)
        if handler is None:
            raise NotFound(
                f"provider {provider[:40]!r} not found; use sendgrid, mailgun, "
                "postmark or mime",
                "provider",
            )
        try:
            return await handler(request)
        except BodyTooLarge as error:
            log.warning("inbound email rejected: provider=%s too large", provider)
            return _json_error(
                413, f"{error}; raise email_max_bytes to accept it", "body"
            )

    async def sendgrid(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_password(request, "sendgrid")
        if denied is not None:
            return denied
        form = await read_form(request, self.settings.email_max_bytes)
        if "email" in form.raw:
            result = await self.intake.capture_bytes(form.raw["email"], "sendgrid")
            return _stored(result, "sendgrid")
        form.charsets.update(_sendgrid_charsets(form))
        message = sendgrid_message(form.texts(), form.files)
        return _stored(
            await self.intake.capture_message(message, "sendgrid"), "sendgrid"
        )

    async def mailgun(self, request: web.Request) -> web.StreamResponse:
        key = self.settings.mailgun_signing_key
        if not key:
            return _json_error(
                403, "Mailgun inbound email is off: set mailgun_signing_key", "provider"
            )
        form = await read_form(request, self.settings.email_max_bytes)
        problem = mailgun_signature_problem(form, key, time.time())
        if problem is not None:
            log.warning("mailgun webhook rejected: %s", problem)
            return _json_error(406, problem, "signature")
        if "body-mime" in form.raw:
            result = await self.intake.capture_bytes(form.raw["body-mime"], "mailgun")
            return _stored(result, "mailgun")
        message = mailgun_message(form.texts(), form.files)
        return _stored(await self.intake.capture_message(message, "mailgun"), "mailgun")

    async def postmark(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_password(request, "postmark")
        if denied is not None:
            return denied
        payload = await read_json(request, self.settings.email_max_bytes)
        message = postmark_message(payload)
        return _stored(
            await self.intake.capture_message(message, "postmark"), "postmark"
        )

    async def mime(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or not token.isascii():
            return _unauthorised("missing or invalid bearer token", "Bearer")
        async with request.app[DATABASE].reads() as session:
            user = await user_for_token(session, token)
        if user is None:
            return _unauthorised("invalid or revoked token", "Bearer")
        if request.content_type not in MIME_TYPES:
            raise InvalidInput(
                f"content type {request.content_type!r} is not message/rfc822",
                "Content-Type",
            )
        raw = await read_body(request, self.settings.email_max_bytes)
        return _stored(await self.intake.capture_bytes(raw, "mime"), "mime")

    def _check_password(
        self, request: web.Request, provider: str
    ) -> web.Response | None:
        expected = self.settings.email_webhook_password
        if not expected:
            return _json_error(
                403,
                f"{provider} inbound email is off: set email_webhook_password",
                "provider",
            )
        given = _basic_password(request.headers.get("Authorization", ""))
        if given is None or not hmac.compare_digest(
            given.encode("utf-8"), expected.encode("utf-8")
        ):
            log.warning("inbound email rejected: provider=%s bad credentials", provider)
            return _unauthorised("missing or wrong basic auth password", "Basic")
        return None


def _basic_password(header: str) -> str | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, separator, password = decoded.partition(":")
    return password if separator else None


def _unauthorised(message: str, scheme: str) -> web.Response:
    response = _json_error(401, message, "Authorization")
    response.headers["WWW-Authenticate"] = f'{scheme} realm="touchline-email"'
    return response


def _sendgrid_charsets(form: Form) -> dict[str, str]:
    """Return SendGrid's `charsets` field: the charset of each text field."""
    if "charsets" not in form.raw:
        return {}
    try:
        charsets = json.loads(form.raw["charsets"])
    except ValueError as error:
        raise InvalidInput("charsets is not valid JSON", "charsets") from error
    if not isinstance(charsets, dict):
        raise InvalidInput("charsets is not a JSON object", "charsets")
    return {str(k): str(v) for k, v in charsets.items() if isinstance(v, str)}


def mailgun_signature_problem(form: Form, key: str, now: float) -> str | None:
    """Return why a Mailgun signature is invalid, or None when it is valid."""
    timestamp, token = form.text("timestamp"), form.text("token")
    signature = form.text("signature")
    if not timestamp or not token or not signature:
        return "timestamp, token or signature is missing"
    if not timestamp.isdigit() or abs(now - int(timestamp)) > MAILGUN_MAX_AGE_S:
        return "timestamp is not within 15 minutes of now"
    expected = hmac.new(
        key.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        return "signature does not match"
    return None


def _stored(result: EmailResult, provider: str) -> web.Response:
    log.info(
        "inbound email: provider=%s email=%s activity=%s outcome=%s",
        provider,
        result.email_id,
        result.activity_id,
        result.outcome,
    )
    return web.json_response(
        {
            "status": str(result.outcome),
            "email_id": result.email_id,
            "activity_id": result.activity_id,
            "customer_id": result.customer_id,
            "automatic": result.automatic,
        }
    )
