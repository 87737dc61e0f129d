"""`touchline simulate`: act as Twilio against a running Touchline server.

The simulator sends signed webhooks shaped like Twilio's and serves the call
recordings from its own media server, as Twilio would:

- `POST {url}/twilio/voice/status`: call status callbacks. An inbound call is the
  child leg of a `<Dial>` from the company number: `Direction=outbound-dial`,
  `ParentCallSid` set, `From` the customer and `To` the rep's phone. An outbound
  call is `Direction=outbound-api` with `From` the rep's phone and `To` the
  customer.
- `POST {url}/twilio/voice/recording`: recording status callbacks, `CallSid` is the
  parent leg for inbound calls and the call itself for outbound calls.
- `POST {url}/twilio/sms`: inbound messages from customers to the company number.
- `POST {url}/twilio/sms/status?rep=<email>`: outbound message status callbacks.
  The query string names the sending rep and is part of the signed URL.

The seed fixes the scenario: who calls whom, outcomes, spoken sentences and
delivery order. Sids and idempotency tokens are new on every run, so repeated
runs against one server add new activity.
"""

import argparse
import asyncio
import base64
import binascii
import contextlib
import email.utils
import hmac
import json
import logging
import math
import os
import random
import secrets
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator
from yarl import URL

from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from telephony.speech import (
    CUSTOMER_CHANNEL,
    REP_CHANNEL,
    Conversation,
    SpeechSynthesizer,
    check_speech_tools,
    plan_conversation,
)

logger = logging.getLogger(__name__)

VOICE_STATUS_PATH = "/twilio/voice/status"
RECORDING_STATUS_PATH = "/twilio/voice/recording"
SMS_PATH = "/twilio/sms"
SMS_STATUS_PATH = "/twilio/sms/status"

API_VERSION = "2010-04-01"
USER_AGENT = "TwilioProxy/1.1"
WITHHELD_NUMBER = "+266696687"  # how Twilio presents an anonymous caller
DEFAULT_ACCOUNT_SID = "AC" + "5e1f" * 8  # fixed fake, never a real account
AUTH_TOKEN_ENV = "TOUCHLINE_TWILIO_AUTH_TOKEN"

UNANSWERED_FRACTION = 0.3
OUT_OF_ORDER_FRACTION = 0.25
REPEATED_FRACTION = 0.25
MESSAGING_SERVICE_FRACTION = 1 / 3
RETRY_DELAY_S = 0.5
REQUEST_TIMEOUT_S = 30.0
# Twilio error codes on an absent recording: 16102 means the audio was silent.
ABSENT_RECORDING_ERROR_CODE = "16102"

INBOUND_SMS_BODIES = (
    "Thanks for the call 👍 Send the contract over when it's ready.",
    "请把新的报价单发给我们，谢谢。",
    "Can we move the demo to Thursday at 3pm?",
    "Got the invoice, finance will pay it this week.",
    "Is the renewal price locked for 12 months?",
    "Running late, call you back in 10 min",
)

DEFAULT_REPS = tuple((rep.email, rep.phone) for rep in REPS)
DEFAULT_CUSTOMERS = tuple(customer.phone for customer in CUSTOMERS)


@dataclass(frozen=True)
class SimulationOptions:
    url: str  # base URL of the Touchline server, webhooks go to url + path
    auth_token: str
    work_dir: Path  # where recording WAVs are written
    account_sid: str = DEFAULT_ACCOUNT_SID
    calls: int = 20
    sms: int = 10
    rate: float = 5.0  # maximum webhook requests per second, 0 = no limit
    seed: int = 1
    reps: tuple[tuple[str, str], ...] = DEFAULT_REPS  # (email, phone)
    customers: tuple[str, ...] = DEFAULT_CUSTOMERS  # phones
    company_number: str = ORGANISATION_NUMBER
    unknown_callers: int = 0  # calls from numbers that no customer owns
    withheld_callers: int = 0  # calls from WITHHELD_NUMBER
    media_host: str = "127.0.0.1"  # host name put in RecordingUrl
    media_bind_host: str = "127.0.0.1"  # interface the media server listens on
    media_port: int = 0  # 0 = any free port
    fetch_timeout_s: float = 60.0  # wait this long for the server to fetch media
    not_ready_requests: int = 0  # return 404 to the first N requests per recording
    absent_every: int = 6  # every Nth answered call gets an absent recording, 0 = none
    concurrency: int = 8  # calls and messages in flight, and HTTP connections
    history_hours: float = 4.0  # calls start within this many hours before now


