"""JSON shapes of the API; times as ISO 8601 with the organisation's offset."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from capture.models import (
    Activity,
    Call,
    Customer,
    Email,
    Message,
    Recording,
    Transcript,
)
from capture.queries import CallDetail


def when(moment: datetime | None, zone: ZoneInfo) -> str | None:
    return None if moment is None else moment.astimezone(zone).isoformat()


def customer_json(customer: Customer, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": customer.id,
        "name": customer.name,
        "status": customer.status,
        "owner": customer.owner.email if customer.owner else None,
        "created_at": when(customer.created_at, zone),
        "phones": [p.value for p in customer.contact_points if p.kind == "phone"],
        "emails": [p.value for p in customer.contact_points if p.kind == "email"],
    }


def call_json(call: Call, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "call_sid": call.call_sid,
        "parent_call_sid": call.parent_call_sid,
        "status": call.status,
        "twilio_direction": call.twilio_direction,
        "started_at": when(call.started_at, zone),
        "answered_at": when(call.answered_at, zone),
        "ended_at": when(call.ended_at, zone),
        "talk_seconds": call.talk_seconds,
    }


def message_json(message: Message) -> dict[str, Any]:
    return {
        "message_sid": message.message_sid,
        "status": message.status,
        "body": message.body,
        "num_segments": message.num_segments,
        "num_media": message.num_media,
        "media": [
            {
                "id": media.id,
                "content_type": media.content_type,
                "status": media.status,
                "url": f"/media/{media.id}" if media.status == "stored" else None,
            }
            for media in message.media
        ],
    }


def activity_json(activity: Activity, zone: ZoneInfo) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": activity.id,
        "channel": activity.channel,
        "direction": activity.direction,
        "occurred_at": when(activity.occurred_at, zone),
        "customer_id": activity.customer_id,
        "rep": activity.rep.email if activity.rep else None,
        "plan_id": activity.plan_id,
        "automatic": activity.automatic,
        "summary": activity.summary,
    }
    if activity.call is not None:
        data["call"] = call_json(activity.call, zone)
    if activity.message is not None:
        data["message"] = message_json(activity.message)
    if activity.email is not None:
        data["email"] = email_json(activity.email)
    return data


def email_json(email: Email) -> dict[str, Any]:
    return {
        "id": email.id,
        "message_id": email.message_id,
        "thread_key": email.thread_key,
        "subject": email.subject,
        "from": email.from_address,
        "to": email.to_addresses,
        "cc": email.cc_addresses,
        "text": email.text_body,
        "automatic_reason": email.automatic_reason,
        "forwarded_by": email.forwarded_by,
        "attachments": [
            {
                "id": attachment.id,
                "filename": attachment.filename,
                "content_type": attachment.content_type,
                "size_bytes": attachment.size_bytes,
                "url": f"/emails/{email.id}/attachments/{attachment.id}",
            }
            for attachment in email.attachments
        ],
    }


def recording_json(recording: Recording) -> dict[str, Any]:
    stored = recording.status == "stored"
    return {
        "recording_sid": recording.recording_sid,
        "status": recording.status,
        "duration_seconds": recording.duration_seconds,
        "channels": recording.channels,
        "url": f"/recordings/{recording.recording_sid}.wav" if stored else None,
        "error": recording.error,
    }


def transcript_json(transcript: Transcript) -> dict[str, Any]:
    return {
        "engine": transcript.engine,
        "model": transcript.model,
        "language": transcript.language,
        "text": transcript.text,
        "segments": [
            {
                "speaker": segment.speaker,
                "channel": segment.channel,
                "start": segment.start_ms / 1000,
                "end": segment.end_ms / 1000,
                "text": segment.text,
                "confidence": round(segment.confidence, 3),
            }
            for segment in transcript.segments
        ],
    }


def call_detail_json(detail: CallDetail, zone: ZoneInfo) -> dict[str, Any]:
    data = call_json(detail.call, zone)
    activity = detail.activity
    data["activity_id"] = activity.id
    data["direction"] = activity.direction
    data["customer_id"] = activity.customer_id
    data["rep"] = activity.rep.email if activity.rep else None
    # True when the viewer's role may not play recordings or read transcripts.
    data["media_hidden"] = detail.media_hidden
    data["recordings"] = [recording_json(r) for r in detail.recordings]
    transcript = detail.transcript
    data["transcript"] = transcript_json(transcript) if transcript else None
    job = detail.transcription_job
    data["transcription"] = (
        {"status": job.status, "error": job.last_error} if job is not None else None
    )
    return data
