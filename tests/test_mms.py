"""Inbound MMS: media rows, the download job, and serving files on the stream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    free_port,
    login,
    make_settings,
    post_signed,
    start_client,
)
from media_host import MediaHost, media_host
from sqlalchemy import select, update
from twilio_params import inbound_mms, new_sid

from capture.accounts import create_token
from capture.db import Database, transaction
from capture.demo_data import CUSTOMERS, ORGANISATION_NUMBER, REPS
from capture.mms import DOWNLOAD_MEDIA_JOB
from capture.models import Activity, Job, Message, MessageMedia
from capture.settings import Settings
from capture.worker import Worker
from telephony.simulate.options import SimulationOptions
from telephony.simulate.run import run_simulation
from web.app import create_app
from web.keys import WORKER

ANA = REPS[0]
BEN = REPS[1]
HARBOR = CUSTOMERS[0]
OPS_EMAIL = "omar@demo.touchline.test"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64)
PDF = b"%PDF-1.4\n" + bytes(200)


async def media_rows(database: Database, message_sid: str) -> list[MessageMedia]:
    async with database.reads() as session:
        rows = await session.scalars(
            select(MessageMedia)
            .join(Message, MessageMedia.message_id == Message.id)
            .where(Message.message_sid == message_sid)
            .order_by(MessageMedia.position)
        )
        return list(rows)


async def customer_id_of(database: Database, message_sid: str) -> int:
    async with database.reads() as session:
        customer_id = await session.scalar(
            select(Activity.customer_id)
            .join(Message, Message.activity_id == Activity.id)
            .where(Message.message_sid == message_sid)
        )
    assert customer_id is not None
    return int(customer_id)


async def bearer(database: Database, email: str) -> dict[str, str]:
    async with transaction(database.writes) as session:
        secret, _ = await create_token(session, email)
    return {"Authorization": f"Bearer {secret}"}


async def run_jobs(client: Any, count: int) -> None:
    worker: Worker = client.app[WORKER]
    for _ in range(count):
        assert await worker.run_once() is True


async def send_mms(
    client: Any, host: MediaHost, files: dict[str, tuple[bytes, str]]
) -> str:
    sid = new_sid("MM")
    media = []
    for path, (body, content_type) in files.items():
        host.files[path] = body
        host.content_types[path] = content_type
        media.append((host.base_url + path, content_type))
    params = inbound_mms(sid, HARBOR.phone, ORGANISATION_NUMBER, "see attached", media)
    response = await post_signed(client, "/twilio/sms", params)
    assert response.status == 200, await response.text()
    return sid


async def test_mms_inbound_queues_downloads(client: Any, database: Database) -> None:
    host = MediaHost()
    async with media_host(host):
        sid = await send_mms(
            client,
            host,
            {"/M/a": (PNG, "image/png"), "/M/b": (PDF, "application/pdf")},
        )

    rows = await media_rows(database, sid)
    assert [row.position for row in rows] == [0, 1]
    assert [row.content_type for row in rows] == ["image/png", "application/pdf"]
    assert all(row.status == "pending" for row in rows)
    assert host.requests == []
    async with database.reads() as session:
        kinds = list(await session.scalars(select(Job.kind)))
        channel = await session.scalar(
            select(Activity.channel)
            .join(Message, Message.activity_id == Activity.id)
            .where(Message.message_sid == sid)
        )
    assert kinds == [DOWNLOAD_MEDIA_JOB, DOWNLOAD_MEDIA_JOB]
    assert channel == "mms"


async def test_mms_repeat_adds_no_media(client: Any, database: Database) -> None:
    host = MediaHost()
    async with media_host(host):
        sid = new_sid("MM")
        url = host.base_url + "/M/a"
        params = inbound_mms(
            sid, HARBOR.phone, ORGANISATION_NUMBER, "", [(url, "image/png")]
        )
        first = await post_signed(client, "/twilio/sms", params)
        second = await post_signed(client, "/twilio/sms", params)

    assert first.status == 200
    assert second.status == 200
    assert len(await media_rows(database, sid)) == 1


async def test_mms_media_shown_on_stream(
    client: Any, database: Database, settings: Settings
) -> None:
    host = MediaHost()
    async with media_host(host):
        sid = await send_mms(
            client,
            host,
            {"/M/a": (PNG, "image/png"), "/M/b": (PDF, "application/pdf")},
        )
        await run_jobs(client, 2)

    assert host.auth_headers[0] is not None
    rows = await media_rows(database, sid)
    assert [row.status for row in rows] == ["stored", "stored"]
    assert rows[0].size_bytes == len(PNG)
    image, document = rows
    assert (settings.data_dir / str(image.file_path)).read_bytes() == PNG
    customer_id = await customer_id_of(database, sid)

    await login(client, ANA.email)
    page = await (await client.get(f"/customers/{customer_id}")).text()
    assert f'<img class="mms" src="/media/{image.id}"' in page
    assert f'href="/media/{document.id}"' in page
    assert f'src="/media/{document.id}"' not in page

    served = await client.get(f"/media/{image.id}")
    assert served.status == 200
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["Content-Disposition"] == f'inline; filename="{sid}-0.png"'
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert await served.read() == PNG
    attachment = await client.get(f"/media/{document.id}")
    assert attachment.status == 200
    assert attachment.headers["Content-Type"] == "application/pdf"
    assert attachment.headers["Content-Disposition"].startswith("attachment;")

    api = await client.get(
        f"/api/v1/customers/{customer_id}/activities",
        headers=await bearer(database, ANA.email),
    )
    assert api.status == 200
    [activity] = [a for a in (await api.json())["items"] if a["channel"] == "mms"]
    assert [m["url"] for m in activity["message"]["media"]] == [
        f"/media/{image.id}",
        f"/media/{document.id}",
    ]


async def test_mms_media_hidden_from_others(client: Any, database: Database) -> None:
    host = MediaHost()
    async with media_host(host):
        sid = await send_mms(client, host, {"/M/a": (PNG, "image/png")})
        await run_jobs(client, 1)
    [image] = await media_rows(database, sid)

    anonymous = await client.get(f"/media/{image.id}", allow_redirects=False)
    assert anonymous.status in (302, 303)
    await login(client, BEN.email)
    assert (await client.get(f"/media/{image.id}")).status == 404
    await client.post("/logout", data={})
    await login(client, OPS_EMAIL)
    assert (await client.get(f"/media/{image.id}")).status == 200


async def test_mms_mislabelled_image_not_inline(
    client: Any, database: Database
) -> None:
    page = b"<html><script>alert(1)</script></html>"
    host = MediaHost()
    async with media_host(host):
        sid = await send_mms(client, host, {"/M/a": (page, "image/png")})
        await run_jobs(client, 1)
    [media] = await media_rows(database, sid)

    await login(client, ANA.email)
    served = await client.get(f"/media/{media.id}")

    assert served.status == 200
    assert served.headers["Content-Disposition"].startswith("attachment;")
    assert "sandbox" in served.headers["Content-Security-Policy"]


async def test_mms_path_outside_media_refused(
    client: Any, database: Database, settings: Settings
) -> None:
    host = MediaHost()
    async with media_host(host):
        sid = await send_mms(client, host, {"/M/a": (PNG, "image/png")})
        await run_jobs(client, 1)
    [media] = await media_rows(database, sid)
    secret = settings.data_dir / "secret.txt"
    secret.write_text("not media")
    async with database.writes() as session, session.begin():
        await session.execute(
            update(MessageMedia)
            .where(MessageMedia.id == media.id)
            .values(file_path="media/../secret.txt")
        )

    await login(client, ANA.email)
    assert (await client.get(f"/media/{media.id}")).status == 404
    assert (await client.get("/media/..%2Fsecret.txt")).status == 404
    assert (await client.get("/media/99999")).status == 404


async def test_mms_host_not_allowed_not_fetched(
    client: Any, database: Database
) -> None:
    host = MediaHost(files={"/M/a": PNG})
    async with media_host(host):
        sid = new_sid("MM")
        # localhost reaches the same server, but only 127.0.0.1 is listed.
        url = host.base_url.replace("127.0.0.1", "localhost") + "/M/a"
        params = inbound_mms(
            sid, HARBOR.phone, ORGANISATION_NUMBER, "", [(url, "image/png")]
        )
        assert (await post_signed(client, "/twilio/sms", params)).status == 200
        await run_jobs(client, 1)

    assert host.requests == []
    [media] = await media_rows(database, sid)
    assert media.status == "failed"
    assert "not in media_hosts" in (media.error or "")
    assert media.file_path is None


async def test_mms_over_size_cap_rejected(
    aiohttp_client: Any, demo: None, database_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path / "small", database_url, media_max_bytes=100)
    client = await start_client(aiohttp_client, create_app(settings, run_worker=False))
    host = MediaHost()
    async with media_host(host):
        sid = await send_mms(client, host, {"/M/a": (PDF, "application/pdf")})
        await run_jobs(client, 1)

    database = Database(settings.database_url)
    try:
        [media] = await media_rows(database, sid)
    finally:
        await database.dispose()
    assert len(PDF) > 100
    assert media.status == "failed"
    assert "over the cap of 100" in (media.error or "")
    assert not any(settings.media_dir.rglob("*"))


async def test_mms_media_url_invalid_rejected(client: Any, database: Database) -> None:
    sid = new_sid("MM")
    cases = [
        ({"NumMedia": "1"}, "MediaUrl0"),
        (
            {"NumMedia": "1", "MediaUrl0": "ftp://127.0.0.1/x"},
            "MediaUrl0",
        ),
        (
            {
                "NumMedia": "1",
                "MediaUrl0": "https://api.twilio.com/x",
                "MediaContentType0": "image png",
            },
            "MediaContentType0",
        ),
        ({"NumMedia": "11"}, "NumMedia"),
    ]
    for overrides, field in cases:
        params = inbound_mms(sid, HARBOR.phone, ORGANISATION_NUMBER, "", [])
        params.update(overrides)
        response = await post_signed(client, "/twilio/sms", params)
        assert response.status == 400, field
        assert (await response.json())["field"] == field
    async with database.reads() as session:
        assert (await session.scalar(select(Message.id))) is None


async def test_simulate_sends_mms(
    aiohttp_client: Any, demo: None, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path / "data", database_url, public_url=url)
    client = await aiohttp_client(
        create_app(settings, run_worker=False), server_kwargs={"port": port}
    )
    worker: Worker = client.app[WORKER]
    options = SimulationOptions(
        url=url,
        auth_token=AUTH_TOKEN,
        work_dir=tmp_path / "work",
        account_sid=ACCOUNT_SID,
        calls=0,
        sms=0,
        mms=2,
        rate=0,
        fetch_timeout_s=20,
    )
    done = asyncio.Event()

    async def work() -> None:
        while not done.is_set():
            if not await worker.run_once():
                await asyncio.sleep(0.05)

    working = asyncio.create_task(work())
    try:
        report = await run_simulation(options)
    finally:
        done.set()
        await working

    assert report.errors == []
    assert report.mms_sent == 2
    assert report.mms_media_not_fetched == []
    database = Database(settings.database_url)
    try:
        async with database.reads() as session:
            rows = list(
                await session.scalars(select(MessageMedia).order_by(MessageMedia.id))
            )
            channels = list(await session.scalars(select(Activity.channel)))
    finally:
        await database.dispose()
    assert [row.content_type for row in rows] == [
        "image/png",
        "image/png",
        "text/vcard",
    ]
    assert all(row.status == "stored" for row in rows)
    assert channels == ["mms", "mms"]
    stored = settings.data_dir / str(rows[0].file_path)
    assert stored.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
