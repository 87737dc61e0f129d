"""Voice webhooks that return TwiML: inbound routing and the click-to-call bridge.

An inbound call runs through stages, one TwiML document each: every rep of
the route in turn, then the fallback number if one is set, then voicemail.
Each `<Dial>` names the next stage in its action URL, and Twilio requests
that URL with `DialCallStatus` when the dialled party did not answer. The
stage is in the signed URL, so the route is planned again from the caller
at each stage and no routing state is stored.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

from capture.call_state import FINAL_STATUSES
from capture.db import Database
from capture.errors import InvalidInput
from capture.identity import normalize_phone
from capture.models import utcnow
from capture.routing import InboundRoute, MissedCall, plan_inbound, record_missed_call
from capture.settings import Settings
from capture.writer import BatchWriter
from telephony import forms
from telephony.signature import SignatureChecker
from telephony.twiml import BRIDGE_PATH, DONE_PATH, NEXT_PATH, Twiml

log = logging.getLogger(__name__)

INBOUND_PATH = "/twilio/voice/inbound"
# DialCallStatus values of a dialled party who picked up.
ANSWERED = frozenset({"completed", "answered", "in-progress"})
MAX_STAGE = 100

# A handler's TwiML document and its outcome for the metrics endpoint.
Answer = tuple[str, str]
Handler = Callable[[web.Request], Awaitable[Answer]]


@dataclass(frozen=True)
class InboundCall:
    call_sid: str
    from_party: str
    to_party: str


class VoiceRouting:
    """The TwiML endpoints of one application."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        writer: BatchWriter,
        outcomes: Counter[tuple[str, str]] | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.writer = writer
        # Requests by path and outcome, for the metrics endpoint: the kind of
        # TwiML returned, or why the request was rejected.
        self.outcomes: Counter[tuple[str, str]] = (
            Counter() if outcomes is None else outcomes
        )
        self.twiml = Twiml(settings)
        self.signatures = SignatureChecker(
            settings.public_url,
            settings.twilio_auth_token,
            dict(settings.twilio_shared_keys),
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(INBOUND_PATH, self._counted(self.inbound)),
            web.post(NEXT_PATH, self._counted(self.inbound_next)),
            web.post(DONE_PATH, self._counted(self.inbound_done)),
            web.post(BRIDGE_PATH, self._counted(self.bridge)),
        ]

    def _counted(
        self, handler: Handler
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        """Wrap a TwiML handler so that each request counts by path and outcome."""

        async def counted(request: web.Request) -> web.Response:
            try:
                document, outcome = await handler(request)
            except web.HTTPException as error:
                self.outcomes[request.path, _rejection(error.status)] += 1
                raise
            except InvalidInput:
                self.outcomes[request.path, "invalid"] += 1
                raise
            except Exception:
                self.outcomes[request.path, "failed"] += 1
                raise
            self.outcomes[request.path, outcome] += 1
            return web.Response(text=document, content_type="text/xml")

        return counted

    async def inbound(self, request: web.Request) -> Answer:
        form = await self._verified_form(request)
        call = _inbound_call(form)
        route = await self._route(call)
        log.info(
            "inbound call %s: customer=%s owner=%s reps=%d",
            call.call_sid,
            route.customer_id,
            route.owner_id,
            len(route.targets),
        )
        return await self._stage(call, route, 0, disclose=True)

    async def inbound_next(self, request: web.Request) -> Answer:
        form = await self._verified_form(request)
        call = _inbound_call(form)
        stage = _stage_of(request)
        dial_status = forms.optional(form, "DialCallStatus", 32) or ""
        if dial_status in ANSWERED:
            return self.twiml.hangup(), "hangup"
        route = await self._route(call)
        if forms.single(form, "CallStatus") in FINAL_STATUSES:
            # The caller hung up while a rep's phone rang.
            await self._missed(call, route)
            return self.twiml.hangup(), "missed"
        log.info(
            "inbound call %s: stage %d unanswered (%s)",
            call.call_sid,
            stage,
            dial_status,
        )
        return await self._stage(call, route, stage, disclose=False)

    async def inbound_done(self, request: web.Request) -> Answer:
        await self._verified_form(request)
        return self.twiml.hangup(), "hangup"

    async def bridge(self, request: web.Request) -> Answer:
        """Return the TwiML that connects a click-to-call rep to the customer."""
        form = await self._verified_form(request)
        customer = normalize_phone(
            request.query.get("to", ""), self.settings.default_region
        )
        if customer is None:
            raise forms.InvalidInput("to is not a phone number", field="to")
        caller_id = forms.party(form, "From")
        return self.twiml.bridge(customer, caller_id), "bridge"

    async def _stage(
        self, call: InboundCall, route: InboundRoute, stage: int, *, disclose: bool
    ) -> Answer:
        targets = route.targets
        if stage < len(targets):
            return self.twiml.ring(targets[stage], stage + 1, disclose=disclose), "ring"
        # Every rep was tried, or there was none: no rep answers this call.
        await self._missed(call, route)
        fallback = self.settings.inbound_fallback_number
        if fallback and stage == len(targets):
            document = self.twiml.fallback(fallback, stage + 1, disclose=disclose)
            return document, "fallback"
        return self.twiml.voicemail(disclose=disclose), "voicemail"

    async def _route(self, call: InboundCall) -> InboundRoute:
        async with self.database.reads() as session:
            return await plan_inbound(
                session,
                call.from_party,
                self.settings.default_region,
                self.settings.inbound_team,
            )

    async def _missed(self, call: InboundCall, route: InboundRoute) -> None:
        missed = MissedCall(
            call_sid=call.call_sid,
            from_party=call.from_party,
            to_party=call.to_party,
            occurred_at=utcnow(),
            owner_id=route.owner_id,
        )
        change = functools.partial(
            record_missed_call,
            missed=missed,
            default_region=self.settings.default_region,
        )
        try:
            await self.writer.run(change, lock_key=f"call:{call.call_sid}")
        except Exception:
            log.exception("missed call %s not stored", call.call_sid)
            raise web.HTTPServiceUnavailable(
                text='{"error": "the missed call could not be stored; retry later"}',
                content_type="application/json",
            ) from None
        log.info("inbound call %s missed", call.call_sid)

    async def _verified_form(self, request: web.Request) -> Mapping[str, str]:
        return forms.fields(await self.signatures.verified_form(request))


def _rejection(status: int) -> str:
    if status == 403:
        return "forbidden"
    return "failed" if status >= 500 else "invalid"


def _inbound_call(form: Mapping[str, str]) -> InboundCall:
    call_sid = forms.sid(form, "CallSid", "CA")
    assert call_sid is not None
    return InboundCall(call_sid, forms.party(form, "From"), forms.party(form, "To"))


def _stage_of(request: web.Request) -> int:
    text = request.query.get("stage", "")
    if not text.isdigit() or int(text) > MAX_STAGE:
        raise forms.InvalidInput(
            f"stage {text!r} is not a number from 0 to {MAX_STAGE}", field="stage"
        )
    return int(text)