@dataclass
class CallPlan:
    caller_kind: str  # customer, unknown or withheld
    direction: str  # inbound or outbound
    rep_email: str
    rep_phone: str
    customer_phone: str
    call_sid: str  # the sid the server stores: the child leg for inbound calls
    parent_call_sid: str | None
    final_status: str  # completed, no-answer or busy
    ring_seconds: int
    started_at: datetime
    delivery_order: tuple[int, ...]  # event indices as sent, a repeat is a retry
    recording_status: str | None  # completed, absent or None
    recording_sid: str | None
    conversation: Conversation | None
    talk_seconds: int = 0

    @property
    def answered(self) -> bool:
        return self.final_status == "completed"

    @property
    def recording_call_sid(self) -> str:
        return self.parent_call_sid or self.call_sid


@dataclass(frozen=True)
class CallEvent:
    status: str
    sequence_number: int
    at: datetime


@dataclass(frozen=True)
class MessagePlan:
    direction: str  # inbound or outbound
    message_sid: str
    rep_email: str
    customer_phone: str
    body: str | None  # None for outbound, because status callbacks carry no body
    messaging_service_sid: str | None
    delivery_order: tuple[int, ...]  # indices into OUTBOUND_SMS_STATUSES


OUTBOUND_SMS_STATUSES = ("queued", "sent", "delivered")


@dataclass(frozen=True)
class WebhookError:
    path: str
    sid: str
    event: str
    status: int | None  # None when no HTTP response arrived
    body_start: str
    attempt: int


@dataclass
class RepSummary:
    calls: int = 0
    answered_calls: int = 0
    talk_seconds: int = 0
    sms: int = 0


@dataclass(frozen=True)
class CallRecord:
    call_sid: str
    parent_call_sid: str | None
    rep_email: str
    customer_phone: str
    caller_kind: str
    direction: str
    twilio_direction: str
    final_status: str
    answered: bool
    talk_seconds: int
    recording_sid: str | None
    recording_status: str | None
    sentences: dict[str, list[str]]
    statuses_sent: list[str]


@dataclass(frozen=True)
class MessageRecord:
    message_sid: str
    direction: str
    rep_email: str
    customer_phone: str
    body: str | None
    statuses_sent: list[str]


@dataclass
class SimulationReport:
    url: str
    seed: int
    calls_sent: int
    sms_sent: int
    webhooks_sent: int
    elapsed_s: float
    per_rep: dict[str, RepSummary]
    calls: list[CallRecord]
    messages: list[MessageRecord]
    errors: list[WebhookError]
    recordings_fetched: list[str]
    recordings_not_fetched: list[str]
    media_requests: dict[str, int]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)


# Planning ------------------------------------------------------------------


def validate_options(options: SimulationOptions) -> None:
    """Raise ValueError naming the first invalid option."""
    if not options.url.startswith(("http://", "https://")):
        raise ValueError(f"invalid url {options.url!r}: expected http:// or https://")
    if not options.auth_token:
        raise ValueError("missing auth token")
    non_negative = (
        "calls",
        "sms",
        "unknown_callers",
        "withheld_callers",
        "rate",
        "fetch_timeout_s",
        "not_ready_requests",
        "absent_every",
    )
    for name in non_negative:
        if getattr(options, name) < 0:
            raise ValueError(f"invalid {name} {getattr(options, name)}: must be >= 0")
    if options.unknown_callers + options.withheld_callers > options.calls:
        raise ValueError(
            "unknown_callers + withheld_callers must not exceed calls "
            f"({options.unknown_callers} + {options.withheld_callers} > "
            f"{options.calls})"
        )
    if options.history_hours <= 0:
        raise ValueError(f"invalid history_hours {options.history_hours}: must be > 0")
    if options.concurrency < 1:
        raise ValueError(f"invalid concurrency {options.concurrency}: must be >= 1")
    if not options.reps:
        raise ValueError("no reps: pass at least one (email, phone) pair")
    if not options.customers and (options.sms or _customer_call_count(options)):
        raise ValueError("no customers: pass at least one customer phone")


def _customer_call_count(options: SimulationOptions) -> int:
    return options.calls - options.unknown_callers - options.withheld_callers


def customer_owners(options: SimulationOptions) -> dict[str, tuple[str, str]]:
    """Map each customer phone to its owning rep's (email, phone).

    A customer known to the demo data goes to its `owner_email` when that rep is
    in `options.reps`. Any other customer goes to the reps in turn.
    """
    rep_by_email = dict(options.reps)
    demo_owner = {customer.phone: customer.owner_email for customer in CUSTOMERS}
    owners = {}
    for index, phone in enumerate(options.customers):
        email = demo_owner.get(phone)
        if email not in rep_by_email:
            email = options.reps[index % len(options.reps)][0]
        owners[phone] = (email, rep_by_email[email])
    return owners


