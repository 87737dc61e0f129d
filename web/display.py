"""Display forms of stored values that pages share: phone numbers and parties."""

from __future__ import annotations

from collections.abc import Callable

import phonenumbers

from capture.identity import WITHHELD_NUMBERS, WITHHELD_WORDS


def phone_formatter(default_region: str) -> Callable[[str | None], str]:
    """Return a template filter that shows an E.164 number as people write it.

    Numbers of `default_region` get the national format ("(415) 555-0201");
    others the international one ("+44 20 7946 0000"). A value that is not
    a phone number (`client:chen`, `sip:...`, `anonymous`) is shown as stored.
    """

    def format_phone(value: str | None) -> str:
        if not value:
            return ""
        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            return value
        if phonenumbers.region_code_for_number(parsed) == default_region:
            style = phonenumbers.PhoneNumberFormat.NATIONAL
        else:
            style = phonenumbers.PhoneNumberFormat.INTERNATIONAL
        return str(phonenumbers.format_number(parsed, style))

    return format_phone


def is_withheld(party: str | None) -> bool:
    """True for the numbers and names Twilio reports for a withheld caller."""
    text = (party or "").strip()
    return text in WITHHELD_NUMBERS or text.lower() in WITHHELD_WORDS
