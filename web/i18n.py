"""Page languages: message catalogues, the locale of a request, and formatting.

Catalogues are the `.po` files under `web/locale`, compiled in memory when
first needed, so no binary `.mo` file is kept in the repository. A page's
locale is the logged-in user's `locale`; an anonymous page (the login form)
takes the `touchline_lang` cookie, then the Accept-Language header, then
English. JSON and webhook responses are always English.

Templates call `_()`, `gettext()` and `ngettext()` through the Jinja i18n
extension; those callables read the translations from the render context,
which `template_values` fills per request, so concurrent requests in other
languages never share state. Python code that builds page text calls
`gettext` from this module, which finds the request through a context
variable that `locale_middleware` sets.
"""

from __future__ import annotations

import contextvars
import functools
import io
from collections.abc import Callable
from datetime import datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from aiohttp import web
from babel import Locale
from babel.dates import format_date, format_datetime, format_time
from babel.lists import format_list
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent
from babel.support import NullTranslations, Translations
from babel.units import format_unit

from web.keys import SETTINGS, USER

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
DEFAULT_LOCALE = "en"
# The locales a user can choose, each with its name in its own language.
LOCALES = {"en": "English", "zh_Hans": "简体中文"}
COOKIE_NAME = "touchline_lang"
# A year: the choice outlives sessions, and it only picks a language.
COOKIE_MAX_AGE = 365 * 24 * 3600
# Responses to machines stay English whatever the caller's language.
MACHINE_PREFIXES = ("/api/", "/twilio/", "/email/", "/healthz", "/metrics")
# The HTML `lang` attribute (BCP 47) of each locale.
HTML_LANG = {"en": "en", "zh_Hans": "zh-Hans"}

LOCALE = web.RequestKey("locale", str)
_current_request: contextvars.ContextVar[web.Request | None] = contextvars.ContextVar(
    "touchline_request", default=None
)


def compile_catalogue(path: Path) -> Translations:
    """Read a `.po` file and return its translations, compiled in memory."""
    with path.open("rb") as source:
        catalogue = read_po(source, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalogue)
    buffer.seek(0)
    return Translations(buffer, domain=DOMAIN)


@functools.cache
def catalogues() -> dict[str, NullTranslations]:
    """Return the translations of every locale, compiled once per process."""
    loaded: dict[str, NullTranslations] = {}
    for locale in LOCALES:
        path = LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"
        loaded[locale] = (
            compile_catalogue(path) if path.is_file() else NullTranslations()
        )
    return loaded


def translations_for(locale: str) -> NullTranslations:
    return catalogues().get(locale) or catalogues()[DEFAULT_LOCALE]


def parse_locale(value: str | None) -> str | None:
    """Return the supported locale that `value` names, or None.

    Accepts the stored names (`en`, `zh_Hans`) and BCP 47 tags such as
    `zh-CN`, `zh-Hans-CN` or `en-GB`.
    """
    if not value:
        return None
    if value in LOCALES:
        return value
    language = value.replace("_", "-").split("-", 1)[0].lower()
    if language == "zh":
        return "zh_Hans"
    if language == "en":
        return "en"
    return None


def accept_language(header: str) -> str | None:
    """Return the supported locale the Accept-Language header ranks highest."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        tag, _, parameters = part.strip().partition(";")
        quality = 1.0
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        locale = parse_locale(tag.strip())
        if locale is not None and quality > 0:
            ranked.append((-quality, index, locale))
    return min(ranked)[2] if ranked else None


def locale_of(request: web.Request) -> str:
    """Return the locale of the page that `request` renders."""
    if request.path.startswith(MACHINE_PREFIXES):
        return DEFAULT_LOCALE
    user = request.get(USER)
    if user is not None:
        return parse_locale(user.locale) or DEFAULT_LOCALE
    return (
        parse_locale(request.cookies.get(COOKIE_NAME))
        or accept_language(request.headers.get("Accept-Language", ""))
        or DEFAULT_LOCALE
    )


def zone_of(request: web.Request) -> tzinfo:
    """Return the user's time zone when set and valid, else the organisation's."""
    user = request.get(USER)
    if user is not None and user.timezone:
        try:
            return ZoneInfo(user.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return request.app[SETTINGS].zone


@web.middleware
async def locale_middleware(
    request: web.Request,
    handler: Callable[[web.Request], Any],
) -> web.StreamResponse:
    """Make the request known to `gettext` for the rest of its handling."""
    token = _current_request.set(request)
    try:
        response: web.StreamResponse = await handler(request)
        return response
    finally:
        _current_request.reset(token)


def _request_translations() -> NullTranslations:
    request = _current_request.get()
    if request is None:
        return translations_for(DEFAULT_LOCALE)
    return translations_for(locale_of(request))


def gettext(message: str) -> str:
    """Translate `message` into the current request's language."""
    return _request_translations().ugettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    return _request_translations().ungettext(singular, plural, count)