def plan_calls(options: SimulationOptions, rng: random.Random) -> list[CallPlan]:
    """Plan every call: caller, rep, outcome, delivery order and recording.

    About 30% go unanswered. About a quarter, and at least one, arrive with two
    events swapped, and as many repeat one event. Talk seconds of calls with a
    completed recording stay 0 until the audio is synthesised.
    """
    count = options.calls
    kinds = ["withheld"] * options.withheld_callers + ["unknown"] * (
        options.unknown_callers
    )
    kinds += ["customer"] * (count - len(kinds))
    rng.shuffle(kinds)
    unanswered = _sample(rng, count, round(count * UNANSWERED_FRACTION))
    shuffled = _sample(rng, count, _at_least_one(count, OUT_OF_ORDER_FRACTION))
    repeated = _sample(rng, count, _at_least_one(count, REPEATED_FRACTION))
    owners = customer_owners(options)

    plans = []
    for index, kind in enumerate(kinds):
        plan = _plan_call(options, rng, owners, kind, index not in unanswered)
        plan.delivery_order = _delivery_order(
            rng, 4 if plan.answered else 3, index in shuffled, index in repeated
        )
        plans.append(plan)
    _assign_recordings(options, rng, plans)
    return plans


def _plan_call(
    options: SimulationOptions,
    rng: random.Random,
    owners: dict[str, tuple[str, str]],
    kind: str,
    answered: bool,
) -> CallPlan:
    if kind == "customer":
        customer_phone = rng.choice(options.customers)
        rep_email, rep_phone = owners[customer_phone]
        direction = rng.choice(("inbound", "outbound"))
    else:
        # Strangers only ever call in; the company number forwards to any rep.
        customer_phone = (
            WITHHELD_NUMBER if kind == "withheld" else _unknown_number(rng, options)
        )
        rep_email, rep_phone = rng.choice(options.reps)
        direction = "inbound"

    final_status = "completed" if answered else rng.choice(("no-answer", "busy"))
    ring_seconds = rng.randint(3, 12) if answered else rng.randint(2, 30)
    age_s = rng.uniform(600, options.history_hours * 3600)
    inbound = direction == "inbound"
    return CallPlan(
        caller_kind=kind,
        direction=direction,
        rep_email=rep_email,
        rep_phone=rep_phone,
        customer_phone=customer_phone,
        call_sid=_new_sid("CA"),
        parent_call_sid=_new_sid("CA") if inbound else None,
        final_status=final_status,
        ring_seconds=ring_seconds,
        started_at=datetime.now(UTC) - timedelta(seconds=age_s),
        delivery_order=(),
        recording_status=None,
        recording_sid=None,
        conversation=None,
    )


def _assign_recordings(
    options: SimulationOptions, rng: random.Random, plans: list[CallPlan]
) -> None:
    answered = [plan for plan in plans if plan.answered]
    absent_count = len(answered) // options.absent_every if options.absent_every else 0
    absent = _sample(rng, len(answered), absent_count)
    for index, plan in enumerate(answered):
        plan.recording_sid = _new_sid("RE")
        if index in absent:
            plan.recording_status = "absent"
            plan.talk_seconds = rng.randint(4, 40)
        else:
            plan.recording_status = "completed"
            plan.conversation = plan_conversation(rng)


def plan_messages(options: SimulationOptions, rng: random.Random) -> list[MessagePlan]:
    """Plan inbound and outbound messages, half each (inbound gets the odd one).

    The first two inbound bodies are the emoji and the Chinese message.
    """
    count = options.sms
    inbound_count = (count + 1) // 2
    outbound_count = count - inbound_count
    directions = ["inbound"] * inbound_count + ["outbound"] * outbound_count
    rng.shuffle(directions)
    bodies = list(INBOUND_SMS_BODIES[:2])
    bodies += [rng.choice(INBOUND_SMS_BODIES) for _ in range(inbound_count)]
    orders = _outbound_sms_orders(rng, outbound_count)
    owners = customer_owners(options)
    service_sid = "MG" + rng.randbytes(16).hex()

    plans = []
    for direction in directions:
        customer_phone = rng.choice(options.customers)
        use_service = rng.random() < MESSAGING_SERVICE_FRACTION
        inbound = direction == "inbound"
        plans.append(
            MessagePlan(
                direction=direction,
                message_sid=_new_sid("SM"),
                rep_email=owners[customer_phone][0],
                customer_phone=customer_phone,
                body=bodies.pop(0) if inbound else None,
                messaging_service_sid=service_sid if use_service else None,
                delivery_order=() if inbound else orders.pop(),
            )
        )
    return plans


