"""The scheduled exports page: list, add, pause, resume, run now, delete."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import login
from sqlalchemy import func, select

from capture.db import Database
from capture.models import AuditEvent, ExportSchedule
from capture.settings import Settings

PAGE = "/exports/schedules"
OMAR = "omar@demo.touchline.test"


def _form(csrf: str, **fields: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "report": "activities",
        "format": "csv",
        "frequency": "daily",
        "weekday": "monday",
        "time": "06:15",
        "destination": "folder",
        "target": "morning",
        "team": "",
        "rep": "",
        **fields,
    }


async def _count(database: Database) -> int:
    async with database.reads() as session:
        return int(await session.scalar(select(func.count(ExportSchedule.id))) or 0)


async def _only_id(database: Database) -> int:
    async with database.reads() as session:
        found = await session.scalar(select(ExportSchedule.id))
    assert found is not None
    return int(found)


def _row(page: str, schedule_id: int) -> str:
    start = page.index(f'data-schedule="{schedule_id}"')
    return page[start : page.index("</tr>", start)]


async def test_page_adds_schedule(client: Any, database: Database) -> None:
    csrf = await login(client, OMAR)

    created = await client.post(PAGE, data=_form(csrf), allow_redirects=False)
    page = await (await client.get(PAGE)).text()

    assert created.status == 303
    row = _row(page, await _only_id(database))
    assert "Activities (CSV)" in row
    assert "Daily, 06:15" in row
    assert "<code>morning</code>" in row
    assert "not run yet" in row
    # The next run is a date and time, not "paused".
    assert re.search(r"\d{1,2}:\d{2}", row.split("not run yet")[1])


async def test_page_weekly_shows_weekday(client: Any, database: Database) -> None:
    csrf = await login(client, OMAR)

    await client.post(
        PAGE, data=_form(csrf, frequency="weekly", weekday="friday", time="17:30")
    )
    page = await (await client.get(PAGE)).text()

    assert "Weekly, Friday, 17:30" in _row(page, await _only_id(database))


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"time": "25:99"}, "time", "is not a time of day"),
        ({"target": "../../etc"}, "target", "outside the export folder"),
        ({"target": "bad name"}, "target", "is not a folder name"),
        ({"report": "summary", "rep": "2"}, "rep", "activities and calls"),
        ({"destination": "email", "target": "ops@example.com"}, "destination", ""),
    ],
)
async def test_page_rejects_naming_field(
    client: Any, database: Database, fields: dict[str, str], field: str, words: str
) -> None:
    csrf = await login(client, OMAR)

    response = await client.post(PAGE, data=_form(csrf, **fields))

    page = await response.text()
    assert response.status == 400
    assert f"<code>{field}</code>" in page
    assert words in page
    assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', page)
    assert await _count(database) == 0


async def test_page_keeps_entered_values(client: Any) -> None:
    csrf = await login(client, OMAR)

    response = await client.post(
        PAGE, data=_form(csrf, time="99:00", target="kept-name")
    )

    page = await response.text()
    assert 'value="kept-name"' in page
    assert 'value="99:00"' in page


@pytest.mark.parametrize(
    "email", ["ana@demo.touchline.test", "mia@demo.touchline.test"]
)
async def test_page_other_roles_forbidden(
    client: Any, database: Database, email: str
) -> None:
    csrf = await login(client, email)

    shown = await client.get(PAGE)
    posted = await client.post(PAGE, data=_form(csrf))

    assert shown.status == 403
    assert posted.status == 403
    assert await _count(database) == 0


async def test_page_admin_allowed(client: Any, as_admin: str) -> None:
    response = await client.get(PAGE)

    assert response.status == 200
    assert 'action="/exports/schedules"' in await response.text()


@pytest.mark.parametrize(
    ("email", "shown"),
    [
        (OMAR, True),
        ("ada@demo.touchline.test", True),
        ("ana@demo.touchline.test", False),
    ],
)
async def test_nav_link_by_role(client: Any, email: str, shown: bool) -> None:
    await login(client, email)

    page = await (await client.get("/customers")).text()

    assert ('href="/exports/schedules"' in page) is shown


async def test_page_pause_and_resume(client: Any, database: Database) -> None:
    csrf = await login(client, OMAR)
    await client.post(PAGE, data=_form(csrf))
    schedule_id = await _only_id(database)

    await client.post(f"{PAGE}/{schedule_id}/pause", data={"csrf_token": csrf})
    paused = _row(await (await client.get(PAGE)).text(), schedule_id)
    await client.post(f"{PAGE}/{schedule_id}/resume", data={"csrf_token": csrf})
    resumed = _row(await (await client.get(PAGE)).text(), schedule_id)

    assert ">paused<" in paused
    assert f"/{schedule_id}/resume" in paused
    assert ">paused<" not in resumed
    assert f"/{schedule_id}/pause" in resumed


async def test_page_run_now_shows_outcome(
    client: Any, database: Database, settings: Settings
) -> None:
    csrf = await login(client, OMAR)
    await client.post(PAGE, data=_form(csrf))
    schedule_id = await _only_id(database)

    ran = await client.post(
        f"{PAGE}/{schedule_id}/run", data={"csrf_token": csrf}, allow_redirects=False
    )
    row = _row(await (await client.get(PAGE)).text(), schedule_id)

    assert ran.status == 303
    assert "succeeded" in row
    assert "not run yet" not in row
    written = list((settings.exports_dir / "morning").iterdir())
    assert [path.suffix for path in written] == [".csv"]


async def test_page_run_now_shows_error(
    client: Any, database: Database, settings: Settings
) -> None:
    csrf = await login(client, OMAR)
    await client.post(PAGE, data=_form(csrf, target="blocked"))
    schedule_id = await _only_id(database)
    settings.exports_dir.mkdir(parents=True)
    # A file where the folder should be makes the write fail.
    (settings.exports_dir / "blocked").write_text("not a folder")

    await client.post(f"{PAGE}/{schedule_id}/run", data={"csrf_token": csrf})
    row = _row(await (await client.get(PAGE)).text(), schedule_id)

    assert "failed" in row
    assert 'class="error"' in row
    assert "Error" in row


async def test_page_delete(client: Any, database: Database) -> None:
    csrf = await login(client, OMAR)
    await client.post(PAGE, data=_form(csrf))
    schedule_id = await _only_id(database)

    deleted = await client.post(
        f"{PAGE}/{schedule_id}/delete", data={"csrf_token": csrf}, allow_redirects=False
    )
    missing = await client.post(
        f"{PAGE}/{schedule_id}/delete", data={"csrf_token": csrf}
    )

    assert deleted.status == 303
    assert await _count(database) == 0
    assert missing.status == 404


async def test_page_action_needs_csrf(client: Any, database: Database) -> None:
    csrf = await login(client, OMAR)
    await client.post(PAGE, data=_form(csrf))
    schedule_id = await _only_id(database)

    response = await client.post(f"{PAGE}/{schedule_id}/delete", data={})

    assert response.status == 403
    assert await _count(database) == 1


async def test_page_in_chinese(client: Any) -> None:
    csrf = await login(client, OMAR)
    await client.post(
        "/account/language", data={"csrf_token": csrf, "locale": "zh_Hans", "next": ""}
    )

    page = await (await client.get(PAGE)).text()

    assert "定时导出" in page


async def test_page_error_in_chinese(client: Any, database: Database) -> None:
    csrf = await login(client, OMAR)
    await client.post(
        "/account/language", data={"csrf_token": csrf, "locale": "zh_Hans", "next": ""}
    )

    response = await client.post(PAGE, data=_form(csrf, target="../etc"))

    page = await response.text()
    assert response.status == 400
    assert "位于导出文件夹之外" in page
    assert await _count(database) == 0


async def test_page_audits_create_and_delete(client: Any, database: Database) -> None:
    csrf = await login(client, OMAR)
    await client.post(PAGE, data=_form(csrf))
    schedule_id = await _only_id(database)

    await client.post(f"{PAGE}/{schedule_id}/delete", data={"csrf_token": csrf})

    async with database.reads() as session:
        events = (
            await session.execute(
                select(AuditEvent.action, AuditEvent.target_id)
                .where(AuditEvent.target_type == "export_schedule")
                .order_by(AuditEvent.id)
            )
        ).all()
    assert [tuple(event) for event in events] == [
        ("export_scheduled", str(schedule_id)),
        ("export_schedule_deleted", str(schedule_id)),
    ]
