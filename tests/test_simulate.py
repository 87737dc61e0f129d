"""`touchline simulate` against a stand-in receiver on 127.0.0.1.

The receiver is a small aiohttp server, not Touchline. It validates each
request's Twilio signature, records the requests and downloads every completed
recording from the simulator's media server, as Touchline would.
"""

import argparse
import asyncio
import base64
import dataclasses
import io
import json
import logging
import wave
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiohttp import web
from conftest import ACCOUNT_SID as SERVER_ACCOUNT_SID
from conftest import AUTH_TOKEN as SERVER_AUTH_TOKEN
from conftest import free_port, make_settings
from multidict import MultiDict
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo import load_demo
from capture.models import Activity, Call, CallLeg, User
from telephony.simulate import (
    RECORDING_STATUS_PATH,
    SMS_PATH,
    SMS_STATUS_PATH,
    VOICE_STATUS_PATH,
    WITHHELD_NUMBER,
    SimulationOptions,
    SimulationReport,
    add_arguments,
    count_sms_segments,
    customer_owners,
    format_summary,
    main_from_args,
    run_simulation,
)
from telephony.simulate.cli import loopback_port
from telephony.simulate.click_to_call import ClickToCallRecord, request_problems
from telephony.simulate.options import DEFAULT_REPS
from telephony.simulate.routing import describe_twiml
from telephony.simulate.twilio_api import TwilioApiServer
from web.app import create_app

AUTH_TOKEN = "0123456789abcdef0123456789abcdef"


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    query: dict[str, str]
    params: dict[str, str]
    idempotency_token: str
    user_agent: str
    content_type: str
    signature_valid: bool


@dataclass
class MediaCheck:
    """Results of the receiver's requests for one recording."""

    without_auth: int = 0
    wrong_password: int = 0
    unknown_sid: int = 0
    head_statuses: list[int] = field(default_factory=list)
    head_content_type: str = ""
    get_status: int = 0
    get_content_type: str = ""
    body: bytes = b""


class Receiver:
    """Stand-in webhook receiver that returns 200, except for the first
    requests to a path listed in fail_first."""

    def __init__(
        self,
        account_sid: str,
        fail_first: dict[str, list[int]] | None = None,
        download: bool = True,
    ) -> None:
        self.account_sid = account_sid
        self.download = download
        self.requests: list[ReceivedRequest] = []
        self.media: dict[str, MediaCheck] = {}
        self._fail_first = {
            path: list(codes) for path, codes in (fail_first or {}).items()
        }
        self._validator = RequestValidator(AUTH_TOKEN)
        self._downloads: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._session = aiohttp.ClientSession()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        try:
            await asyncio.gather(*self._downloads)
        finally:
            if self._session is not None:
                await self._session.close()
            if self._runner is not None:
                await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        # raw_path keeps the query exactly as sent, such as rep=ana%40... The
        # decoded request.url would turn %40 into @ and break the signature.
        url = f"http://{request.host}{request.raw_path}"
        signature = request.headers.get("X-Twilio-Signature", "")
        params = {key: str(value) for key, value in form.items()}
        self.requests.append(
            ReceivedRequest(
                path=request.path,
                query=dict(request.query),
                params=params,
                idempotency_token=request.headers.get("I-Twilio-Idempotency-Token", ""),
                user_agent=request.headers.get("User-Agent", ""),
                content_type=request.content_type,
                signature_valid=self._validator.validate(url, form, signature),
            )
        )
        failures = self._fail_first.get(request.path)
        if failures:
            return web.Response(status=failures.pop(0), text="stand-in failure")
        completed = params.get("RecordingStatus") == "completed"
        if self.download and request.path == RECORDING_STATUS_PATH and completed:
            task = asyncio.create_task(self._download(params))
            self._downloads.append(task)
        return web.Response(text="<Response/>", content_type="text/xml")

    async def _download(self, params: dict[str, str]) -> None:
        assert self._session is not None
        url = params["RecordingUrl"]
        check = self.media[params["RecordingSid"]] = MediaCheck()
        auth = basic_auth(self.account_sid, AUTH_TOKEN)
        wrong = basic_auth(self.account_sid, "wrong-token")
        unknown_url = url.rsplit("/", 1)[0] + "/RE" + "0" * 32

        async with self._session.get(url) as response:
            check.without_auth = response.status
        async with self._session.get(url, headers=wrong) as response:
            check.wrong_password = response.status
        async with self._session.get(unknown_url, headers=auth) as response:
            check.unknown_sid = response.status
        for _ in range(5):
            async with self._session.head(url + ".wav", headers=auth) as response:
                check.head_statuses.append(response.status)
                check.head_content_type = response.headers.get("Content-Type", "")
            if response.status == 200:
                break
            await asyncio.sleep(0.05)
        # The simulator may stop its media server right after this GET.
        async with self._session.get(url, headers=auth) as response:
            check.get_status = response.status
            check.get_content_type = response.headers.get("Content-Type", "")
            check.body = await response.read()


