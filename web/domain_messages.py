"""Translations of the domain layer's error messages for pages.

`capture` builds English messages with values in them ("customer 7 not
found") without regard to language, and the API sends them unchanged.
Before a page shows one, `translate_message` matches it against the
patterns below and fills the translated sentence with the same values. A
message that matches no pattern is looked up whole in the catalogue, and
shown as written when the catalogue lacks it too.
"""

from __future__ import annotations

import re

from web.i18n import gettext
from web.i18n import gettext_noop as N_

# NOTE: each pattern mirrors a message written in capture/ (accounts.py,
# passwords.py, queries.py, chain.py, click_to_call.py), in
# reports/schedules.py and reports/schedule_delivery.py, or in
# telephony/rest.py; a reworded message there falls back to English.
PATTERNS = (
    (
        re.compile(r"(?P<field>\w+) is shorter than (?P<count>\d+) characters"),
        N_("%(field)s is shorter than %(count)s characters"),
    ),
    (
        re.compile(r"(?P<field>\w+) is longer than (?P<count>\d+) characters"),
        N_("%(field)s is longer than %(count)s characters"),
    ),
    (
        re.compile(r"(?P<field>\w+) contains control characters"),
        N_("%(field)s contains control characters"),
    ),
    (
        re.compile(r"customer (?P<id>\d+) not found"),
        N_("customer %(id)s not found"),
    ),
    (re.compile(r"call (?P<id>'.*') not found"), N_("call %(id)s not found")),
    (
        re.compile(r"recording (?P<id>'.*') not found"),
        N_("recording %(id)s not found"),
    ),
    (re.compile(r"user (?P<id>\d+) not found"), N_("user %(id)s not found")),
    (
        re.compile(r"a user with email (?P<email>.+) exists"),
        N_("a user with email %(email)s exists"),
    ),
    (
        re.compile(r"email (?P<value>'.*') is not an email address"),
        N_("email %(value)s is not an email address"),
    ),
    (
        re.compile(r"phone (?P<value>'.*') is not a valid number"),
        N_("phone %(value)s is not a valid number"),
    ),
    (
        re.compile(r"role (?P<value>'.*') is not one of (?P<choices>.+)"),
        N_("role %(value)s is not one of %(choices)s"),
    ),
    (
        re.compile(r"(?P<field>\w+) (?P<value>'.*') is not one of (?P<choices>.+)"),
        N_("%(field)s %(value)s is not one of %(choices)s"),
    ),
    (
        re.compile(r"(?P<field>\w+) (?P<value>'.*'|\d+) not found"),
        N_("%(field)s %(value)s not found"),
    ),
    (re.compile(r"(?P<field>\w+) is missing"), N_("%(field)s is missing")),
    (
        re.compile(
            r"(?P<field>\w+) (?P<value>'.*') is unknown; use one of (?P<choices>.+)"
        ),
        N_("%(field)s %(value)s is unknown; use one of %(choices)s"),
    ),
    (
        re.compile(
            r"customer (?P<id>\d+) already has open plan (?P<plan>\d+); "
            r"complete it first"
        ),
        N_("customer %(id)s already has open plan %(plan)s; complete it first"),
    ),
    (re.compile(r"window or due_at is missing"), N_("window or due_at is missing")),
    (
        re.compile(r"give a window or due_at, not both"),
        N_("give a window or due_at, not both"),
    ),
    (
        re.compile(
            r"due_at (?P<value>'.*') is not a date and time \(YYYY-MM-DDTHH:MM\)"
        ),
        N_("due_at %(value)s is not a date and time (YYYY-MM-DDTHH:MM)"),
    ),
    (
        re.compile(
            r"(?P<email>\S+) is the last active admin; make another user admin first"
        ),
        N_("%(email)s is the last active admin; make another user admin first"),
    ),
    (
        re.compile(r"customer (?P<id>\d+) has no phone number"),
        N_("customer %(id)s has no phone number"),
    ),
    (
        re.compile(r"(?P<field>\w+) is missing; use one of (?P<choices>.+)"),
        N_("%(field)s is missing; use one of %(choices)s"),
    ),
    (
        re.compile(r"(?P<field>\w+) (?P<value>'.*') is not an id"),
        N_("%(field)s %(value)s is not an id"),
    ),
    (
        re.compile(
            r"time (?P<value>'.*') is not a time of day: give HH:MM from 00:00 "
            r"to 23:59"
        ),
        N_("time %(value)s is not a time of day: give HH:MM from 00:00 to 23:59"),
    ),
    (
        re.compile(r"weekday is for weekly schedules only"),
        N_("weekday is for weekly schedules only"),
    ),
    (
        re.compile(
            r"rep filters the activities and calls reports only, not (?P<report>\w+)"
        ),
        N_("rep filters the activities and calls reports only, not %(report)s"),
    ),
    (
        re.compile(r"email delivery is off: set export_smtp_relay first"),
        N_("email delivery is off: set export_smtp_relay first"),
    ),
    (
        re.compile(
            r"target (?P<value>'.*') is outside the export folder: give a "
            r"relative folder such as daily/activities, without '\.\.' or a "
            r"leading '/'"
        ),
        N_(
            "target %(value)s is outside the export folder: give a relative "
            "folder such as daily/activities, without '..' or a leading '/'"
        ),
    ),
    (
        re.compile(
            r"target (?P<value>'.*') is not a folder name: use up to "
            r"(?P<count>\d+) names joined by '/', each of letters, digits, "
            r"'\.', '-' and '_' \(up to 64 characters, not starting with '\.'\)"
        ),
        N_(
            "target %(value)s is not a folder name: use up to %(count)s names "
            "joined by '/', each of letters, digits, '.', '-' and '_' (up to 64 "
            "characters, not starting with '.')"
        ),
    ),
    (
        re.compile(r"target is missing: give a folder name"),
        N_("target is missing: give a folder name"),
    ),
    (
        re.compile(r"target (?P<value>'.*') is not an email address"),
        N_("target %(value)s is not an email address"),
    ),
    (
        re.compile(r"Twilio rejected the call: (?P<reason>.+)"),
        N_("Twilio rejected the call: %(reason)s"),
    ),
    (
        re.compile(r"request to Twilio's API failed: (?P<reason>.+)"),
        N_("request to Twilio's API failed: %(reason)s"),
    ),
)


def translate_message(message: str) -> str:
    """Return `message` in the current request's language where known."""
    for pattern, template in PATTERNS:
        matched = pattern.fullmatch(message)
        if matched is not None:
            return gettext(template) % matched.groupdict()
    return gettext(message)