def _outbound_sms_orders(rng: random.Random, count: int) -> list[tuple[int, ...]]:
    shuffled = _sample(rng, count, _at_least_one(count, OUT_OF_ORDER_FRACTION))
    repeated = _sample(rng, count, _at_least_one(count, REPEATED_FRACTION))
    statuses = len(OUTBOUND_SMS_STATUSES)
    return [
        _delivery_order(rng, statuses, index in shuffled, index in repeated)
        for index in range(count)
    ]


def _delivery_order(
    rng: random.Random, count: int, shuffle: bool, repeat: bool
) -> tuple[int, ...]:
    """Return event indices in sending order, with one pair swapped and one
    event sent twice when asked."""
    order = list(range(count))
    if shuffle:
        position = rng.randrange(count - 1)
        order[position], order[position + 1] = order[position + 1], order[position]
    if repeat:
        position = rng.randrange(count)
        order.insert(position + 1, order[position])
    return tuple(order)


def _sample(rng: random.Random, population: int, count: int) -> set[int]:
    return set(rng.sample(range(population), min(count, population)))


def _at_least_one(population: int, fraction: float) -> int:
    return max(1, round(population * fraction)) if population else 0


def _unknown_number(rng: random.Random, options: SimulationOptions) -> str:
    known = {options.company_number, *options.customers}
    known.update(phone for _, phone in options.reps)
    while True:
        # 555-0100..0199 is reserved for fiction in every North American area code.
        area = rng.choice(("212", "312", "646", "718"))
        number = f"+1{area}55501{rng.randrange(100):02d}"
        if number not in known:
            return number


def _new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


# Webhook parameters ----------------------------------------------------------


def call_events(plan: CallPlan) -> list[CallEvent]:
    """Return the call's status events in Twilio's SequenceNumber order."""
    ringing_at = plan.started_at + timedelta(seconds=1)
    ended_at = ringing_at + timedelta(seconds=plan.ring_seconds)
    events = [
        CallEvent("initiated", 0, plan.started_at),
        CallEvent("ringing", 1, ringing_at),
    ]
    if plan.answered:
        events.append(CallEvent("in-progress", 2, ended_at))
        talk = timedelta(seconds=plan.talk_seconds)
        events.append(CallEvent("completed", 3, ended_at + talk))
    else:
        events.append(CallEvent(plan.final_status, 2, ended_at))
    return events


def call_status_params(
    options: SimulationOptions, plan: CallPlan, event: CallEvent
) -> dict[str, str]:
    inbound = plan.direction == "inbound"
    caller = plan.customer_phone if inbound else plan.rep_phone
    called = plan.rep_phone if inbound else plan.customer_phone
    params = {
        "AccountSid": options.account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": plan.call_sid,
        "CallStatus": event.status,
        "Direction": "outbound-dial" if inbound else "outbound-api",
        "From": caller,
        "To": called,
        "Caller": caller,
        "Called": called,
        "CallbackSource": "call-progress-events",
        "SequenceNumber": str(event.sequence_number),
        "Timestamp": _rfc2822(event.at),
        **_country_params(("From", "Caller"), caller),
        **_country_params(("To", "Called"), called),
    }
    if plan.parent_call_sid:
        params["ParentCallSid"] = plan.parent_call_sid
    if event.status in ("completed", "no-answer", "busy"):
        talk = plan.talk_seconds if event.status == "completed" else 0
        params["CallDuration"] = str(talk)
        params["Duration"] = str(math.ceil(talk / 60))  # billed minutes
        params["SipResponseCode"] = {"completed": "200", "busy": "486"}.get(
            event.status, "487"
        )
    return params


def recording_params(
    options: SimulationOptions, plan: CallPlan, status: str, media_url: str
) -> dict[str, str]:
    assert plan.recording_sid is not None
    answered_at = call_events(plan)[2].at
    params = {
        "AccountSid": options.account_sid,
        "CallSid": plan.recording_call_sid,
        "RecordingSid": plan.recording_sid,
        "RecordingStatus": status,
        "RecordingChannels": "2",
        "RecordingSource": "DialVerb" if plan.parent_call_sid else "OutboundAPI",
        "RecordingStartTime": _rfc2822(answered_at),
    }
    if status == "absent":
        params["RecordingDuration"] = "0"
        params["ErrorCode"] = ABSENT_RECORDING_ERROR_CODE
        return params
    params["RecordingUrl"] = media_url
    # The length is known only once the recording is complete.
    if status == "completed":
        params["RecordingDuration"] = str(plan.talk_seconds)
    return params


