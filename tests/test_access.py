"""Every role against every page, API endpoint, recording and export.

The demo company: Ana and Ben are reps in team West, Chen a rep in East,
Mia the manager of West, Omar ops and Ada admin. Ana owns customers 1-2,
Ben 3-4 and Chen 5-6. Ana calls customer 1 and Chen customer 5; both calls
have a stored recording.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import login, post_signed
from sqlalchemy import select
from twilio_params import call_status, new_sid

from capture.access import Viewer, sees_user, visible_users
from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, REPS
from capture.models import AuditEvent, Recording, User
from capture.settings import Settings

ANA, BEN, CHEN = REPS
DAYS = {"from": "2026-11-01", "to": "2026-12-31"}


@dataclass(frozen=True)
class Seeded:
    ana_call: str
    chen_call: str
    ana_recording: str
    chen_recording: str
    tokens: dict[str, str]


@dataclass(frozen=True)
class Expected:
    """What one role may see in the seeded data."""

    email: str
    customers: set[int]
    calls: set[str]
    recordings: set[str]
    reps: set[str]
    media: bool
    admin: bool


async def add_call(client: Any, rep_phone: str, customer_phone: str) -> str:
    sid = new_sid("CA")
    params = call_status(
        sid, "completed", 3, caller=rep_phone, called=customer_phone, duration=20
    )
    assert (await post_signed(client, "/twilio/voice/status", params)).status == 204
    return sid


async def add_recording(database: Database, settings: Settings, call_sid: str) -> str:
    """Store a recording row and file, as the download job leaves them."""
    sid = new_sid("RE")
    relative = f"recordings/{sid}.wav"
    path = settings.data_dir / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF$\x00\x00\x00WAVE" + b"\x00" * 32)
    async with transaction(database.writes) as session:
        session.add(
            Recording(
                recording_sid=sid,
                call_sid=call_sid,
                status="stored",
                file_path=relative,
                size_bytes=path.stat().st_size,
            )
        )
    return sid


@pytest.fixture
async def seeded(client: Any, database: Database, settings: Settings) -> Seeded:
    ana_call = await add_call(client, ANA.phone, CUSTOMERS[0].phone)
    chen_call = await add_call(client, CHEN.phone, CUSTOMERS[4].phone)
    tokens = {}
    async with transaction(database.writes) as session:
        for email in EMAILS.values():
            tokens[email], _ = await create_token(session, email)
    return Seeded(
        ana_call,
        chen_call,
        await add_recording(database, settings, ana_call),
        await add_recording(database, settings, chen_call),
        tokens,
    )


EMAILS = {
    "rep": ANA.email,
    "other rep": CHEN.email,
    "manager": "mia@demo.touchline.test",
    "ops": "omar@demo.touchline.test",
    "admin": "ada@demo.touchline.test",
}


def expected(role: str, seeded: Seeded) -> Expected:
    ana = ({seeded.ana_call}, {seeded.ana_recording})
    chen = ({seeded.chen_call}, {seeded.chen_recording})
    both = (ana[0] | chen[0], ana[1] | chen[1])
    everyone = {ANA.name, BEN.name, CHEN.name}
    table = {
        "rep": ({1, 2}, *ana, {ANA.name}, True, False),
        "other rep": ({5, 6}, *chen, {CHEN.name}, True, False),
        "manager": ({1, 2, 3, 4}, *ana, {ANA.name, BEN.name}, True, False),
        "ops": ({1, 2, 3, 4, 5, 6}, both[0], set(), everyone, False, False),
        "admin": ({1, 2, 3, 4, 5, 6}, *both, everyone, True, True),
    }
    customers, calls, recordings, reps, media, admin = table[role]
    return Expected(EMAILS[role], customers, calls, recordings, reps, media, admin)


ROLES = list(EMAILS)
ADMIN_PAGES = (
    "/admin/users",
    "/admin/audit",
    "/admin/teams",
    "/admin/numbers",
    "/admin/settings",
)
# Roles that define custom fields: managers and admins.
FIELD_DEFINERS = ("manager", "admin")


@pytest.mark.parametrize("role", ROLES)
async def test_access_pages(client: Any, seeded: Seeded, role: str) -> None:
    want = expected(role, seeded)
    await login(client, want.email)

    listing = await (await client.get("/customers")).text()
    for number, customer in enumerate(CUSTOMERS, start=1):
        page = await client.get(f"/customers/{number}")
        assert (customer.name in listing) == (number in want.customers), number
        assert page.status == (200 if number in want.customers else 404), number
    for sid in (seeded.ana_call, seeded.chen_call):
        page = await client.get(f"/calls/{sid}")
        text = await page.text()
        assert page.status == (200 if sid in want.calls else 404), sid
        if sid in want.calls:
            assert ("<audio" in text) == want.media
    for sid in (seeded.ana_recording, seeded.chen_recording):
        played = await client.get(f"/recordings/{sid}.wav")
        assert played.status == (200 if sid in want.recordings else 404), sid
    report = await (await client.get("/reports/reps", params=DAYS)).text()
    for rep in REPS:
        assert (rep.name in report) == (rep.name in want.reps), rep.name
    calls = await (await client.get("/calls")).text()
    home = await client.get("/", allow_redirects=False)
    home_text = await home.text()
    for sid in (seeded.ana_call, seeded.chen_call):
        assert (f'data-call="{sid}"' in calls) == (sid in want.calls), sid
        if role != "ops":
            assert (f"/calls/{sid}" in home_text) == (sid in want.calls), sid
    assert home.status == (302 if role == "ops" else 200)
    for path in ADMIN_PAGES:
        admin_page = await client.get(path)
        assert admin_page.status == (200 if want.admin else 403), path
    fields_page = await client.get("/admin/fields")
    assert fields_page.status == (200 if role in FIELD_DEFINERS else 403)
    for number in range(1, len(CUSTOMERS) + 1):
        value = await client.get(f"/customers/{number}/value")
        visible = number in want.customers
        assert value.status == (200 if visible else 404), number
        if visible:
            # Ops read the value page but get no forms to change it.
            has_form = f'action="/customers/{number}/value"' in await value.text()
            assert has_form == (role != "ops"), number


@pytest.mark.parametrize("role", ROLES)
async def test_access_api(client: Any, seeded: Seeded, role: str) -> None:
    want = expected(role, seeded)
    headers = {"Authorization": f"Bearer {seeded.tokens[want.email]}"}

    async def get(path: str, **params: str) -> Any:
        return await client.get(path, params=params, headers=headers)

    listed = await (await get("/api/v1/customers")).json()
    assert {item["id"] for item in listed["items"]} == want.customers
    for number in range(1, len(CUSTOMERS) + 1):
        stream = await get(f"/api/v1/customers/{number}/activities")
        assert stream.status == (200 if number in want.customers else 404), number
    for sid in (seeded.ana_call, seeded.chen_call):
        call = await get(f"/api/v1/calls/{sid}")
        assert call.status == (200 if sid in want.calls else 404), sid
        if sid in want.calls:
            body = await call.json()
            assert body["media_hidden"] is not want.media
            assert bool(body["recordings"]) == want.media
    report = await (await get("/api/v1/reports/reps", **DAYS)).json()
    assert {item["name"] for item in report["items"]} == want.reps
    export = await get("/api/v1/exports/activities.csv", **DAYS)
    rows = list(csv.DictReader(io.StringIO((await export.read()).decode("utf-8-sig"))))
    assert {row["rep"] for row in rows} == want.reps & {ANA.name, CHEN.name}
    audit = await get("/api/v1/audit")
    assert audit.status == (200 if want.admin else 403)
    for number in range(1, len(CUSTOMERS) + 1):
        value = await get(f"/api/v1/customers/{number}/value")
        assert value.status == (200 if number in want.customers else 404), number
        changed = await client.patch(
            f"/api/v1/customers/{number}/value",
            json={"judgement": "uncertain"},
            headers=headers,
        )
        if number not in want.customers:
            assert changed.status == (403 if role == "ops" else 404), number
        else:
            assert changed.status == (403 if role == "ops" else 200), number
    fields = await client.post(
        "/api/v1/custom-fields",
        json={"key": f"k_{role.replace(' ', '_')}", "label": "x", "kind": "text"},
        headers=headers,
    )
    assert fields.status == (201 if role in FIELD_DEFINERS else 403)
    imported = await client.post(
        "/api/v1/imports/activities",
        data=b"external_id,occurred_at,channel\n",
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert imported.status == (200 if want.admin else 403)


def error_of(html: str) -> str:
    found = re.search(r'<p class="error">(.*?)</p>', html)
    assert found is not None
    return re.sub(r"<[^>]+>", "", found.group(1))


async def test_access_guessed_ids_look_missing(client: Any, seeded: Seeded) -> None:
    await login(client, ANA.email)

    other = await client.get("/customers/5")
    missing = await client.get("/customers/999")
    padded = await client.get("/customers/01")
    other_call = await client.get(f"/calls/{seeded.chen_call}")
    missing_call = await client.get(f"/calls/{new_sid('CA')}")

    assert other.status == missing.status == 404
    # Customer 1 is Ana's, but only under its one spelling.
    assert padded.status == 404
    assert error_of(await other.text()) == "customer 5 not found (field: id)"
    assert error_of(await missing.text()) == "customer 999 not found (field: id)"
    assert other_call.status == missing_call.status == 404


async def test_access_search_stays_in_scope(client: Any, seeded: Seeded) -> None:
    await login(client, ANA.email)

    by_phone = await client.get("/customers", params={"q": CUSTOMERS[4].phone})
    headers = {"Authorization": f"Bearer {seeded.tokens[ANA.email]}"}
    api = await client.get(
        "/api/v1/customers", params={"phone": CUSTOMERS[4].phone}, headers=headers
    )

    assert CUSTOMERS[4].name not in await by_phone.text()
    assert (await api.json())["items"] == []


async def test_access_rep_sees_own_call_with_others_customer(
    client: Any, seeded: Seeded
) -> None:
    ben_call = await add_call(client, BEN.phone, CUSTOMERS[0].phone)
    await login(client, BEN.email)

    call = await client.get(f"/calls/{ben_call}")
    customer = await client.get("/customers/1")

    assert call.status == 200
    assert customer.status == 404


async def test_access_playback_and_export_audited(
    client: Any, seeded: Seeded, database: Database, tmp_path: Path
) -> None:
    await login(client, ANA.email)
    headers = {"Authorization": f"Bearer {seeded.tokens['omar@demo.touchline.test']}"}

    await client.get(f"/recordings/{seeded.ana_recording}.wav")
    await client.get(
        f"/recordings/{seeded.ana_recording}.wav", headers={"Range": "bytes=10-"}
    )
    await client.get("/api/v1/exports/activities.csv", params=DAYS, headers=headers)

    async with database.reads() as session:
        events = list(await session.scalars(select(AuditEvent)))
    played = [event for event in events if event.action == "recording_played"]
    exported = [event for event in events if event.action == "export_downloaded"]
    assert len(played) == 1
    assert played[0].actor_email == ANA.email
    assert played[0].target_id == seeded.ana_recording
    assert len(exported) == 1
    assert exported[0].actor_email == "omar@demo.touchline.test"
    assert '"from": "2026-11-01"' in exported[0].detail
    assert '"to": "2026-12-31"' in exported[0].detail


async def test_sees_user_agrees_with_visible_users(database: Database) -> None:
    async with database.reads() as session:
        users = list(await session.execute(select(User.id, User.team_id)))
    teams = {team for _, team in users}
    viewers = [
        Viewer(user_id, "", role, team)
        for role in ROLES
        for user_id, team in [*users, (0, None)]
    ] + [Viewer(0, "", "manager", team) for team in teams]

    async with database.reads() as session:
        for viewer in viewers:
            query = select(User.id).where(visible_users(viewer))
            visible = set(await session.scalars(query))
            found = {
                user_id for user_id, team in users if sees_user(viewer, user_id, team)
            }
            assert found == visible, viewer
