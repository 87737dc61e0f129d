"""Click-to-call played end to end against the service and the Twilio API stand-in.

Each click-to-call goes through the steps of a real one:

1. The simulator picks a customer of the API token's rep
   (`GET /api/v1/customers`), one whose owner is a simulated rep, and
   requests a call to them (`POST /api/v1/calls`), as the rep's page or
   script does.
2. The service asks Twilio's REST API to ring the rep. The stand-in records
   that request, and the simulator checks it field by field: the rep's phone
   first, the bridge TwiML URL, dual-channel recording, and the status and
   recording callbacks.
3. The simulator plays the call that Twilio places: the bridge TwiML request
   when the rep answers, the status callbacks of the rep's parent leg and
   of the customer's child leg, and the recording callbacks, all signed.
4. It reads the customer's stream (`GET /api/v1/customers/{id}/activities`)
   and checks that the call is one touch of that rep, with its talk time.

Every mismatch is a line in the record's `problems`.
"""

from __future__ import annotations

import random
import urllib.parse
import uuid
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from multidict import MultiDict

from telephony.simulate.options import SimulationOptions
from telephony.simulate.params import (
    API_VERSION,
    RECORDING_STATUS_PATH,
    VOICE_STATUS_PATH,
)
from telephony.simulate.routing import BRIDGE_PATH, describe_twiml
from telephony.simulate.twilio_api import CreatedCall, TwilioApiServer
from telephony.speech import (
    CUSTOMER_CHANNEL,
    REP_CHANNEL,
    Conversation,
    SpeechSynthesizer,
    plan_conversation,
)

if TYPE_CHECKING:
    from telephony.simulate.run import _Run

CALLS_API_PATH = "/api/v1/calls"
CUSTOMERS_API_PATH = "/api/v1/customers"
# Status callback events and recording events the service must ask for.
LEG_EVENTS = ["initiated", "ringing", "answered", "completed"]
RECORDING_EVENTS = ["in-progress", "completed", "absent"]
# Seconds the rep's and then the customer's phone ring.
REP_RING_SECONDS = 4
CUSTOMER_RING_SECONDS = 6


@dataclass
class ClickToCallRecord:
    """One simulated click-to-call: what was sent, and what did not match."""

    customer_id: int | None = None
    customer_phone: str | None = None
    rep_email: str | None = None
    rep_phone: str | None = None
    call_sid: str | None = None  # the rep's parent leg, created by the REST request
    child_call_sid: str | None = None  # the customer's leg of the bridge
    recording_sid: str | None = None
    talk_seconds: int = 0
    sentences: dict[str, list[str]] = field(default_factory=dict)
    # The REST request's form, each parameter with all its values.
    api_request: dict[str, list[str]] = field(default_factory=dict)
    routing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Leg:
    call_sid: str
    from_party: str
    to_party: str
    direction: str
    parent_call_sid: str | None = None


async def run_click_to_calls(
    run: _Run, session: aiohttp.ClientSession, api: TwilioApiServer
) -> list[ClickToCallRecord]:
    """Play `options.click_to_calls` click-to-calls, one after another."""
    options = run.options
    rng = random.Random(options.seed)
    synthesizer = SpeechSynthesizer(options.work_dir, max_processes=2)
    records = []
    for _ in range(options.click_to_calls):
        record = ClickToCallRecord()
        try:
            await _click_to_call(run, session, api, rng, synthesizer, record)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            record.problems.append(f"request to the service failed: {error!r}")
        records.append(record)
    return records


async def _click_to_call(
    run: _Run,
    session: aiohttp.ClientSession,
    api: TwilioApiServer,
    rng: random.Random,
    synthesizer: SpeechSynthesizer,
    record: ClickToCallRecord,
) -> None:
    options = run.options
    if not await _pick_customer(session, options, rng, record):
        return
    created = await _start_call(session, options, api, record)
    if created is None:
        return
    assert record.rep_phone is not None and record.customer_phone is not None
    record.api_request = {key: created.form.getall(key) for key in created.form}
    record.problems += request_problems(
        created.form, options, record.rep_phone, record.customer_phone
    )
    if record.problems:
        return
    conversation = plan_conversation(rng)
    record.recording_sid = "RE" + uuid.uuid4().hex
    path = record_path(options, record)
    options.work_dir.mkdir(parents=True, exist_ok=True)
    record.talk_seconds = await synthesizer.render(conversation, path)
    record.sentences = _sentences(conversation)
    await _play_call(run, created, record)
    await _check_stream(session, options, record)


async def _pick_customer(
    session: aiohttp.ClientSession,
    options: SimulationOptions,
    rng: random.Random,
    record: ClickToCallRecord,
) -> bool:
    """Pick one of the token's customers owned by a simulated rep."""
    status, body = await _api(session, options, "GET", CUSTOMERS_API_PATH)
    if status != 200 or not isinstance(body, dict):
        record.problems.append(f"GET {CUSTOMERS_API_PATH} returned {status}: {body}")
        return False
    phones = dict(options.reps)
    choices = [
        (item["id"], phone, item["owner"])
        for item in body.get("items", [])
        if item.get("owner") in phones
        for phone in item.get("phones", [])[:1]
    ]
    if not choices:
        record.problems.append(
            "the API token sees no customer with a phone whose owner is a "
            "simulated rep; create the token for one of the reps"
        )
        return False
    record.customer_id, record.customer_phone, record.rep_email = rng.choice(choices)
    record.rep_phone = phones[record.rep_email]
    return True


