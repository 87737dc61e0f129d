"""The home page and the calls list, on the demo company.

Ana and Ben are reps in team West under Mia, Chen a rep in East. Ana owns
customers 1-2, Ben 3-4 and Chen 5-6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import ADMIN_EMAIL, login, post_signed
from sqlalchemy import select
from twilio_params import call_status, new_sid

from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, REPS
from capture.models import Plan, Recording, Transcript, User

ANA, BEN, CHEN = REPS
MIA = "mia@demo.touchline.test"
OMAR = "omar@demo.touchline.test"
WITHHELD = "+266696687"
CALL_ROW = re.compile(r'data-call="([^"]+)"')


def section(html: str, name: str) -> str:
    """Return the HTML of `<section id="name">`."""
    start = html.index(f'<section id="{name}">')
    return html[start : html.index("</section>", start)]


def calls_in(html: str) -> set[str]:
    return set(CALL_ROW.findall(html))


async def user_id(database: Database, email: str) -> int:
    async with database.reads() as session:
        found = await session.scalar(select(User.id).where(User.email == email))
    assert found is not None
    return int(found)


async def post_call(
    client: Any,
    caller: str,
    called: str,
    *,
    at: datetime,
    direction: str = "outbound-api",
    status: str = "completed",
    duration: int = 30,
) -> str:
    sid = new_sid("CA")
    params = call_status(
        sid,
        status,
        3,
        caller=caller,
        called=called,
        direction=direction,
        duration=duration,
        at=at,
    )
    response = await post_signed(client, "/twilio/voice/status", params)
    assert response.status == 204, await response.text()
    return sid


# Home page


async def add_plan(
    database: Database,
    customer_id: int,
    note: str,
    start: datetime,
    end: datetime,
    status: str = "open",
) -> None:
    async with transaction(database.writes) as session:
        session.add(
            Plan(
                customer_id=customer_id,
                purpose="keep_in_touch",
                window="this_week",
                due_start=start,
                due_end=end,
                note=note,
                status=status,
                closed_at=None if status == "open" else datetime.now(UTC),
            )
        )


@pytest.fixture
async def plans(client: Any, database: Database) -> None:
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    day = timedelta(days=1)
    await add_plan(database, 2, "due-today-lumen", now - hour, now + hour)
    await add_plan(database, 1, "overdue-harbor", now - 3 * day, now - 2 * day)
    await add_plan(database, 3, "overdue-northwind", now - 3 * day, now - day)
    await add_plan(database, 5, "due-today-riverside", now - hour, now + hour)
    await add_plan(database, 4, "next-week-quarry", now + 7 * day, now + 8 * day)
    await add_plan(database, 6, "done-summit", now - 3 * day, now - day, "done")


async def test_home_rep_overdue_before_due_today(client: Any, plans: None) -> None:
    await login(client, ANA.email)

    response = await client.get("/")

    steps = section(await response.text(), "next-steps")
    assert response.status == 200
    assert "overdue-harbor" in steps
    assert "due-today-lumen" in steps
    assert steps.index("overdue-harbor") < steps.index("due-today-lumen")
    assert 'href="/customers/1"' in steps
    assert 'href="/customers/2"' in steps


async def test_home_rep_sees_no_other_plans(client: Any, plans: None) -> None:
    await login(client, ANA.email)

    steps = section(await (await client.get("/")).text(), "next-steps")

    assert "overdue-northwind" not in steps
    assert "due-today-riverside" not in steps
    assert "next-week-quarry" not in steps
    assert "done-summit" not in steps


async def test_home_manager_sees_team_with_rep(client: Any, plans: None) -> None:
    await login(client, MIA)

    steps = section(await (await client.get("/")).text(), "next-steps")

    assert "overdue-harbor" in steps
    assert "overdue-northwind" in steps
    assert "due-today-lumen" in steps
    assert "due-today-riverside" not in steps
    assert steps.index("overdue-northwind") < steps.index("due-today-lumen")
    northwind_row = steps.split("overdue-northwind")[0].rsplit("<tr", 1)[1]
    assert BEN.name in northwind_row


async def test_home_recent_touches(client: Any) -> None:
    at = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    ana_call = await post_call(client, ANA.phone, CUSTOMERS[0].phone, at=at)
    chen_call = await post_call(client, CHEN.phone, CUSTOMERS[4].phone, at=at)
    await login(client, ANA.email)

    recent = section(await (await client.get("/")).text(), "recent-touches")

    assert f'href="/calls/{ana_call}"' in recent
    assert f'href="/calls/{chen_call}"' not in recent
    assert CUSTOMERS[0].name in recent
    assert "0:30" in recent


async def test_home_unmatched_withheld_call(client: Any) -> None:
    at = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    sid = await post_call(client, WITHHELD, ANA.phone, at=at, direction="inbound")
    await login(client, ANA.email)

    inbox = section(await (await client.get("/")).text(), "unmatched")

    assert f'href="/calls/{sid}"' in inbox
    assert "Withheld number" in inbox
    assert 'id="unmatched-empty"' not in inbox


async def test_home_unmatched_scoped_by_rep(client: Any) -> None:
    at = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    sid = await post_call(client, WITHHELD, ANA.phone, at=at, direction="inbound")

    await login(client, CHEN.email)
    chen = section(await (await client.get("/")).text(), "unmatched")
    client.session.cookie_jar.clear()
    await login(client, MIA)
    mia = section(await (await client.get("/")).text(), "unmatched")

    assert sid not in chen
    assert 'id="unmatched-empty"' in chen
    assert f'href="/calls/{sid}"' in mia
    assert ANA.name in mia


async def test_home_ops_lands_on_reports(client: Any) -> None:
    await login(client, OMAR)

    response = await client.get("/", allow_redirects=False)

    assert response.status == 302
    assert response.headers["Location"] == "/reports/reps"


async def test_home_admin_sees_every_rep(client: Any, plans: None) -> None:
    await login(client, ADMIN_EMAIL)

    steps = section(await (await client.get("/")).text(), "next-steps")

    assert "overdue-harbor" in steps
    assert "overdue-northwind" in steps
    assert "due-today-riverside" in steps


# Calls list


@dataclass(frozen=True)
class Calls:
    ana_out: str
    ana_missed: str
    ben_out: str
    chen_out: str

    @property
    def every(self) -> set[str]:
        return {self.ana_out, self.ana_missed, self.ben_out, self.chen_out}


async def add_transcript(database: Database, call_sid: str) -> None:
    async with transaction(database.writes) as session:
        recording = Recording(
            recording_sid=new_sid("RE"),
            call_sid=call_sid,
            status="stored",
            file_path="recordings/none.wav",
        )
        session.add(recording)
        await session.flush()
        session.add(Transcript(recording_id=recording.id, engine="test", model="test"))


@pytest.fixture
async def calls(client: Any, database: Database) -> Calls:
    nov30 = datetime(2026, 11, 30, 17, 0, tzinfo=UTC)
    dec2 = datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
    seeded = Calls(
        await post_call(client, ANA.phone, CUSTOMERS[0].phone, at=nov30, duration=40),
        await post_call(
            client,
            CUSTOMERS[1].phone,
            ANA.phone,
            at=dec2,
            direction="inbound",
            status="no-answer",
            duration=0,
        ),
        await post_call(client, BEN.phone, CUSTOMERS[2].phone, at=nov30),
        await post_call(client, CHEN.phone, CUSTOMERS[4].phone, at=nov30),
    )
    await add_transcript(database, seeded.ana_out)
    return seeded


async def listed(client: Any, **params: str) -> set[str]:
    response = await client.get("/calls", params=params)
    text = await response.text()
    assert response.status == 200, text
    return calls_in(text)


async def test_calls_filters_each(
    client: Any, calls: Calls, database: Database
) -> None:
    await login(client, ADMIN_EMAIL)
    ana = str(await user_id(database, ANA.email))
    answered = {calls.ana_out, calls.ben_out, calls.chen_out}

    assert await listed(client) == calls.every
    assert await listed(client, rep=ana) == {calls.ana_out, calls.ana_missed}
    assert await listed(client, **{"from": "2026-12-01"}) == {calls.ana_missed}
    assert await listed(client, to="2026-11-30") == answered
    assert await listed(client, direction="inbound") == {calls.ana_missed}
    assert await listed(client, direction="outbound") == answered
    assert await listed(client, answered="yes") == answered
    assert await listed(client, answered="no") == {calls.ana_missed}
    assert await listed(client, transcript="yes") == {calls.ana_out}
    assert await listed(client, transcript="no") == calls.every - {calls.ana_out}


async def test_calls_filters_combine(
    client: Any, calls: Calls, database: Database
) -> None:
    await login(client, ADMIN_EMAIL)
    ana = str(await user_id(database, ANA.email))

    outbound_answered = await listed(
        client, rep=ana, direction="outbound", answered="yes"
    )
    inbound_in_november = await listed(
        client, rep=ana, direction="inbound", to="2026-11-30"
    )
    transcribed_in_december = await listed(
        client, transcript="yes", **{"from": "2026-12-01", "to": "2026-12-31"}
    )

    assert outbound_answered == {calls.ana_out}
    assert inbound_in_november == set()
    assert transcribed_in_december == set()


async def test_calls_date_in_organisation_zone(client: Any, calls: Calls) -> None:
    # 17:00 UTC on 30 November is 09:00 in Los Angeles, the tests' zone.
    await login(client, ADMIN_EMAIL)

    same_day = await listed(client, **{"from": "2026-11-30", "to": "2026-11-30"})
    day_before = await listed(client, **{"from": "2026-11-29", "to": "2026-11-29"})

    assert calls.ana_out in same_day
    assert day_before == set()


async def test_calls_keyset_pages(client: Any, calls: Calls) -> None:
    await login(client, ADMIN_EMAIL)

    first = await (await client.get("/calls", params={"limit": "3"})).text()
    following = re.search(r'href="([^"]+)" rel="next"', first)
    assert following is not None
    second = await (await client.get(following.group(1).replace("&amp;", "&"))).text()

    assert len(calls_in(first)) == 3
    assert len(calls_in(second)) == 1
    assert calls_in(first) | calls_in(second) == calls.every
    assert 'rel="next"' not in second


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"rep": "abc"}, "rep"),
        ({"rep": "99999"}, "rep"),
        ({"from": "2026-13-01"}, "from"),
        ({"to": "yesterday"}, "to"),
        ({"from": "2026-12-02", "to": "2026-12-01"}, "to"),
        ({"direction": "sideways"}, "direction"),
        ({"answered": "maybe"}, "answered"),
        ({"transcript": "1"}, "transcript"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1000"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
async def test_calls_bad_filter_names_field(
    client: Any, params: dict[str, str], field: str
) -> None:
    await login(client, ADMIN_EMAIL)

    response = await client.get("/calls", params=params)

    text = await response.text()
    assert response.status == 400
    assert response.content_type == "text/html"
    assert f"<code>{field}</code>" in text


async def test_calls_rep_sees_only_own(client: Any, calls: Calls) -> None:
    await login(client, ANA.email)

    assert await listed(client) == {calls.ana_out, calls.ana_missed}


async def test_calls_rep_filter_cannot_widen(
    client: Any, calls: Calls, database: Database
) -> None:
    await login(client, ANA.email)
    chen = str(await user_id(database, CHEN.email))
    ben = str(await user_id(database, BEN.email))

    by_chen = await client.get("/calls", params={"rep": chen})
    by_ben = await client.get("/calls", params={"rep": ben})
    guessed = await client.get(f"/calls/{calls.chen_out}")

    assert by_chen.status == 400
    assert "<code>rep</code>" in await by_chen.text()
    assert by_ben.status == 400
    assert calls.ben_out not in await by_ben.text()
    assert guessed.status == 404


async def test_calls_manager_filters_team(
    client: Any, calls: Calls, database: Database
) -> None:
    await login(client, MIA)
    ben = str(await user_id(database, BEN.email))
    chen = str(await user_id(database, CHEN.email))

    team = await listed(client)
    only_ben = await listed(client, rep=ben)
    by_chen = await client.get("/calls", params={"rep": chen})

    assert team == {calls.ana_out, calls.ana_missed, calls.ben_out}
    assert only_ben == {calls.ben_out}
    assert by_chen.status == 400


async def test_calls_ops_without_transcripts(client: Any, calls: Calls) -> None:
    await login(client, OMAR)

    page = await client.get("/calls")
    filtered = await client.get("/calls", params={"transcript": "yes"})

    assert calls_in(await page.text()) == calls.every
    assert "transcribed" not in await page.text()
    assert filtered.status == 400
    assert "<code>transcript</code>" in await filtered.text()


async def test_calls_markers_and_columns(client: Any, calls: Calls) -> None:
    await login(client, ADMIN_EMAIL)

    text = await (await client.get("/calls")).text()

    row = text.split(f'data-call="{calls.ana_out}"', 1)[1].split("</tr>", 1)[0]
    assert ANA.name in row
    assert CUSTOMERS[0].name in row
    assert "outbound" in row
    assert "completed" in row
    assert "0:40" in row
    assert "recorded" in row
    assert "transcribed" in row
    assert f'href="/calls/{calls.ana_out}"' in row
