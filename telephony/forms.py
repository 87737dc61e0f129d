"""Reading Twilio's form parameters, with errors that name the field.

Values are checked against what the database can hold and what Twilio can
send, so that a signed but impossible event gets a 400 here rather than a
5xx from the database, which would ask Twilio to retry it.
"""

from __future__ import annotations

import email.utils
import functools
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from multidict import MultiDictProxy

from capture.errors import InvalidInput

# A 32-bit signed integer, the column type of counters and durations.
MAX_INTEGER = 2**31 - 1
MAX_DIGITS = 12
DIGITS = re.compile(r"-?[0-9]+")
# A Twilio SID: two capital letters and 32 hexadecimal digits.
SID = re.compile(r"[A-Z]{2}[0-9a-fA-F]{32}")
# Control characters other than tab, line feed and carriage return, and the
# Unicode line and paragraph separators.
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
# Characters that `single` lets through but a party may not contain.
LINE_BREAK_OR_TAB = re.compile(r"[\t\n\r]")
# Timestamps outside these years are not Twilio's and break date arithmetic.
EARLIEST_YEAR = 2000
LATEST_YEAR = 2999


def fields(form: Mapping[str, str]) -> Mapping[str, str]:
    """Return the form as a plain dict when no field repeats, else the form.

    Reading a field from a dict is cheaper than asking the multidict on every
    read whether it repeats; with a repeat, `single` still finds it.
    """
    plain = dict(form)
    return plain if len(plain) == len(form) else form


def single(form: Mapping[str, str], name: str) -> str:
    """Return the field's one value ('' when absent); a repeated field is invalid."""
    if isinstance(form, MultiDictProxy) and len(form.getall(name, ())) > 1:
        raise InvalidInput(f"{name} is given more than once", field=name)
    value = form.get(name, "")
    if CONTROL.search(value):
        raise InvalidInput(f"{name} contains control characters", field=name)
    return value


def required(form: Mapping[str, str], name: str, max_length: int = 320) -> str:
    value = single(form, name).strip()
    if not value:
        raise InvalidInput(f"{name} is missing", field=name)
    if len(value) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters", field=name)
    return value


def party(form: Mapping[str, str], name: str) -> str:
    """Read `From` or `To`: a number, `client:` or `sip:` party, on one line."""
    value = required(form, name)
    if LINE_BREAK_OR_TAB.search(value):
        raise InvalidInput(f"{name} contains control characters", field=name)
    return value


def optional(form: Mapping[str, str], name: str, max_length: int = 320) -> str | None:
    value = single(form, name).strip()
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
    if not value.startswith(prefix) or not SID.fullmatch(value):
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
    form: Mapping[str, str],
    name: str,
    *,
    default: int | None = None,
    minimum: int = 0,
    maximum: int = MAX_INTEGER,
) -> int | None:
    value = single(form, name).strip()
    if not value:
        return default
    # The length check comes first: int() of thousands of digits is slow and
    # raises for more than 4300 of them.
    if len(value) > MAX_DIGITS or not DIGITS.fullmatch(value):
        raise InvalidInput(f"{name} {value[:40]!r} is not an integer", field=name)
    number = int(value)
    if not minimum <= number <= maximum:
        raise InvalidInput(
            f"{name} {number} is outside {minimum}..{maximum}", field=name
        )
    return number


def timestamp(form: Mapping[str, str], name: str) -> datetime:
    """Read an RFC 2822 timestamp such as Twilio's `Timestamp`, in UTC.

    A missing timestamp reads as the current time.
    """
    value = single(form, name).strip()
    if not value:
        return datetime.now(UTC)
    return _parse_timestamp(value, name)


# The events of a call arrive within seconds of each other and share their
# timestamps, so parsed values are kept; datetimes are immutable.
@functools.lru_cache(maxsize=4096)
def _parse_timestamp(value: str, name: str) -> datetime:
    try:
        moment = email.utils.parsedate_to_datetime(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    except (TypeError, ValueError, OverflowError):
        raise InvalidInput(
            f"{name} {value!r} is not an RFC 2822 date", field=name
        ) from None
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise InvalidInput(
            f"{name} {value!r} is outside {EARLIEST_YEAR}..{LATEST_YEAR}", field=name
        )
    return moment
