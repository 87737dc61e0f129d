"""Customer radar: offline phone facts, local time and company domains."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from capture.access import Viewer
from capture.accounts import create_token
from capture.db import Database, transaction
from capture.models import ContactPoint, Customer, User
from capture.radar import company_domain, local_time, phone_radar, same_company


def test_radar_china_mobile() -> None:
    radar = phone_radar("+8613800138000")

    assert radar is not None
    assert radar.region_code == "CN"
    assert radar.country == "China"
    assert radar.place == "Beijing"
    assert radar.time_zone == "Asia/Shanghai"
    assert radar.line_type == "mobile"
    assert radar.carrier == "China Mobile"


def test_radar_chinese_names() -> None:
    radar = phone_radar("+8613800138000", "zh_Hans")

    assert radar is not None
    assert radar.country == "中国"
    assert radar.carrier == "中国移动"


def test_radar_london_fixed_line() -> None:
    radar = phone_radar("+442079460000")

    assert radar is not None
    assert radar.line_type == "fixed"
    assert radar.place == "London"
    assert radar.time_zone == "Europe/London"


def test_radar_toll_free_has_no_zone() -> None:
    radar = phone_radar("+18002752273")

    assert radar is not None
    assert radar.line_type == "toll_free"
    assert radar.country == "United States"
    # The data lists several zones for a toll-free number, so none is chosen.
    assert radar.time_zone is None


def test_radar_unparsable_number() -> None:
    assert phone_radar("not a number") is None


def test_radar_local_time_hours() -> None:
    # 01:30 UTC is 09:30 in Shanghai and 01:30 in London.
    now = datetime(2026, 12, 2, 1, 30, tzinfo=UTC)
    shanghai = local_time("Asia/Shanghai", now)
    london = local_time("Europe/London", now)

    assert shanghai is not None
    assert shanghai.moment.strftime("%H:%M") == "09:30"
    assert shanghai.unsociable is False
    assert london is not None
    assert london.moment.strftime("%H:%M") == "01:30"
    assert london.unsociable is True
    assert local_time(None, now) is None


def test_radar_local_time_edges() -> None:
    at_eight = local_time("UTC", datetime(2026, 12, 2, 8, 0, tzinfo=UTC))
    at_nine_pm = local_time("UTC", datetime(2026, 12, 2, 21, 0, tzinfo=UTC))

    assert at_eight is not None and at_eight.unsociable is False
    assert at_nine_pm is not None and at_nine_pm.unsociable is True


def test_radar_company_domain() -> None:
    assert company_domain("Ops@Harbor.Example") == "harbor.example"
    assert company_domain("someone@gmail.com") is None
    assert company_domain("wang@qq.com") is None
    assert company_domain("li@163.com") is None
    assert company_domain("no-at-sign") is None
    assert company_domain("user@localhost") is None


async def test_radar_same_company_linked(database: Database, demo: None) -> None:
    async with transaction(database.writes) as session:
        harbor = await session.scalar(select(Customer).where(Customer.id == 1))
        assert harbor is not None
        other = Customer(name="Harbor Freight West", owner_id=harbor.owner_id)
        session.add(other)
        stranger = Customer(name="Gmail User", owner_id=harbor.owner_id)
        session.add(stranger)
        await session.flush()
        session.add(
            ContactPoint(
                customer_id=other.id, kind="email", value="buyer@harbor.example"
            )
        )
        session.add(
            ContactPoint(
                customer_id=stranger.id, kind="email", value="x@harbor_example"
            )
        )
        other_id = other.id
        admin = await session.scalar(select(User).where(User.role == "admin"))
        assert admin is not None
        viewer = Viewer.of(admin)

    async with database.reads() as session:
        found = await same_company(session, viewer, 1, {"harbor.example"})

    assert [customer.id for customer in found] == [other_id]


async def test_radar_api(client: Any, database: Database) -> None:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, "ana@demo.touchline.test")
        session.add(ContactPoint(customer_id=1, kind="phone", value="+8613800138000"))

    response = await client.get(
        "/api/v1/customers/1/radar", headers={"Authorization": f"Bearer {secret}"}
    )

    body = await response.json()
    assert response.status == 200
    by_number = {phone["number"]: phone for phone in body["phones"]}
    assert by_number["+8613800138000"]["carrier"] == "China Mobile"
    assert by_number["+8613800138000"]["time_zone"] == "Asia/Shanghai"
    assert by_number["+14155550201"]["time_zone"] == "America/Los_Angeles"
    assert isinstance(by_number["+14155550201"]["unsociable_hour"], bool)
    assert body["company_domains"] == ["harbor.example"]
