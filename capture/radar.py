"""Customer radar: facts read offline from phone numbers and email addresses.

Phone facts come from the geocoder, carrier and time zone data that ship
with the `phonenumbers` package, so no lookup leaves the machine. The
carrier is the one the number range was first allocated to, so a number
moved to another carrier still shows the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from babel import Locale
from phonenumbers import PhoneNumberType, carrier, geocoder
from phonenumbers import timezone as number_zones
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.access import Viewer, visible_customers
from capture.models import ContactPoint, Customer

LINE_TYPES = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_or_mobile",
    PhoneNumberType.TOLL_FREE: "toll_free",
    PhoneNumberType.PREMIUM_RATE: "premium_rate",
    PhoneNumberType.SHARED_COST: "shared_cost",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.PERSONAL_NUMBER: "personal",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.VOICEMAIL: "voicemail",
}
# Local hours in which calling a customer is reasonable: 08:00 to 21:00.
CALL_HOURS = (time(8, 0), time(21, 0))
# Mail providers whose domain reveals nothing about the customer's company.
FREE_MAIL = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "yahoo.co.jp",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "mail.com",
        "mail.ru",
        "yandex.ru",
        "zoho.com",
        "qq.com",
        "foxmail.com",
        "163.com",
        "126.com",
        "yeah.net",
        "sina.com",
        "sina.cn",
        "sohu.com",
        "aliyun.com",
        "139.com",
        "189.cn",
        "naver.com",
        "daum.net",
    }
)
MAX_SAME_COMPANY = 20


@dataclass(frozen=True)
class PhoneRadar:
    number: str
    region_code: str | None
    country: str
    # City or area where the data has one, else the country again.
    place: str
    time_zone: str | None
    line_type: str
    carrier: str


@dataclass(frozen=True)
class LocalTime:
    moment: datetime
    # True outside CALL_HOURS: calling now would likely disturb.
    unsociable: bool


def phone_radar(e164: str, language: str = "en") -> PhoneRadar | None:
    """Describe an E.164 number; None when it does not parse."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    locale = "zh" if language.startswith("zh") else "en"
    zones = [
        zone
        for zone in number_zones.time_zones_for_number(number)
        if zone != number_zones.UNKNOWN_TIMEZONE
    ]
    region = phonenumbers.region_code_for_number(number)
    return PhoneRadar(
        number=e164,
        region_code=region,
        country=geocoder.country_name_for_number(number, locale)
        or _territory_name(region, locale),
        place=geocoder.description_for_number(number, locale),
        # A number spanning several zones (a US toll-free number) gets none.
        time_zone=zones[0] if len(zones) == 1 else None,
        line_type=LINE_TYPES.get(phonenumbers.number_type(number), "unknown"),
        carrier=carrier.name_for_number(number, locale),
    )


def _territory_name(region: str | None, locale: str) -> str:
    """Name a region by CLDR data; the geocoder leaves toll-free numbers unnamed."""
    if not region or region == phonenumbers.UNKNOWN_REGION:
        return ""
    name = Locale.parse(locale).territories.get(region, "")
    return str(name)


def local_time(zone_name: str | None, now: datetime) -> LocalTime | None:
    """Return the time at `zone_name` at `now`, flagged outside calling hours."""
    if zone_name is None:
        return None
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    moment = now.astimezone(zone)
    start, end = CALL_HOURS
    return LocalTime(moment, not start <= moment.time() < end)


def company_domain(email: str) -> str | None:
    """Return the domain of a company address; None for free mail or no domain."""
    _, separator, domain = email.strip().lower().rpartition("@")
    if not separator or "." not in domain or domain in FREE_MAIL:
        return None
    return domain


async def same_company(
    session: AsyncSession, viewer: Viewer, customer_id: int, domains: set[str]
) -> list[Customer]:
    """Return other visible customers with an address at one of `domains`."""
    if not domains:
        return []
    # NOTE: a suffix match cannot use the (kind, value) index, so this
    # scans every email contact point.
    at_domain = [
        ContactPoint.value.like(f"%@{_escape_like(domain)}", escape="\\")
        for domain in sorted(domains)
    ]
    query = (
        select(Customer)
        .join(ContactPoint, ContactPoint.customer_id == Customer.id)
        .where(
            ContactPoint.kind == "email",
            or_(*at_domain),
            Customer.id != customer_id,
            visible_customers(viewer),
        )
        .distinct()
        .order_by(Customer.id)
        .limit(MAX_SAME_COMPANY)
    )
    return list((await session.scalars(query)).all())


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