def inbound_sms_params(options: SimulationOptions, plan: MessagePlan) -> dict[str, str]:
    assert plan.body is not None
    params = {
        "AccountSid": options.account_sid,
        "ApiVersion": API_VERSION,
        "MessageSid": plan.message_sid,
        "SmsSid": plan.message_sid,
        "SmsMessageSid": plan.message_sid,
        "From": plan.customer_phone,
        "To": options.company_number,
        "Body": plan.body,
        "NumSegments": str(count_sms_segments(plan.body)),
        "NumMedia": "0",
        "SmsStatus": "received",
        **_country_params(("From",), plan.customer_phone),
        **_country_params(("To",), options.company_number),
    }
    if plan.messaging_service_sid:
        params["MessagingServiceSid"] = plan.messaging_service_sid
    return params


def sms_status_params(
    options: SimulationOptions, plan: MessagePlan, status: str
) -> dict[str, str]:
    params = {
        "AccountSid": options.account_sid,
        "ApiVersion": API_VERSION,
        "MessageSid": plan.message_sid,
        "SmsSid": plan.message_sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "From": options.company_number,
        "To": plan.customer_phone,
    }
    if plan.messaging_service_sid:
        params["MessagingServiceSid"] = plan.messaging_service_sid
    return params


def sms_status_path(rep_email: str) -> str:
    return SMS_STATUS_PATH + "?" + urllib.parse.urlencode({"rep": rep_email})


GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€")  # each takes two septets


def count_sms_segments(body: str) -> int:
    """Return the SMS segment count: GSM-7 160/153 septets, else UCS-2 70/67."""
    if all(char in GSM7_BASIC or char in GSM7_EXTENDED for char in body):
        septets = len(body) + sum(char in GSM7_EXTENDED for char in body)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    code_units = len(body.encode("utf-16-le")) // 2
    return 1 if code_units <= 70 else math.ceil(code_units / 67)


def _country_params(prefixes: tuple[str, ...], number: str) -> dict[str, str]:
    # Every +1 number is reported as US. That is wrong for Canada and the
    # Caribbean, but true for the demo numbers.
    if not number.startswith("+1"):
        return {}
    return {f"{prefix}Country": "US" for prefix in prefixes}


def _rfc2822(moment: datetime) -> str:
    return email.utils.format_datetime(moment, usegmt=True)


# Sending ---------------------------------------------------------------------


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
        url = self._base_url + path
        headers = {
            "X-Twilio-Signature": self._validator.compute_signature(url, params),
            "I-Twilio-Idempotency-Token": token,
            "User-Agent": USER_AGENT,
        }
        for attempt in (1, 2):
            status, body = await self._post(url, params, headers)
            if status is not None and 200 <= status < 300:
                return True
            self._record_error(path, sid, event, status, body, attempt)
            if status is not None and status < 500:
                return False
            if attempt == 1:
                logger.warning("retrying %s %s for %s", path, event, sid)
                await asyncio.sleep(RETRY_DELAY_S)
        return False

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


# Media server ----------------------------------------------------------------


class RecordingServer:
    """Serve recordings like Twilio's media URLs, behind HTTP basic auth.

    GET /2010-04-01/Accounts/{AccountSid}/Recordings/{RecordingSid}[.wav]
    returns the WAV to a client that sends (AccountSid, auth token). It returns
    401 without valid credentials, and 404 for unknown sids or for the first
    `not_ready_requests` requests of each recording.
    """

    def __init__(self, options: SimulationOptions) -> None:
        self._options = options
        self._recordings: dict[str, Path] = {}
        self._requests: Counter[str] = Counter()
        self.fetched: set[str] = set()
        self.stats: Counter[str] = Counter()
        self._awaited: set[str] = set()
        self._fetch_event = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    def add(self, recording_sid: str, path: Path) -> None:
        self._recordings[recording_sid] = path

    def expect_fetch(self, recording_sid: str) -> None:
        """Make wait_until_fetched wait for this recording."""
        self._awaited.add(recording_sid)

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
            return _twilio_error(401, 20003, "Authenticate")

        sid, _, extension = request.match_info["name"].partition(".")
        path = self._recordings.get(sid)
        account_sid = request.match_info["account_sid"]
        if path is None or extension not in ("", "wav"):
            self.stats["not_found"] += 1
            return _twilio_error(404, 20404, "The requested resource was not found")
        if account_sid != self._options.account_sid:
            self.stats["not_found"] += 1
            return _twilio_error(404, 20404, "The requested resource was not found")

        self._requests[sid] += 1
        if self._requests[sid] <= self._options.not_ready_requests:
            self.stats["not_ready"] += 1
            return _twilio_error(404, 20404, "The requested resource was not found")

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

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            credentials = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            return False
        expected = f"{self._options.account_sid}:{self._options.auth_token}"
        return hmac.compare_digest(credentials, expected.encode())

    def _mark_fetched(self, sid: str) -> None:
        self.fetched.add(sid)
        self._fetch_event.set()


