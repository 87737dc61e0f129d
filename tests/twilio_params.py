"""Twilio webhook parameter sets, as Twilio sends them, for tests."""

from __future__ import annotations

import email.utils
import uuid
from datetime import UTC, datetime, timedelta

from conftest import ACCOUNT_SID

CALL_START = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)


def new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def call_status(
    call_sid: str,
    status: str,
    sequence: int,
    *,
    caller: str,
    called: str,
    direction: str = "outbound-api",
    duration: int | None = None,
    parent: str | None = None,
    at: datetime | None = None,
) -> dict[str, str]:
    moment = at or CALL_START + timedelta(seconds=10 * sequence)
    params = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": status,
        "CallbackSource": "call-progress-events",
        "Called": called,
        "Caller": caller,
        "Direction": direction,
        "From": caller,
        "To": called,
        "SequenceNumber": str(sequence),
        "Timestamp": email.utils.format_datetime(moment, usegmt=True),
    }
    if duration is not None:
        params["CallDuration"] = str(duration)
        params["Duration"] = str(max(1, -(-duration // 60)))
    if parent:
        params["ParentCallSid"] = parent
    return params


def recording_status(
    call_sid: str,
    recording_sid: str,
    status: str,
    *,
    url: str = "",
    duration: int = 0,
    channels: int = 2,
) -> dict[str, str]:
    params = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid,
        "RecordingSid": recording_sid,
        "RecordingStatus": status,
        "RecordingChannels": str(channels),
        "RecordingSource": "OutboundAPI",
        "RecordingStartTime": email.utils.format_datetime(CALL_START, usegmt=True),
        "RecordingTrack": "both",
    }
    if url:
        params["RecordingUrl"] = url
    if status == "completed":
        params["RecordingDuration"] = str(duration)
    return params


def inbound_sms(
    message_sid: str, sender: str, recipient: str, body: str
) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": sender,
        "To": recipient,
        "MessageSid": message_sid,
        "SmsMessageSid": message_sid,
        "SmsSid": message_sid,
        "SmsStatus": "received",
        "NumMedia": "0",
        "NumSegments": "1",
    }


def sms_status(
    message_sid: str, status: str, sender: str, recipient: str
) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "From": sender,
        "To": recipient,
        "MessageSid": message_sid,
        "MessageStatus": status,
        "SmsSid": message_sid,
        "SmsStatus": status,
    }


def inbound_mms(
    message_sid: str,
    sender: str,
    recipient: str,
    body: str,
    media: list[tuple[str, str]],
) -> dict[str, str]:
    """An inbound MMS whose `media` are (MediaUrl, MediaContentType) pairs."""
    params = inbound_sms(message_sid, sender, recipient, body)
    params["NumMedia"] = str(len(media))
    for position, (url, content_type) in enumerate(media):
        params[f"MediaUrl{position}"] = url
        params[f"MediaContentType{position}"] = content_type
    return params
