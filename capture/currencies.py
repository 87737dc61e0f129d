"""ISO 4217 currency codes, from the CLDR data that Babel ships."""

from __future__ import annotations

import functools

from babel.numbers import list_currencies

# Codes that name no currency: XXX is "no currency", XTS is for testing.
NOT_MONEY = frozenset({"XXX", "XTS"})


@functools.cache
def known_currencies() -> frozenset[str]:
    return frozenset(list_currencies()) - NOT_MONEY


def is_currency(code: str) -> bool:
    """Tell whether `code` is a known ISO 4217 code, in capitals."""
    return code in known_currencies()
