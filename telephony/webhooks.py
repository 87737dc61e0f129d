"""Twilio webhook handlers: check the signature, parse, store through the writer.

Each handler responds only after its change is committed, so a 2xx means
the event is stored. A failure to store gets a 5xx so that Twilio may retry.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from capture import calls, messages, recordings
from capture.ledger import insert_rows_of, with_ledger
from capture.models import utcnow
from capture.settings import Settings
from capture.writer import BatchWriter, BulkApply
from telephony import forms, ledger
from telephony.mms import parse_media
from telephony.signature import SignatureChecker

log = logging.getLogger(__name__)

T = TypeVar("T")

# Twilio ends a call at a hard time limit (its errors 32015 and 64104).
# NOTE: the limit's exact value is not confirmed here; a day is a safe bound.
MAX_CALL_SECONDS = 86_400
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MESSAGE_STATUSES = tuple(messages.STATUS_RANK)


class TwilioWebhooks:
    """The `/twilio/...` endpoints of one application."""

    def __init__(
        self,
        settings: Settings,
        writer: BatchWriter,
        on_job_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.writer = writer
        self.on_job_queued = on_job_queued
        self.signatures = SignatureChecker(
            settings.public_url,
            settings.twilio_auth_token,
            dict(settings.twilio_shared_keys),
        )
        # One object for every request, so the writer groups them in a batch.
        self.apply_calls, self.apply_messages = _applies(settings.default_region)
        for apply in (
            self.apply_calls,
            recordings.apply_recording_statuses,
            self.apply_messages,
        ):
            writer.register(apply)
            writer.register(with_ledger(apply))
        writer.register(insert_rows_of)
        # Requests by path and outcome, for the metrics endpoint. Accepted
        # webhooks are counted rather than logged one line each, which cost
        # a tenth of a request's time at peak load.
        self.outcomes: Counter[tuple[str, str]] = Counter()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/twilio/voice/status", self.voice_status),
            web.post("/twilio/voice/recording", self.voice_recording),
            web.post("/twilio/sms", self.sms_inbound),
            web.post("/twilio/sms/status", self.sms_status),
        ]

    async def voice_status(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        form = await self._verified_form(request)
        event = self._parse(request, parse_call_status, form)
        result = await self._store(request, self.apply_calls, event)
        self._accepted(request, result.outcome, event.call_sid, started)
        return web.Response(status=204)

    async def voice_recording(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        form = await self._verified_form(request)
        event = self._parse(request, parse_recording_status, form)
        result = await self._store(request, recordings.apply_recording_statuses, event)
        if result.download_queued:
            self.on_job_queued()
        self._accepted(request, result.outcome, event.recording_sid, started)
        return web.Response(status=204)

    async def sms_inbound(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        form = await self._verified_form(request)
        event = self._parse(
            request,
            functools.partial(
                parse_message, status_field="SmsStatus", default_status="received"
            ),
            form,
        )
        result = await self._store(request, self.apply_messages, event, 200)
        if result.media_queued:
            self.on_job_queued()
        self._accepted(request, result.outcome, event.message_sid, started)
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    async def sms_status(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        form = await self._verified_form(request)
        rep_email = request.query.get("rep")
        event = self._parse(
            request,
            functools.partial(
                parse_message, status_field="MessageStatus", rep_email=rep_email
            ),
            form,
        )
        result = await self._store(request, self.apply_messages, event)
        self._accepted(request, result.outcome, event.message_sid, started)
        return web.Response(status=204)

    async def _verified_form(self, request: web.Request) -> Mapping[str, str]:
        try:
            if ledger.is_replay(request):
                form = await self.signatures.unverified_form(request)
            else:
                form = await self.signatures.verified_form(request)
        except web.HTTPException as error:
            self.outcomes[request.path, _rejection(error.status)] += 1
            raise
        ledger.mark_verified(request, form)
        return forms.fields(form)

    def _parse(
        self,
        request: web.Request,
        parse: Callable[[Mapping[str, str]], T],
        form: Mapping[str, str],
    ) -> T:
        try:
            return parse(form)
        except forms.InvalidInput:
            self.outcomes[request.path, "invalid"] += 1
            raise

    async def _store(
        self, request: web.Request, apply: BulkApply, payload: Any, status: int = 204
    ) -> Any:
        try:
            return await ledger.store_with_entry(
                request, self.writer, apply, payload, status
            )
        except Exception:
            self.outcomes[request.path, "failed"] += 1
            log.exception("webhook not stored")
            raise web.HTTPServiceUnavailable(
                text='{"error": "the event could not be stored; retry later"}',
                content_type="application/json",
            ) from None

    def _accepted(
        self, request: web.Request, outcome: str, sid: str, started: float
    ) -> None:
        self.outcomes[request.path, outcome] += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "webhook %s %s: sid=%s elapsed=%.1fms",
                request.path,
                outcome,
                sid,
                (time.perf_counter() - started) * 1000,
            )


@functools.cache
def _applies(region: str) -> tuple[BulkApply, BulkApply]:
    """Return the call and message applies of a region, the same objects for
    every application, so that `with_ledger` wraps each once."""
    return (
        functools.partial(calls.apply_call_statuses, default_region=region),
        functools.partial(messages.apply_message_statuses, default_region=region),
    )


def _rejection(status: int) -> str:
    return "forbidden" if status == 403 else "invalid"


def parse_call_status(form: Mapping[str, str]) -> calls.CallStatusEvent:
    status = forms.choice(form, "CallStatus", calls.CALL_STATUSES)
    return calls.CallStatusEvent(
        call_sid=_sid(form, "CallSid", "CA"),
        parent_call_sid=forms.sid(form, "ParentCallSid", "CA", needed=False),
        from_party=forms.party(form, "From"),
        to_party=forms.party(form, "To"),
        status=status,
        twilio_direction=forms.required(form, "Direction", 16),
        sequence_number=_sequence(form, status),
        occurred_at=forms.timestamp(form, "Timestamp"),
        call_duration=forms.integer(form, "CallDuration", maximum=MAX_CALL_SECONDS),
    )


# The order of a call's statuses, for a callback without SequenceNumber.
IMPLIED_SEQUENCE = {"queued": 0, "initiated": 1, "ringing": 2, "in-progress": 3}
FINAL_SEQUENCE = 4


def _sequence(form: Mapping[str, str], status: str) -> int:
    """Return the callback's SequenceNumber, or one implied by its status.

    Without SequenceNumber every callback of a call would share one number
    and count as a repeat of the first, so the later statuses would be lost.
    The implied number orders them as a call progresses; two final statuses
    share one, so only the first of them counts.
    """
    sequence = forms.integer(form, "SequenceNumber")
    if sequence is not None:
        return sequence
    return IMPLIED_SEQUENCE.get(status, FINAL_SEQUENCE)


def parse_recording_status(form: Mapping[str, str]) -> recordings.RecordingStatusEvent:
    status = forms.choice(form, "RecordingStatus", recordings.RECORDING_STATUSES)
    media_url = forms.optional(form, "RecordingUrl", 2000) or ""
    if status == "completed" and not media_url:
        raise forms.InvalidInput(
            "RecordingUrl is missing from a completed recording", field="RecordingUrl"
        )
    channels = forms.integer(form, "RecordingChannels", default=1, minimum=1) or 1
    if channels > 2:
        raise forms.InvalidInput(
            f"RecordingChannels {channels} is not 1 or 2", field="RecordingChannels"
        )
    return recordings.RecordingStatusEvent(
        recording_sid=_sid(form, "RecordingSid", "RE"),
        call_sid=_sid(form, "CallSid", "CA"),
        status=status,
        media_url=media_url,
        duration_seconds=forms.integer(
            form, "RecordingDuration", maximum=MAX_CALL_SECONDS
        ),
        channels=channels,
        source=forms.optional(form, "RecordingSource", 32) or "",
        started_at=forms.timestamp(form, "RecordingStartTime"),
    )


def parse_message(
    form: Mapping[str, str],
    *,
    status_field: str,
    default_status: str | None = None,
    rep_email: str | None = None,
) -> messages.MessageStatusEvent:
    if default_status is not None and not forms.single(form, status_field):
        status = default_status
    else:
        status = forms.choice(form, status_field, MESSAGE_STATUSES)
    num_media = forms.integer(form, "NumMedia", default=0) or 0
    return messages.MessageStatusEvent(
        message_sid=_message_sid(form),
        from_party=forms.party(form, "From"),
        to_party=forms.party(form, "To"),
        status=status,
        occurred_at=utcnow(),
        body=_body(form),
        num_segments=forms.integer(form, "NumSegments", minimum=1),
        num_media=num_media,
        messaging_service_sid=forms.sid(
            form, "MessagingServiceSid", "MG", needed=False
        ),
        rep_email=rep_email,
        media=parse_media(form, num_media) if default_status is not None else (),
    )


# Twilio's limit on a message body, in characters.
MAX_BODY = 1600


def _body(form: Mapping[str, str]) -> str | None:
    if "Body" not in form:
        return None
    body = forms.single(form, "Body")
    if len(body) > MAX_BODY:
        raise forms.InvalidInput(
            f"Body is longer than {MAX_BODY} characters", field="Body"
        )
    return body


def _message_sid(form: Mapping[str, str]) -> str:
    # MessageSid repeats in SmsSid and SmsMessageSid; MMS SIDs start with MM.
    name = "MessageSid" if forms.single(form, "MessageSid") else "SmsSid"
    prefix = "MM" if forms.single(form, name).strip().startswith("MM") else "SM"
    value = forms.sid(form, name, prefix)
    assert value is not None
    return value


def _sid(form: Mapping[str, str], name: str, prefix: str) -> str:
    value = forms.sid(form, name, prefix)
    assert value is not None
    return value