async def _start_call(
    session: aiohttp.ClientSession,
    options: SimulationOptions,
    api: TwilioApiServer,
    record: ClickToCallRecord,
) -> CreatedCall | None:
    """Ask the service for the call; return the REST request it made for it."""
    document = {"customer_id": record.customer_id, "phone": record.customer_phone}
    status, body = await _api(session, options, "POST", CALLS_API_PATH, document)
    if status != 201 or not isinstance(body, dict):
        record.problems.append(f"POST {CALLS_API_PATH} returned {status}: {body}")
        return None
    record.call_sid = str(body.get("call_sid"))
    created = api.calls.get(record.call_sid)
    if created is None:
        record.problems.append(
            f"the service returned call {record.call_sid}, which the Twilio API "
            "stand-in did not create; is the service's twilio_api_url "
            f"{api.base_url}?"
        )
    return created


def request_problems(
    form: MultiDict[str],
    options: SimulationOptions,
    rep_phone: str,
    customer_phone: str,
) -> list[str]:
    """Compare the service's REST request with the click-to-call it must make."""
    base = options.url.rstrip("/")
    bridge = f"{base}{BRIDGE_PATH}?{urllib.parse.urlencode({'to': customer_phone})}"
    expected = {
        "To": [rep_phone],
        "From": [options.company_number],
        "Url": [bridge],
        "Method": ["POST"],
        "StatusCallback": [base + VOICE_STATUS_PATH],
        "StatusCallbackMethod": ["POST"],
        "StatusCallbackEvent": LEG_EVENTS,
        "Record": ["true"],
        "RecordingChannels": ["dual"],
        "RecordingStatusCallback": [base + RECORDING_STATUS_PATH],
        "RecordingStatusCallbackMethod": ["POST"],
        "RecordingStatusCallbackEvent": RECORDING_EVENTS,
    }
    problems = [
        f"REST request {name} is {form.getall(name, [])}, expected {values}"
        for name, values in expected.items()
        if form.getall(name, []) != values
    ]
    unexpected = sorted(set(form) - set(expected) - {"Timeout"})
    if unexpected:
        problems.append(f"REST request has unexpected parameters {unexpected}")
    if not form.get("Timeout", "").isdigit():
        problems.append(f"REST request Timeout {form.get('Timeout')!r} is not seconds")
    return problems


async def _play_call(
    run: _Run, created: CreatedCall, record: ClickToCallRecord
) -> None:
    """Send what Twilio sends for the call: the bridge request and the callbacks."""
    assert record.customer_phone is not None
    form = created.form
    rep_leg = _Leg(created.call_sid, form["From"], form["To"], "outbound-api")
    started = datetime.now(UTC) - timedelta(seconds=record.talk_seconds + 30)
    answered = started + timedelta(seconds=REP_RING_SECONDS)
    await _send_statuses(run, rep_leg, [("initiated", started), ("ringing", started)])
    await _send_statuses(run, rep_leg, [("in-progress", answered)], first_sequence=2)

    caller_id = await _bridge(run, form["Url"], rep_leg, record)
    if caller_id is None:
        return
    record.child_call_sid = "CA" + uuid.uuid4().hex
    customer_leg = _Leg(
        record.child_call_sid,
        caller_id,
        record.customer_phone,
        "outbound-dial",
        created.call_sid,
    )
    bridged = answered + timedelta(seconds=1)
    talk_start = bridged + timedelta(seconds=CUSTOMER_RING_SECONDS)
    ended = talk_start + timedelta(seconds=record.talk_seconds)
    await _send_statuses(
        run,
        customer_leg,
        [
            ("initiated", bridged),
            ("ringing", bridged),
            ("in-progress", talk_start),
            ("completed", ended),
        ],
        talk_seconds=record.talk_seconds,
    )
    parent_seconds = int((ended - answered).total_seconds())
    await _send_statuses(
        run,
        rep_leg,
        [("completed", ended)],
        first_sequence=3,
        talk_seconds=parent_seconds,
    )
    await _send_recording(run, created.call_sid, record, answered)


async def _bridge(
    run: _Run, url: str, rep_leg: _Leg, record: ClickToCallRecord
) -> str | None:
    """Request the bridge TwiML; return the caller ID its `<Dial>` sets."""
    path = _path_of(run.options, url, record)
    if path is None:
        return None
    params = _leg_params(run.options, rep_leg, "in-progress")
    accepted, body = await run.sender.exchange(
        path, params, str(uuid.uuid4()), rep_leg.call_sid, "bridge"
    )
    record.routing.append(describe_twiml(body) if accepted else "failed")
    if record.routing[-1] != f"dial {record.customer_phone}":
        record.problems.append(f"bridge TwiML did {record.routing[-1]!r}")
        return None
    dial = ElementTree.fromstring(body).find("Dial")
    assert dial is not None
    return dial.get("callerId") or rep_leg.from_party