def basic_auth(login: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{login}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


@dataclass(frozen=True)
class Outcome:
    options: SimulationOptions
    report: SimulationReport
    requests: list[ReceivedRequest]
    media: dict[str, MediaCheck]
    elapsed_s: float
    server_errors: list[str]


class ErrorLog(logging.Handler):
    """Collects aiohttp's ERROR records, such as unhandled handler exceptions."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


async def simulate(
    tmp_path: Path,
    fail_first: dict[str, list[int]] | None = None,
    download: bool = True,
    **overrides: object,
) -> Outcome:
    account_sid = "AC" + "ab" * 16
    receiver = Receiver(account_sid, fail_first, download)
    url = await receiver.start()
    options = SimulationOptions(
        url=url,
        auth_token=AUTH_TOKEN,
        work_dir=tmp_path,
        account_sid=account_sid,
        **overrides,  # type: ignore[arg-type]
    )
    error_log = ErrorLog()
    logging.getLogger("aiohttp").addHandler(error_log)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        report = await run_simulation(options)
    finally:
        await receiver.stop()
        logging.getLogger("aiohttp").removeHandler(error_log)
    return Outcome(
        options,
        report,
        receiver.requests,
        receiver.media,
        loop.time() - started,
        error_log.messages,
    )


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    tmp_path = tmp_path_factory.mktemp("simulate")
    return asyncio.run(
        simulate(
            tmp_path,
            calls=6,
            sms=4,
            rate=0,
            seed=7,
            unknown_callers=1,
            withheld_callers=1,
            absent_every=2,
            not_ready_requests=1,
            fetch_timeout_s=20,
        )
    )


def status_callbacks(outcome: Outcome) -> dict[str, list[dict[str, str]]]:
    """Group call status callbacks by CallSid in arrival order."""
    by_sid: dict[str, list[dict[str, str]]] = defaultdict(list)
    for request in outcome.requests:
        if request.path == VOICE_STATUS_PATH:
            by_sid[request.params["CallSid"]].append(request.params)
    return by_sid


def requests_at(outcome: Outcome, path: str) -> list[ReceivedRequest]:
    return [request for request in outcome.requests if request.path == path]


# Requests and signatures -------------------------------------------------------


def test_every_signature_validates(outcome: Outcome) -> None:
    assert outcome.requests
    invalid = [r.path for r in outcome.requests if not r.signature_valid]
    assert invalid == []


def test_requests_look_like_twilio(outcome: Outcome) -> None:
    for request in outcome.requests:
        assert request.user_agent == "TwilioProxy/1.1"
        assert request.content_type == "application/x-www-form-urlencoded"
        assert request.idempotency_token
        assert request.params["AccountSid"] == outcome.options.account_sid


def test_report_has_no_errors(outcome: Outcome) -> None:
    assert outcome.report.errors == []
    assert outcome.server_errors == []
    assert outcome.report.webhooks_sent == len(outcome.requests)


def test_signature_breaks_when_params_change(outcome: Outcome) -> None:
    request = requests_at(outcome, VOICE_STATUS_PATH)[0]
    validator = RequestValidator(AUTH_TOKEN)
    url = outcome.options.url + VOICE_STATUS_PATH
    signature = validator.compute_signature(url, request.params)
    tampered = {**request.params, "CallDuration": "999"}
    assert validator.validate(url, request.params, signature)
    assert not validator.validate(url, tampered, signature)


# Call status callbacks -------------------------------------------------------------


def test_sequence_numbers_cover_each_call(outcome: Outcome) -> None:
    by_sid = status_callbacks(outcome)
    assert len(by_sid) == 6
    for sid, events in by_sid.items():
        numbers = {int(event["SequenceNumber"]) for event in events}
        assert numbers == set(range(len(numbers))), sid
        assert len(numbers) in (3, 4), sid


def test_some_calls_arrive_out_of_order(outcome: Outcome) -> None:
    out_of_order = []
    for sid, events in status_callbacks(outcome).items():
        numbers = [int(event["SequenceNumber"]) for event in events]
        if numbers != sorted(numbers):
            out_of_order.append(sid)
    assert out_of_order


def test_repeated_event_keeps_idempotency_token(outcome: Outcome) -> None:
    seen: dict[tuple[str, str], ReceivedRequest] = {}
    repeats = 0
    for request in requests_at(outcome, VOICE_STATUS_PATH):
        key = (request.params["CallSid"], request.params["SequenceNumber"])
        if key in seen:
            repeats += 1
            assert request.idempotency_token == seen[key].idempotency_token
            assert request.params == seen[key].params
        seen[key] = request
    tokens = {request.idempotency_token for request in seen.values()}
    assert repeats >= 1
    assert len(tokens) == len(seen)


def test_call_legs_follow_convention(outcome: Outcome) -> None:
    rep_phones = {phone for _, phone in outcome.options.reps}
    for events in status_callbacks(outcome).values():
        first = events[0]
        assert first["ApiVersion"] == "2010-04-01"
        assert first["CallbackSource"] == "call-progress-events"
        assert first["Caller"] == first["From"]
        assert first["Called"] == first["To"]
        assert first["Timestamp"].endswith(" GMT")
        if first["Direction"] == "outbound-dial":
            assert first["ParentCallSid"].startswith("CA")
            assert first["To"] in rep_phones
        else:
            assert first["Direction"] == "outbound-api"
            assert "ParentCallSid" not in first
            assert first["From"] in rep_phones


def test_final_events_carry_durations(outcome: Outcome) -> None:
    for events in status_callbacks(outcome).values():
        finals = [
            e for e in events if e["CallStatus"] in ("completed", "busy", "no-answer")
        ]
        assert finals
        for final in finals:
            talk = int(final["CallDuration"])
            assert int(final["Duration"]) == -(-talk // 60)
            if final["CallStatus"] == "completed":
                assert talk > 0
            else:
                assert talk == 0


def test_withheld_and_unknown_callers_sent(outcome: Outcome) -> None:
    callers = [events[0]["From"] for events in status_callbacks(outcome).values()]
    known = set(outcome.options.customers) | {p for _, p in outcome.options.reps}
    kinds = [call.caller_kind for call in outcome.report.calls]
    assert WITHHELD_NUMBER in callers
    assert kinds.count("withheld") == 1
    assert kinds.count("unknown") == 1
    assert len([c for c in callers if c not in known and c != WITHHELD_NUMBER]) == 1


# Recordings ------------------------------------------------------------------------


def test_recording_callbacks_name_parent_leg(outcome: Outcome) -> None:
    calls = {call.recording_sid: call for call in outcome.report.calls}
    callbacks = requests_at(outcome, RECORDING_STATUS_PATH)
    assert callbacks
    for request in callbacks:
        params = request.params
        call = calls[params["RecordingSid"]]
        expected_sid = call.parent_call_sid or call.call_sid
        assert params["CallSid"] == expected_sid
        assert params["RecordingChannels"] == "2"
        expected_source = "DialVerb" if call.parent_call_sid else "OutboundAPI"
        assert params["RecordingSource"] == expected_source
        assert params["RecordingStartTime"].endswith(" GMT")


def test_recording_statuses_per_call(outcome: Outcome) -> None:
    statuses: dict[str, list[str]] = defaultdict(list)
    for request in requests_at(outcome, RECORDING_STATUS_PATH):
        statuses[request.params["RecordingSid"]].append(
            request.params["RecordingStatus"]
        )
    for call in outcome.report.calls:
        if call.recording_sid is None:
            assert not call.answered
            continue
        assert statuses[call.recording_sid] == ["in-progress", call.recording_status]
    absent = [c for c in outcome.report.calls if c.recording_status == "absent"]
    assert len(absent) == 2


def test_absent_recording_has_no_media(outcome: Outcome) -> None:
    for request in requests_at(outcome, RECORDING_STATUS_PATH):
        if request.params["RecordingStatus"] == "absent":
            assert "RecordingUrl" not in request.params
            assert request.params["ErrorCode"] == "16102"


def test_recording_media_is_stereo_8khz(outcome: Outcome) -> None:
    completed = {
        r.params["RecordingSid"]: int(r.params["RecordingDuration"])
        for r in requests_at(outcome, RECORDING_STATUS_PATH)
        if r.params["RecordingStatus"] == "completed"
    }
    assert len(completed) == 2
    for sid, duration in completed.items():
        check = outcome.media[sid]
        assert check.get_status == 200
        assert check.get_content_type == "audio/x-wav"
        with wave.open(io.BytesIO(check.body)) as wav:
            assert wav.getnchannels() == 2
            assert wav.getframerate() == 8000
            assert wav.getsampwidth() == 2
            assert wav.getnframes() / 8000 == duration


def test_recording_channels_take_turns(outcome: Outcome) -> None:
    for check in outcome.media.values():
        with wave.open(io.BytesIO(check.body)) as wav:
            frames = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
        stereo = frames.reshape(-1, 2).astype(np.int32)
        rep_active = np.abs(stereo[:, 0]) > 500
        customer_active = np.abs(stereo[:, 1]) > 500
        assert rep_active.any()
        assert customer_active.any()
        assert not (rep_active & customer_active).any()


def test_media_requires_auth(outcome: Outcome) -> None:
    assert outcome.media
    for check in outcome.media.values():
        assert check.without_auth == 401
        assert check.wrong_password == 401
        assert check.unknown_sid == 404


def test_media_not_ready_first(outcome: Outcome) -> None:
    for check in outcome.media.values():
        assert check.head_statuses == [404, 200]
        assert check.head_content_type == "audio/x-wav"


def test_report_lists_fetched_recordings(outcome: Outcome) -> None:
    assert outcome.report.recordings_fetched == sorted(outcome.media)
    assert outcome.report.recordings_not_fetched == []
    assert outcome.report.media_requests["unauthorized"] == 2 * len(outcome.media)


def test_talk_seconds_match_recordings(outcome: Outcome) -> None:
    for call in outcome.report.calls:
        if call.recording_status != "completed":
            continue
        assert call.recording_sid is not None
        with wave.open(io.BytesIO(outcome.media[call.recording_sid].body)) as wav:
            assert call.talk_seconds == wav.getnframes() // 8000
        assert 1 <= len(call.sentences["rep"]) <= 2
        assert 1 <= len(call.sentences["customer"]) <= 2


# SMS -------------------------------------------------------------------------------


def test_inbound_sms_params(outcome: Outcome) -> None:
    inbound = requests_at(outcome, SMS_PATH)
    bodies = [request.params["Body"] for request in inbound]
    assert len(inbound) == 2
    assert any("👍" in body for body in bodies)
    assert any("报价单" in body for body in bodies)
    for request in inbound:
        params = request.params
        assert params["MessageSid"] == params["SmsSid"] == params["SmsMessageSid"]
        assert params["To"] == outcome.options.company_number
        assert params["SmsStatus"] == "received"
        assert params["NumMedia"] == "0"
        assert params["NumSegments"] == "1"


def test_sms_status_query_is_signed(outcome: Outcome) -> None:
    statuses = requests_at(outcome, SMS_STATUS_PATH)
    rep_emails = {email for email, _ in outcome.options.reps}
    assert statuses
    for request in statuses:
        assert request.signature_valid
        assert request.query["rep"] in rep_emails
        assert "Body" not in request.params
        assert request.params["From"] == outcome.options.company_number


def test_sms_status_sequence(outcome: Outcome) -> None:
    by_sid: dict[str, list[str]] = defaultdict(list)
    for request in requests_at(outcome, SMS_STATUS_PATH):
        by_sid[request.params["MessageSid"]].append(request.params["MessageStatus"])
    assert len(by_sid) == 2
    for statuses in by_sid.values():
        assert set(statuses) == {"queued", "sent", "delivered"}


def test_segment_count() -> None:
    assert count_sms_segments("a" * 160) == 1
    assert count_sms_segments("a" * 161) == 2
    assert count_sms_segments("€" * 80) == 1
    assert count_sms_segments("👍" * 35) == 1
    assert count_sms_segments("👍" * 36) == 2


# Report ------------------------------------------------------------------------------


def test_per_rep_counts_match_receiver(outcome: Outcome) -> None:
    rep_by_phone = {phone: email for email, phone in outcome.options.reps}
    owners = customer_owners(outcome.options)
    seen: dict[str, list[int]] = {
        email: [0, 0, 0, 0] for email in rep_by_phone.values()
    }

    for events in status_callbacks(outcome).values():
        first = events[0]
        rep = rep_by_phone.get(first["From"]) or rep_by_phone[first["To"]]
        seen[rep][0] += 1
        completed = [e for e in events if e["CallStatus"] == "completed"]
        if completed and int(completed[0]["CallDuration"]) > 0:
            seen[rep][1] += 1
            seen[rep][2] += int(completed[0]["CallDuration"])
    for request in requests_at(outcome, SMS_PATH):
        seen[owners[request.params["From"]][0]][3] += 1
    outbound = {
        r.params["MessageSid"]: r.query["rep"]
        for r in requests_at(outcome, SMS_STATUS_PATH)
    }
    for rep in outbound.values():
        seen[rep][3] += 1

    reported = {
        email: [s.calls, s.answered_calls, s.talk_seconds, s.sms]
        for email, s in outcome.report.per_rep.items()
    }
    assert reported == seen


def test_report_json_round_trips(outcome: Outcome) -> None:
    data = json.loads(outcome.report.to_json())
    assert data["calls_sent"] == 6
    assert data["sms_sent"] == 4
    assert len(data["calls"]) == 6
    assert AUTH_TOKEN not in outcome.report.to_json()


# Failures and rate -------------------------------------------------------------------


async def test_errors_recorded_and_5xx_retried(tmp_path: Path) -> None:
    outcome = await simulate(
        tmp_path,
        fail_first={SMS_PATH: [503], SMS_STATUS_PATH: [400]},
        calls=0,
        sms=2,
        rate=0,
    )
    errors = outcome.report.errors
    inbound = requests_at(outcome, SMS_PATH)
    assert [(e.path, e.status, e.attempt) for e in errors if e.path == SMS_PATH] == [
        (SMS_PATH, 503, 1)
    ]
    assert len(inbound) == 2
    assert inbound[0].idempotency_token == inbound[1].idempotency_token
    status_errors = [e for e in errors if e.path.startswith(SMS_STATUS_PATH)]
    assert [(e.status, e.attempt) for e in status_errors] == [(400, 1)]
    assert status_errors[0].body_start == "stand-in failure"


async def test_unfetched_recording_reported(tmp_path: Path) -> None:
    outcome = await simulate(
        tmp_path, download=False, calls=2, sms=0, rate=0, fetch_timeout_s=0.5
    )
    recorded = [
        call.recording_sid
        for call in outcome.report.calls
        if call.recording_status == "completed"
    ]
    assert len(recorded) == 1
    assert outcome.report.recordings_not_fetched == recorded
    assert outcome.report.recordings_fetched == []
    assert outcome.elapsed_s >= 0.5


async def test_rate_limit_spaces_requests(tmp_path: Path) -> None:
    outcome = await simulate(tmp_path, calls=0, sms=4, rate=20)
    requests = len(outcome.requests)
    assert requests >= 8
    assert outcome.elapsed_s >= (requests - 1) / 20


async def test_connection_refused_is_an_error(tmp_path: Path) -> None:
    options = SimulationOptions(
        url="http://127.0.0.1:9",
        auth_token=AUTH_TOKEN,
        work_dir=tmp_path,
        calls=0,
        sms=1,
        rate=0,
    )
    report = await run_simulation(options)
    assert [e.attempt for e in report.errors] == [1, 2]
    assert all(e.status is None for e in report.errors)


async def test_invalid_options_rejected(tmp_path: Path) -> None:
    options = SimulationOptions(
        url="http://127.0.0.1:9",
        auth_token=AUTH_TOKEN,
        work_dir=tmp_path,
        calls=1,
        unknown_callers=1,
        withheld_callers=1,
    )
    with pytest.raises(ValueError, match="must not exceed calls"):
        await run_simulation(options)


# Command line ------------------------------------------------------------------------


def test_cli_requires_auth_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOUCHLINE_TWILIO_AUTH_TOKEN", raising=False)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--url", "http://127.0.0.1:9"])
    assert main_from_args(args, None) == 2


def test_cli_defaults(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--url",
            "http://127.0.0.1:9",
            "--calls",
            "40",
            "--report",
            str(tmp_path / "r.json"),
        ]
    )
    assert args.calls == 40
    assert args.rate == 5.0
    assert args.report == tmp_path / "r.json"
    assert args.unknown_callers is None


# Routing and bridge TwiML requests ---------------------------------------------------


def test_inbound_calls_ask_for_routing(outcome: Outcome) -> None:
    inbound = requests_at(outcome, "/twilio/voice/inbound")
    parents = {
        call.parent_call_sid
        for call in outcome.report.calls
        if call.direction == "inbound"
    }

    assert {request.params["CallSid"] for request in inbound} == parents
    for request in inbound:
        assert request.params["Direction"] == "inbound"
        assert request.params["To"] == outcome.options.company_number


def test_outbound_calls_ask_for_bridge(outcome: Outcome) -> None:
    bridges = [r for r in outcome.requests if r.path == "/twilio/voice/bridge"]
    outbound = {
        call.call_sid: call.customer_phone
        for call in outcome.report.calls
        if call.direction == "outbound"
    }

    assert len(bridges) == len(outbound)
    for request in bridges:
        assert request.query["to"] == outbound[request.params["CallSid"]]
        assert request.params["Direction"] == "outbound-api"
        assert request.params["From"] == outcome.options.company_number


def test_routing_reported_per_call(outcome: Outcome) -> None:
    for call in outcome.report.calls:
        # The stand-in server answers every request with an empty <Response/>.
        assert call.routing == ["empty"], call.call_sid


@pytest.mark.parametrize(
    ("body", "summary"),
    [
        (
            "<Response><Dial><Number>+1415</Number><Client>chen</Client></Dial></Response>",
            "dial +1415 chen",
        ),
        ("<Response><Say>Hi</Say><Record/><Hangup/></Response>", "voicemail"),
        ("<Response><Hangup/></Response>", "hangup"),
        ("<Response/>", "empty"),
        ("not xml", "invalid TwiML"),
    ],
)
def test_describe_twiml(body: str, summary: str) -> None:
    assert describe_twiml(body) == summary


# Click-to-call against a real server --------------------------------------------------


@dataclass(frozen=True)
class LiveServer:
    url: str
    api_port: int
    database: Database


@pytest.fixture
async def live_server(
    tmp_path: Path, database_url: str, password_hash: str
) -> AsyncIterator[LiveServer]:
    """Serve Touchline with its twilio_api_url on a port the simulator will use."""
    port, api_port = free_port(), free_port()
    settings = make_settings(
        tmp_path / "data",
        database_url,
        public_url=f"http://127.0.0.1:{port}",
        twilio_api_url=f"http://127.0.0.1:{api_port}",
        smtp_port=0,
    )
    runner = web.AppRunner(create_app(settings, run_worker=True))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    database = Database(settings.database_url)
    async with transaction(database.writes) as session:
        await load_demo(session, settings.default_region, password_hash)
    try:
        yield LiveServer(settings.public_url, api_port, database)
    finally:
        await database.dispose()
        await runner.cleanup()


async def rep_token(database: Database, email: str) -> str:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, email)
    return secret


def click_options(server: LiveServer, tmp_path: Path, token: str) -> SimulationOptions:
    return SimulationOptions(
        url=server.url,
        auth_token=SERVER_AUTH_TOKEN,
        account_sid=SERVER_ACCOUNT_SID,
        work_dir=tmp_path / "audio",
        calls=0,
        sms=0,
        rate=0,
        click_to_calls=2,
        api_token=token,
        twilio_api_port=server.api_port,
        fetch_timeout_s=30,
    )


async def test_click_to_call_end_to_end(
    live_server: LiveServer, tmp_path: Path
) -> None:
    ana_email, ana_phone = DEFAULT_REPS[0]
    token = await rep_token(live_server.database, ana_email)

    report = await run_simulation(click_options(live_server, tmp_path, token))

    assert report.click_to_call_problems == []
    assert report.errors == []
    assert len(report.click_to_calls) == 2
    for record in report.click_to_calls:
        request = record.api_request
        assert record.rep_email == ana_email
        assert request["To"] == [ana_phone]
        assert request["StatusCallbackEvent"] == [
            "initiated",
            "ringing",
            "answered",
            "completed",
        ]
        assert request["RecordingChannels"] == ["dual"]
        assert record.routing == [f"dial {record.customer_phone}"]
        assert record.talk_seconds > 0
        assert record.recording_sid in report.recordings_fetched
        touches = await call_touches(live_server.database, record)
        assert touches == [(ana_email, "outbound", record.talk_seconds)]
    assert report.per_rep[ana_email].calls == 2
    assert "2/2 click-to-calls passed" in format_summary(report)


async def call_touches(
    database: Database, record: ClickToCallRecord
) -> list[tuple[str, str, int | None]]:
    """Return (rep, direction, talk seconds) of each touch of the record's call."""
    async with database.reads() as session:
        rows = await session.execute(
            select(User.email, Activity.direction, Call.talk_seconds)
            .join(Activity, Activity.id == Call.activity_id)
            .join(User, User.id == Activity.rep_id)
            .where(Call.call_sid.in_([record.call_sid, record.child_call_sid]))
        )
        legs = await session.scalar(
            select(func.count()).where(CallLeg.call_sid == record.child_call_sid)
        )
    assert legs == 1
    return [(email, direction, talk) for email, direction, talk in rows]


async def test_click_to_call_service_elsewhere_reported(
    live_server: LiveServer, tmp_path: Path
) -> None:
    token = await rep_token(live_server.database, DEFAULT_REPS[0][0])
    options = dataclasses.replace(
        click_options(live_server, tmp_path, token),
        click_to_calls=1,
        twilio_api_port=free_port(),
    )

    report = await run_simulation(options)

    [problem] = report.click_to_call_problems
    assert problem.startswith("POST /api/v1/calls returned 502"), problem


async def test_click_to_call_bad_token_reported(
    live_server: LiveServer, tmp_path: Path
) -> None:
    options = dataclasses.replace(
        click_options(live_server, tmp_path, "tl_not-a-token"), click_to_calls=1
    )

    report = await run_simulation(options)

    [problem] = report.click_to_call_problems
    assert problem.startswith("GET /api/v1/customers returned 401"), problem


def test_request_problems_name_field() -> None:
    options = SimulationOptions(
        url="https://crm.example.test", auth_token="t", work_dir=Path(".")
    )
    form = MultiDict(
        [
            ("To", "+14155550111"),
            ("From", options.company_number),
            ("Url", "https://crm.example.test/twilio/voice/bridge?to=%2B14155550201"),
            ("Method", "POST"),
            ("Timeout", "20"),
            ("StatusCallback", "https://crm.example.test/twilio/voice/status"),
            ("StatusCallbackMethod", "POST"),
            *[
                ("StatusCallbackEvent", event)
                for event in ("initiated", "ringing", "answered")
            ],
            ("Record", "true"),
            ("RecordingChannels", "mono"),
            (
                "RecordingStatusCallback",
                "https://crm.example.test/twilio/voice/recording",
            ),
            ("RecordingStatusCallbackMethod", "POST"),
            *[
                ("RecordingStatusCallbackEvent", event)
                for event in ("in-progress", "completed", "absent")
            ],
        ]
    )

    problems = request_problems(form, options, "+14155550111", "+14155550201")

    assert len(problems) == 2
    assert problems[0].startswith("REST request StatusCallbackEvent is")
    assert problems[1].startswith("REST request RecordingChannels is ['mono']")


async def test_twilio_api_stand_in_checks_auth(tmp_path: Path) -> None:
    options = SimulationOptions(
        url="http://127.0.0.1:9", auth_token=AUTH_TOKEN, work_dir=tmp_path
    )
    api = TwilioApiServer(options)
    await api.start()
    path = f"{api.base_url}/2010-04-01/Accounts/{options.account_sid}/Calls.json"
    good = basic_auth(options.account_sid, AUTH_TOKEN)
    wrong = basic_auth(options.account_sid, "wrong-token")
    form = {"To": "+14155550111", "From": "+14155550100", "Url": "https://x.test/"}
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(path, data=form, headers=wrong) as response:
                unauthorized = response.status
            async with session.post(
                path, data={"To": "+14155550111"}, headers=good
            ) as response:
                missing = response.status, (await response.json())["message"]
            async with session.post(path, data=form, headers=good) as response:
                created = response.status, (await response.json())["sid"]
    finally:
        await api.stop()

    assert unauthorized == 401
    assert missing == (400, "Missing required parameter From")
    assert created[0] == 201
    assert list(api.calls) == [created[1]]
    assert api.calls[created[1]].form["Url"] == "https://x.test/"
    assert api.rejected == 2


def test_cli_click_to_call_needs_api_port() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--url", "http://127.0.0.1:9", "--api-token", "tl_x"])

    status = main_from_args(args, AUTH_TOKEN, None, "https://api.twilio.com")

    assert status == 2


def test_loopback_port_of_api_url() -> None:
    assert loopback_port("http://127.0.0.1:8089") == 8089
    assert loopback_port("http://localhost:8089") == 8089
    assert loopback_port("https://api.twilio.com") is None
    assert loopback_port(None) is None