def _twilio_error(status: int, code: int, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else {}
    body = {"code": code, "message": message, "more_info": "", "status": status}
    return web.json_response(body, status=status, headers=headers)


# Running ---------------------------------------------------------------------


@dataclass
class _Progress:
    total_calls: int
    report: Callable[[str], None] | None
    sender: WebhookSender
    done: int = 0
    answered: int = 0
    talk_seconds: int = 0

    def call_done(self, plan: CallPlan) -> None:
        self.done += 1
        self.answered += plan.answered
        self.talk_seconds += plan.talk_seconds
        if self.report and (self.done % 10 == 0 or self.done == self.total_calls):
            self.report(
                f"calls {self.done}/{self.total_calls} sent: {self.answered} "
                f"answered, {self.talk_seconds} talk seconds, "
                f"{len(self.sender.errors)} webhook errors"
            )


@dataclass
class _Run:
    options: SimulationOptions
    sender: WebhookSender
    media: RecordingServer
    progress: _Progress
    slots: asyncio.Semaphore
    statuses_sent: dict[str, list[str]] = field(default_factory=dict)


async def run_simulation(
    options: SimulationOptions, progress: Callable[[str], None] | None = None
) -> SimulationReport:
    """Send the simulated calls and messages and return what was sent.

    `progress` receives a one-line summary after every 10 calls and at the end.
    Raises ValueError for invalid options and RuntimeError when espeak-ng or
    sox is missing or fails. Webhook failures do not raise: they are in
    `SimulationReport.errors`.
    """
    validate_options(options)
    started = time.monotonic()
    rng = random.Random(options.seed)
    calls = plan_calls(options, rng)
    messages = plan_messages(options, rng)
    logger.info(
        "simulating %d calls and %d messages against %s",
        len(calls),
        len(messages),
        options.url,
    )
    await _synthesize_recordings(options, calls)

    media = RecordingServer(options)
    await media.start()
    try:
        for plan in calls:
            if plan.recording_status == "completed" and plan.recording_sid:
                media.add(plan.recording_sid, _wav_path(options, plan))
        run = await _send_everything(options, media, calls, messages, progress)
        await media.wait_until_fetched(options.fetch_timeout_s)
    finally:
        await media.stop()

    if media.not_fetched:
        logger.warning(
            "%d recordings were not fetched within %.0f s",
            len(media.not_fetched),
            options.fetch_timeout_s,
        )
    return _build_report(options, run, calls, messages, time.monotonic() - started)


async def _synthesize_recordings(
    options: SimulationOptions, calls: list[CallPlan]
) -> None:
    recorded = [plan for plan in calls if plan.conversation is not None]
    if not recorded:
        return
    check_speech_tools()
    options.work_dir.mkdir(parents=True, exist_ok=True)
    synthesizer = SpeechSynthesizer(options.work_dir, max_processes=os.cpu_count() or 2)

    async def render(plan: CallPlan) -> None:
        assert plan.conversation is not None
        path = _wav_path(options, plan)
        plan.talk_seconds = await synthesizer.render(
            plan.conversation, path, rep_first=plan.direction == "outbound"
        )

    async with asyncio.TaskGroup() as group:
        for plan in recorded:
            group.create_task(render(plan))


def _wav_path(options: SimulationOptions, plan: CallPlan) -> Path:
    return options.work_dir / f"{plan.recording_sid}.wav"


async def _send_everything(
    options: SimulationOptions,
    media: RecordingServer,
    calls: list[CallPlan],
    messages: list[MessagePlan],
    progress: Callable[[str], None] | None,
) -> _Run:
    connector = aiohttp.TCPConnector(limit=options.concurrency)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        sender = WebhookSender(session, options)
        run = _Run(
            options=options,
            sender=sender,
            media=media,
            progress=_Progress(len(calls), progress, sender),
            slots=asyncio.Semaphore(options.concurrency),
        )
        async with asyncio.TaskGroup() as group:
            for plan in calls:
                group.create_task(_send_call(run, plan))
            for message in messages:
                group.create_task(_send_message(run, message))
    return run


async def _send_call(run: _Run, plan: CallPlan) -> None:
    async with run.slots:
        events = call_events(plan)
        tokens = [str(uuid.uuid4()) for _ in events]
        sent = run.statuses_sent.setdefault(plan.call_sid, [])
        for index in plan.delivery_order:
            event = events[index]
            params = call_status_params(run.options, plan, event)
            sent.append(event.status)
            await run.sender.send(
                VOICE_STATUS_PATH, params, tokens[index], plan.call_sid, event.status
            )
        if plan.recording_status is not None:
            await _send_recording(run, plan)
    run.progress.call_done(plan)


async def _send_recording(run: _Run, plan: CallPlan) -> None:
    assert plan.recording_sid is not None and plan.recording_status is not None
    media_url = run.media.media_url(plan.recording_sid)
    for status in ("in-progress", plan.recording_status):
        params = recording_params(run.options, plan, status, media_url)
        accepted = await run.sender.send(
            RECORDING_STATUS_PATH,
            params,
            str(uuid.uuid4()),
            plan.recording_sid,
            f"recording {status}",
        )
        # Only a server that accepted the callback will fetch the media.
        if accepted and status == "completed":
            run.media.expect_fetch(plan.recording_sid)


async def _send_message(run: _Run, plan: MessagePlan) -> None:
    async with run.slots:
        sent = run.statuses_sent.setdefault(plan.message_sid, [])
        if plan.direction == "inbound":
            params = inbound_sms_params(run.options, plan)
            sent.append("received")
            await run.sender.send(
                SMS_PATH, params, str(uuid.uuid4()), plan.message_sid, "received"
            )
            return

        path = sms_status_path(plan.rep_email)
        tokens = [str(uuid.uuid4()) for _ in OUTBOUND_SMS_STATUSES]
        for index in plan.delivery_order:
            status = OUTBOUND_SMS_STATUSES[index]
            params = sms_status_params(run.options, plan, status)
            sent.append(status)
            await run.sender.send(path, params, tokens[index], plan.message_sid, status)


# Report ----------------------------------------------------------------------


def _build_report(
    options: SimulationOptions,
    run: _Run,
    calls: list[CallPlan],
    messages: list[MessagePlan],
    elapsed_s: float,
) -> SimulationReport:
    per_rep = {email: RepSummary() for email, _ in options.reps}
    for plan in calls:
        summary = per_rep[plan.rep_email]
        summary.calls += 1
        if plan.answered and plan.talk_seconds > 0:
            summary.answered_calls += 1
            summary.talk_seconds += plan.talk_seconds
    for message in messages:
        per_rep[message.rep_email].sms += 1

    return SimulationReport(
        url=options.url,
        seed=options.seed,
        calls_sent=len(calls),
        sms_sent=len(messages),
        webhooks_sent=run.sender.requests_sent,
        elapsed_s=round(elapsed_s, 3),
        per_rep=per_rep,
        calls=[_call_record(plan, run.statuses_sent) for plan in calls],
        messages=[_message_record(plan, run.statuses_sent) for plan in messages],
        errors=run.sender.errors,
        recordings_fetched=sorted(run.media.fetched),
        recordings_not_fetched=run.media.not_fetched,
        media_requests=dict(run.media.stats),
    )


def _call_record(plan: CallPlan, statuses_sent: dict[str, list[str]]) -> CallRecord:
    conversation = plan.conversation
    sentences = {
        "rep": conversation.sentences(REP_CHANNEL) if conversation else [],
        "customer": conversation.sentences(CUSTOMER_CHANNEL) if conversation else [],
    }
    inbound = plan.direction == "inbound"
    return CallRecord(
        call_sid=plan.call_sid,
        parent_call_sid=plan.parent_call_sid,
        rep_email=plan.rep_email,
        customer_phone=plan.customer_phone,
        caller_kind=plan.caller_kind,
        direction=plan.direction,
        twilio_direction="outbound-dial" if inbound else "outbound-api",
        final_status=plan.final_status,
        answered=plan.answered,
        talk_seconds=plan.talk_seconds,
        recording_sid=plan.recording_sid,
        recording_status=plan.recording_status,
        sentences=sentences,
        statuses_sent=statuses_sent.get(plan.call_sid, []),
    )


def _message_record(
    plan: MessagePlan, statuses_sent: dict[str, list[str]]
) -> MessageRecord:
    return MessageRecord(
        message_sid=plan.message_sid,
        direction=plan.direction,
        rep_email=plan.rep_email,
        customer_phone=plan.customer_phone,
        body=plan.body,
        statuses_sent=statuses_sent.get(plan.message_sid, []),
    )


def format_summary(report: SimulationReport) -> str:
    answered = sum(summary.answered_calls for summary in report.per_rep.values())
    talk = sum(summary.talk_seconds for summary in report.per_rep.values())
    fetched = len(report.recordings_fetched)
    expected = fetched + len(report.recordings_not_fetched)
    return (
        f"sent {report.calls_sent} calls ({answered} answered, {talk} talk seconds) "
        f"and {report.sms_sent} SMS in {report.webhooks_sent} webhooks over "
        f"{report.elapsed_s:.1f} s; {len(report.errors)} webhook errors; "
        f"{fetched}/{expected} recordings fetched"
    )


# Command line ----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `touchline simulate` options to parser."""
    parser.add_argument(
        "--url",
        required=True,
        help="base URL of the Touchline server, for example http://127.0.0.1:8080. "
        "Webhooks are signed against this URL plus the webhook path.",
    )
    parser.add_argument("--calls", type=int, default=20, help="number of calls")
    parser.add_argument("--sms", type=int, default=10, help="number of SMS messages")
    parser.add_argument(
        "--rate",
        type=float,
        default=5.0,
        help="maximum webhook requests per second, or 0 for no limit (default 5)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed that fixes the scenario"
    )

    parser.add_argument(
        "--auth-token",
        help=f"Twilio auth token that signs the webhooks (default: ${AUTH_TOKEN_ENV}, "
        "then the configured server token)",
    )
    parser.add_argument(
        "--report", type=Path, help="write the JSON report to this file"
    )

    parser.add_argument(
        "--unknown-callers",
        type=int,
        help="calls from numbers no customer owns (default: one per 10 calls)",
    )
    parser.add_argument(
        "--withheld-callers",
        type=int,
        help=f"calls from the withheld number {WITHHELD_NUMBER} "
        "(default: one per 20 calls)",
    )
    parser.add_argument(
        "--account-sid",
        default=None,
        help="AccountSid to send (default: the server's twilio_account_sid setting)",
    )

    parser.add_argument(
        "--media-host",
        default="127.0.0.1",
        help="host name in RecordingUrl, as the server reaches this machine",
    )
    parser.add_argument(
        "--media-port",
        type=int,
        default=0,
        help="port of the recording media server (default: any free port)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="directory for recording WAVs (default: a temporary directory)",
    )
    parser.add_argument(
        "--fetch-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for the server to fetch every recording (default 60)",
    )
    parser.add_argument(
        "--not-ready-requests",
        type=int,
        default=0,
        help="return 404 to the first N media requests of each recording (default 0)",
    )


def main_from_args(
    args: argparse.Namespace,
    settings_auth_token: str | None,
    settings_account_sid: str | None = None,
) -> int:
    """Run `touchline simulate` and return the exit status.

    Returns 0 when every webhook got a 2xx and every recording was fetched,
    1 otherwise, and 2 for invalid options or a missing auth token.
    """
    auth_token = (
        args.auth_token or os.environ.get(AUTH_TOKEN_ENV) or settings_auth_token
    )
    if not auth_token:
        print(
            f"error: missing Twilio auth token: pass --auth-token, set "
            f"{AUTH_TOKEN_ENV} or configure the server's Twilio auth token",
            file=sys.stderr,
        )
        return 2

    with _work_directory(args.work_dir) as work_dir:
        account_sid = args.account_sid or settings_account_sid or DEFAULT_ACCOUNT_SID
        options = _options_from_args(args, auth_token, account_sid, work_dir)
        try:
            report = asyncio.run(run_simulation(options, progress=print))
        except (ValueError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2

    if args.report is not None:
        args.report.write_text(report.to_json() + "\n", encoding="utf-8")
    print(format_summary(report))
    for error in report.errors[:10]:
        print(
            f"  {error.path} {error.event} {error.sid}: status {error.status}, "
            f"{error.body_start[:100]!r}"
        )
    return 0 if not report.errors and not report.recordings_not_fetched else 1


def _options_from_args(
    args: argparse.Namespace, auth_token: str, account_sid: str, work_dir: Path
) -> SimulationOptions:
    unknown = args.unknown_callers
    withheld = args.withheld_callers
    return SimulationOptions(
        url=args.url,
        auth_token=auth_token,
        work_dir=work_dir,
        account_sid=account_sid,
        calls=args.calls,
        sms=args.sms,
        rate=args.rate,
        seed=args.seed,
        unknown_callers=args.calls // 10 if unknown is None else unknown,
        withheld_callers=args.calls // 20 if withheld is None else withheld,
        media_host=args.media_host,
        media_port=args.media_port,
        fetch_timeout_s=args.fetch_timeout,
        not_ready_requests=args.not_ready_requests,
    )


@contextlib.contextmanager
def _work_directory(path: Path | None) -> Iterator[Path]:
    if path is not None:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="touchline-simulate-") as temporary:
        yield Path(temporary)
