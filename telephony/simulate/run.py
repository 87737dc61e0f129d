"""run_simulation, which synthesises recordings and sends every webhook."""

import asyncio
import logging
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from telephony.simulate.click_to_call import ClickToCallRecord, run_click_to_calls
from telephony.simulate.media import RecordingServer
from telephony.simulate.options import SimulationOptions, validate_options
from telephony.simulate.params import (
    RECORDING_STATUS_PATH,
    SMS_PATH,
    VOICE_STATUS_PATH,
    call_events,
    call_status_params,
    inbound_sms_params,
    recording_params,
    sms_status_params,
    sms_status_path,
)
from telephony.simulate.plan import (
    OUTBOUND_SMS_STATUSES,
    CallPlan,
    MessagePlan,
    plan_calls,
    plan_messages,
    plan_mms,
)
from telephony.simulate.report import SimulationReport, _build_report
from telephony.simulate.routing import route_call
from telephony.simulate.sender import WebhookSender
from telephony.simulate.twilio_api import TwilioApiServer
from telephony.speech import SpeechSynthesizer, check_speech_tools

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 30.0


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
    # What each TwiML answer of a call did, by the call's stored CallSid.
    routing: dict[str, list[str]] = field(default_factory=dict)
    click_to_calls: list[ClickToCallRecord] = field(default_factory=list)


async def run_simulation(
    options: SimulationOptions, progress: Callable[[str], None] | None = None
) -> SimulationReport:
    """Send the simulated calls and messages and return what was sent.

    `progress` receives a one-line summary after every 10 calls and at the end.
    Raises ValueError for invalid options and RuntimeError when espeak-ng or
    sox is missing or fails. Webhook failures do not raise: they are in
    `SimulationReport.errors`, and click-to-call mismatches in the
    `problems` of `SimulationReport.click_to_calls`.
    """
    validate_options(options)
    started = time.monotonic()
    rng = random.Random(options.seed)
    calls = plan_calls(options, rng)
    messages = plan_messages(options, rng) + plan_mms(options)
    logger.info(
        "simulating %d calls and %d messages against %s",
        len(calls),
        len(messages),
        options.url,
    )
    await _synthesize_recordings(options, calls)
    if options.click_to_calls:
        check_speech_tools()

    media = RecordingServer(options)
    api = TwilioApiServer(options)
    await media.start()
    try:
        if options.click_to_calls:
            await api.start()
        for plan in calls:
            if plan.recording_status == "completed" and plan.recording_sid:
                media.add(plan.recording_sid, _wav_path(options, plan))
        for message in messages:
            for item in message.media:
                media.add_media(item.media_sid, item.content_type, item.body)
        run = await _send_everything(options, media, api, calls, messages, progress)
        await media.wait_until_fetched(options.fetch_timeout_s)
    finally:
        await api.stop()
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
    api: TwilioApiServer,
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
        if options.click_to_calls:
            run.click_to_calls = await run_click_to_calls(run, session, api)
    return run


async def _send_call(run: _Run, plan: CallPlan) -> None:
    async with run.slots:
        run.routing[plan.call_sid] = await route_call(run, plan)
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
            urls = tuple(
                run.media.message_media_url(plan.message_sid, item.media_sid)
                for item in plan.media
            )
            params = inbound_sms_params(run.options, plan, urls)
            sent.append("received")
            accepted = await run.sender.send(
                SMS_PATH, params, str(uuid.uuid4()), plan.message_sid, "received"
            )
            # Only a server that accepted the message will fetch its media.
            if accepted:
                for item in plan.media:
                    run.media.expect_fetch(item.media_sid)
            return

        path = sms_status_path(plan.rep_email)
        tokens = [str(uuid.uuid4()) for _ in OUTBOUND_SMS_STATUSES]
        for index in plan.delivery_order:
            status = OUTBOUND_SMS_STATUSES[index]
            params = sms_status_params(run.options, plan, status)
            sent.append(status)
            await run.sender.send(path, params, tokens[index], plan.message_sid, status)
