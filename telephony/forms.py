"""Reading Twilio's form parameters, with errors that name the field."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC, datetime

from capture.errors import InvalidInput


def required(form: Mapping[str, str], name: str, max_length: int = 320) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise InvalidInput(f"{name} is missing", field=name)
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", field=name)
    return value


def optional(form: Mapping[str, str], name: str, max_length: int = 320) -> str | None:
    value = form.get(name, "").strip()
    if not value:
        return None
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", field=name)
    return value


def sid(
    form: Mapping[str, str], name: str, prefix: str, *, needed: bool = True
) -> str | None:
    """Read a Twilio SID such as CallSid (CA followed by 32 hex digits)."""
    value = required(form, name, 64) if needed else optional(form, name, 64)
    if value is None:
        return None
    if not value.startswith(prefix) or not value[2:].isalnum():
        raise InvalidInput(f"{name} {value!r} is not a {prefix} SID", field=name)
    return value


def choice(form: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = required(form, name, 32)
    if value not in allowed:
        raise InvalidInput(
            f"{name} {value!r} is not one of {', '.join(allowed)}", field=name
        )
    return value


def integer(
    form: Mapping[str, str], name: str, *, default: int | None = None, minimum: int = 0
) -> int | None:
    value = form.get(name, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(f"{name} {value!r} is not an integer", field=name) from None
    if number < minimum:
        raise InvalidInput(f"{name} {number} is below {minimum}", field=name)
    return number


def timestamp(form: Mapping[str, str], name: str, fallback: datetime) -> datetime:
    """Read an RFC 2822 timestamp such as Twilio's `Timestamp`, in UTC."""
    value = form.get(name, "").strip()
    if not value:
        return fallback
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"{name} {value!r} is not an RFC 2822 date", field=name
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