def gettext_noop(message: str) -> str:
    """Mark `message` for extraction; it is translated where it is shown."""
    return message


# Template callables: the translations come from the render context, which
# `template_values` fills, so each render uses its own request's language.


def context_translations(context: jinja2.runtime.Context) -> NullTranslations:
    found = context.get("translations")
    if isinstance(found, NullTranslations):
        return found
    return translations_for(DEFAULT_LOCALE)


@jinja2.pass_context
def _template_gettext(context: jinja2.runtime.Context, message: str) -> str:
    return context_translations(context).ugettext(message)


@jinja2.pass_context
def _template_ngettext(
    context: jinja2.runtime.Context, singular: str, plural: str, count: int
) -> str:
    return context_translations(context).ungettext(singular, plural, count)


def install(environment: jinja2.Environment) -> None:
    """Install per-render gettext callables and the formatting filters."""
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        _template_gettext, _template_ngettext, newstyle=True
    )
    environment.filters.update(
        datetime=_datetime_filter,
        date=_date_filter,
        number=_number_filter,
        duration=_duration_filter,
        money=_money_filter,
        percent=_percent_filter,
    )


def template_values(request: web.Request) -> dict[str, Any]:
    """Context entries for every page: the translations, locale and time zone."""
    locale = locale_of(request)
    return {
        "translations": translations_for(locale),
        "locale": locale,
        "html_lang": HTML_LANG[locale],
        "locales": LOCALES,
        "zone": zone_of(request),
        # Where the language switch returns to; a POST target is no page.
        "request_path": request.path_qs if request.method == "GET" else "",
    }


# Formatting. Each filter takes the locale and time zone from the context.


def _babel_locale(context: jinja2.runtime.Context) -> Locale:
    return Locale.parse(context.get("locale") or DEFAULT_LOCALE)


def _zone(context: jinja2.runtime.Context) -> tzinfo | None:
    zone = context.get("zone")
    return zone if isinstance(zone, tzinfo) else None


def format_moment(value: datetime, zone: tzinfo | None, locale: Locale) -> str:
    """Format a date and time in the locale's medium format, with the zone's name."""
    moment = format_datetime(value, "medium", tzinfo=zone, locale=locale)
    name = format_time(value, "z", tzinfo=zone, locale=locale)
    return f"{moment} {name}"


def format_seconds(seconds: int, locale: Locale) -> str:
    """Format a duration as hours, minutes and seconds in the locale's short units."""
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, rest = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(format_unit(hours, "duration-hour", "short", locale=locale))
    if minutes:
        parts.append(format_unit(minutes, "duration-minute", "short", locale=locale))
    if rest or not parts:
        parts.append(format_unit(rest, "duration-second", "short", locale=locale))
    return format_list(parts, style="unit-narrow", locale=locale)


@jinja2.pass_context
def _datetime_filter(context: jinja2.runtime.Context, value: datetime | None) -> str:
    if value is None:
        return ""
    return format_moment(value, _zone(context), _babel_locale(context))


@jinja2.pass_context
def _date_filter(context: jinja2.runtime.Context, value: Any) -> str:
    if value is None:
        return ""
    return format_date(value, "medium", locale=_babel_locale(context))


@jinja2.pass_context
def _number_filter(context: jinja2.runtime.Context, value: int | Decimal) -> str:
    return format_decimal(value, locale=_babel_locale(context))


@jinja2.pass_context
def _percent_filter(context: jinja2.runtime.Context, value: float | None) -> str:
    """A share (0.25) as the locale writes a percentage; empty when missing."""
    if value is None:
        return ""
    return format_percent(value, "#,##0.0%", locale=_babel_locale(context))


@jinja2.pass_context
def _duration_filter(context: jinja2.runtime.Context, seconds: int | None) -> str:
    if seconds is None:
        return ""
    return format_seconds(seconds, _babel_locale(context))


@jinja2.pass_context
def _money_filter(context: jinja2.runtime.Context, amounts: dict[str, int]) -> str:
    """Amounts in minor units, one per currency, as the locale writes money."""
    locale = _babel_locale(context)
    return " · ".join(
        format_currency(Decimal(minor).scaleb(-2), currency, locale=locale)
        for currency, minor in sorted(amounts.items())
    )
