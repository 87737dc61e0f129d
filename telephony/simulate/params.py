"""Twilio webhook paths and the form parameters of each simulated webhook."""

import email.utils
import math
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta

from telephony.simulate.options import SimulationOptions
from telephony.simulate.plan import CallPlan, MessagePlan

VOICE_STATUS_PATH = "/twilio/voice/status"
RECORDING_STATUS_PATH = "/twilio/voice/recording"
SMS_PATH = "/twilio/sms"
SMS_STATUS_PATH = "/twilio/sms/status"

API_VERSION = "2010-04-01"
# Twilio error codes on an absent recording: 16102 means the audio was silent.
ABSENT_RECORDING_ERROR_CODE = "16102"


@dataclass(frozen=True)
class CallEvent:
    status: str
    sequence_number: int
    at: datetime


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


def inbound_sms_params(
    options: SimulationOptions, plan: MessagePlan, media_urls: tuple[str, ...] = ()
) -> dict[str, str]:
    """Build an inbound SMS, or an MMS with one `MediaUrl{N}` per media URL."""
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
        "NumMedia": str(len(media_urls)),
        "SmsStatus": "received",
        **_country_params(("From",), plan.customer_phone),
        **_country_params(("To",), options.company_number),
    }
    if plan.messaging_service_sid:
        params["MessagingServiceSid"] = plan.messaging_service_sid
    for position, (url, media) in enumerate(zip(media_urls, plan.media, strict=True)):
        params[f"MediaUrl{position}"] = url
        params[f"MediaContentType{position}"] = media.content_type
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
