"""SimulationReport, its records, its assembly from a run and its summary line."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from telephony.simulate.click_to_call import ClickToCallRecord
from telephony.simulate.options import SimulationOptions
from telephony.simulate.plan import CallPlan, MessagePlan
from telephony.simulate.sender import WebhookError
from telephony.speech import CUSTOMER_CHANNEL, REP_CHANNEL

if TYPE_CHECKING:
    from telephony.simulate.run import _Run


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
    # What each TwiML answer did: "dial" and whom, "voicemail", "hangup".
    routing: list[str] = field(default_factory=list)


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
    mms_sent: int
    webhooks_sent: int
    elapsed_s: float
    per_rep: dict[str, RepSummary]
    calls: list[CallRecord]
    messages: list[MessageRecord]
    errors: list[WebhookError]
    recordings_fetched: list[str]
    recordings_not_fetched: list[str]
    media_requests: dict[str, int]
    mms_media_not_fetched: list[str]
    click_to_calls: list[ClickToCallRecord] = field(default_factory=list)

    @property
    def click_to_call_problems(self) -> list[str]:
        return [problem for call in self.click_to_calls for problem in call.problems]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)


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
    for record in run.click_to_calls:
        if record.rep_email is None or record.child_call_sid is None:
            continue
        summary = per_rep[record.rep_email]
        summary.calls += 1
        if record.talk_seconds > 0:
            summary.answered_calls += 1
            summary.talk_seconds += record.talk_seconds

    return SimulationReport(
        url=options.url,
        seed=options.seed,
        calls_sent=len(calls) + sum(1 for r in run.click_to_calls if r.child_call_sid),
        sms_sent=len(messages),
        mms_sent=sum(1 for message in messages if message.media),
        webhooks_sent=run.sender.requests_sent,
        elapsed_s=round(elapsed_s, 3),
        per_rep=per_rep,
        calls=[_call_record(plan, run.statuses_sent, run.routing) for plan in calls],
        messages=[_message_record(plan, run.statuses_sent) for plan in messages],
        errors=run.sender.errors,
        recordings_fetched=sorted(run.media.fetched),
        recordings_not_fetched=run.media.not_fetched,
        media_requests=dict(run.media.stats),
        mms_media_not_fetched=run.media.media_not_fetched,
        click_to_calls=run.click_to_calls,
    )


def _call_record(
    plan: CallPlan,
    statuses_sent: dict[str, list[str]],
    routing: dict[str, list[str]],
) -> CallRecord:
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
        routing=routing.get(plan.call_sid, []),
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
    summary = (
        f"sent {report.calls_sent} calls ({answered} answered, {talk} talk seconds) "
        f"and {report.sms_sent} SMS ({report.mms_sent} of them MMS) in "
        f"{report.webhooks_sent} webhooks over "
        f"{report.elapsed_s:.1f} s; {len(report.errors)} webhook errors; "
        f"{fetched}/{expected} recordings fetched"
    )
    if report.click_to_calls:
        passed = sum(not call.problems for call in report.click_to_calls)
        summary += f"; {passed}/{len(report.click_to_calls)} click-to-calls passed"
    return summary