async def _send_statuses(
    run: _Run,
    leg: _Leg,
    events: list[tuple[str, datetime]],
    *,
    first_sequence: int = 0,
    talk_seconds: int | None = None,
) -> None:
    for sequence, (status, moment) in enumerate(events, start=first_sequence):
        params = _leg_params(run.options, leg, status)
        params["CallbackSource"] = "call-progress-events"
        params["SequenceNumber"] = str(sequence)
        params["Timestamp"] = _rfc2822(moment)
        if status == "completed" and talk_seconds is not None:
            params["CallDuration"] = str(talk_seconds)
        await run.sender.send(
            VOICE_STATUS_PATH, params, str(uuid.uuid4()), leg.call_sid, status
        )


async def _send_recording(
    run: _Run, call_sid: str, record: ClickToCallRecord, answered: datetime
) -> None:
    assert record.recording_sid is not None
    run.media.add(record.recording_sid, record_path(run.options, record))
    media_url = run.media.media_url(record.recording_sid)
    for status in ("in-progress", "completed"):
        params = {
            "AccountSid": run.options.account_sid,
            "CallSid": call_sid,
            "RecordingSid": record.recording_sid,
            "RecordingStatus": status,
            "RecordingChannels": "2",
            "RecordingSource": "OutboundAPI",
            "RecordingStartTime": _rfc2822(answered),
            "RecordingUrl": media_url,
        }
        if status == "completed":
            params["RecordingDuration"] = str(record.talk_seconds)
        accepted = await run.sender.send(
            RECORDING_STATUS_PATH,
            params,
            str(uuid.uuid4()),
            record.recording_sid,
            f"recording {status}",
        )
        if accepted and status == "completed":
            run.media.expect_fetch(record.recording_sid)


async def _check_stream(
    session: aiohttp.ClientSession,
    options: SimulationOptions,
    record: ClickToCallRecord,
) -> None:
    """Check that the customer's stream has the call as one touch of the rep."""
    path = f"{CUSTOMERS_API_PATH}/{record.customer_id}/activities?limit=100"
    status, body = await _api(session, options, "GET", path)
    if status != 200 or not isinstance(body, dict):
        record.problems.append(f"GET {path} returned {status}: {body}")
        return
    sids = {record.call_sid, record.child_call_sid}
    touches = [
        item
        for item in body.get("items", [])
        if (item.get("call") or {}).get("call_sid") in sids
    ]
    if len(touches) != 1:
        record.problems.append(f"the stream has {len(touches)} touches of the call")
        return
    [touch] = touches
    call = touch["call"]
    expected = {
        "rep": (touch.get("rep"), record.rep_email),
        "direction": (touch.get("direction"), "outbound"),
        "call_sid": (call.get("call_sid"), record.call_sid),
        "status": (call.get("status"), "completed"),
        "talk_seconds": (call.get("talk_seconds"), record.talk_seconds),
    }
    for name, (found, wanted) in expected.items():
        if found != wanted:
            record.problems.append(f"touch {name} is {found!r}, expected {wanted!r}")


async def _api(
    session: aiohttp.ClientSession,
    options: SimulationOptions,
    method: str,
    path: str,
    document: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    """Call the service's JSON API with the rep's token; return status and body."""
    headers = {"Authorization": f"Bearer {options.api_token}"}
    url = options.url.rstrip("/") + path
    async with session.request(method, url, json=document, headers=headers) as reply:
        text = await reply.text()
        try:
            return reply.status, await reply.json(content_type=None)
        except ValueError:
            return reply.status, text[:200]


def _leg_params(options: SimulationOptions, leg: _Leg, status: str) -> dict[str, str]:
    params = {
        "AccountSid": options.account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": leg.call_sid,
        "CallStatus": status,
        "Direction": leg.direction,
        "From": leg.from_party,
        "To": leg.to_party,
        "Caller": leg.from_party,
        "Called": leg.to_party,
    }
    if leg.parent_call_sid is not None:
        params["ParentCallSid"] = leg.parent_call_sid
    return params


def _path_of(
    options: SimulationOptions, url: str, record: ClickToCallRecord
) -> str | None:
    """Return the part of a callback URL after the service's base URL."""
    base = options.url.rstrip("/")
    if not url.startswith(base + "/"):
        record.problems.append(f"callback URL {url} is not under {base}")
        return None
    return url[len(base) :]


def record_path(options: SimulationOptions, record: ClickToCallRecord) -> Path:
    """Return where the call's recording WAV is written."""
    return options.work_dir / f"{record.recording_sid}.wav"


def _sentences(conversation: Conversation) -> dict[str, list[str]]:
    return {
        "rep": conversation.sentences(REP_CHANNEL),
        "customer": conversation.sentences(CUSTOMER_CHANNEL),
    }


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment, usegmt=True)
