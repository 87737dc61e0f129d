"""Recording callbacks and the download job, with a loopback media host."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import numpy as np
from audio import write_wav
from conftest import post_signed
from media_host import MediaHost, media_host
from sqlalchemy import select, update
from twilio_params import call_status, new_sid, recording_status

from capture.db import Database
from capture.demo_data import CUSTOMERS, REPS
from capture.models import Job, Recording, utcnow
from capture.recordings import DOWNLOAD_JOB
from capture.worker import Worker
from web.keys import SETTINGS, WORKER

ANA = REPS[0]
HARBOR = CUSTOMERS[0]


def wav_bytes(tmp_path: Any) -> bytes:
    path = tmp_path / "tone.wav"
    samples = np.zeros((8000, 2), dtype=np.int16)
    write_wav(path, samples, 8000)
    return path.read_bytes()


async def start_call(client: Any) -> str:
    sid = new_sid("CA")
    params = call_status(
        sid, "completed", 3, caller=ANA.phone, called=HARBOR.phone, duration=1
    )
    assert (await post_signed(client, "/twilio/voice/status", params)).status == 204
    return sid


async def recording_row(database: Database, recording_sid: str) -> Recording:
    async with database.reads() as session:
        row = await session.scalar(
            select(Recording).where(Recording.recording_sid == recording_sid)
        )
    assert row is not None
    return row


async def job_rows(database: Database) -> list[Job]:
    async with database.reads() as session:
        return list((await session.execute(select(Job).order_by(Job.id))).scalars())


async def make_due(database: Database) -> None:
    async with database.writes() as session, session.begin():
        await session.execute(
            update(Job).values(run_after=utcnow() - timedelta(seconds=1))
        )


async def test_recording_absent_marks_no_recording(
    client: Any, as_admin: str, database: Database
) -> None:
    call_sid = await start_call(client)
    recording_sid = new_sid("RE")

    response = await post_signed(
        client,
        "/twilio/voice/recording",
        recording_status(call_sid, recording_sid, "absent"),
    )

    assert response.status == 204
    assert (await recording_row(database, recording_sid)).status == "absent"
    assert await job_rows(database) == []
    detail = await (await client.get(f"/calls/{call_sid}")).text()
    assert "absent" in detail


async def test_recording_completed_downloads_once(
    client: Any, as_admin: str, database: Database, tmp_path: Any
) -> None:
    call_sid = await start_call(client)
    recording_sid = new_sid("RE")
    body = wav_bytes(tmp_path)
    host = MediaHost(files={f"/Recordings/{recording_sid}": body})
    async with media_host(host):
        params = recording_status(
            call_sid,
            recording_sid,
            "completed",
            url=f"{host.base_url}/Recordings/{recording_sid}",
            duration=1,
        )
        await post_signed(client, "/twilio/voice/recording", params)
        await post_signed(client, "/twilio/voice/recording", params)
        worker: Worker = client.app[WORKER]
        ran = await worker.run_once()

    assert ran is True
    assert len(host.requests) == 1
    assert host.auth_headers[0] is not None
    assert host.auth_headers[0].startswith("Basic ")
    recording = await recording_row(database, recording_sid)
    assert recording.status == "stored"
    assert recording.size_bytes == len(body)
    jobs = await job_rows(database)
    assert [job.kind for job in jobs].count(DOWNLOAD_JOB) == 1
    served = await client.get(
        f"/recordings/{recording_sid}.wav", headers={"Range": "bytes=0-99"}
    )
    assert served.status == 206
    assert await served.read() == body[:100]


async def test_recording_not_ready_retried_until_served(
    client: Any, database: Database, tmp_path: Any
) -> None:
    call_sid = await start_call(client)
    recording_sid = new_sid("RE")
    host = MediaHost(files={f"/R/{recording_sid}": wav_bytes(tmp_path)}, not_ready=1)
    worker: Worker = client.app[WORKER]
    async with media_host(host):
        params = recording_status(
            call_sid,
            recording_sid,
            "completed",
            url=f"{host.base_url}/R/{recording_sid}",
            duration=1,
        )
        await post_signed(client, "/twilio/voice/recording", params)
        first = await worker.run_once()
        after_first = (await job_rows(database))[0]
        await make_due(database)
        second = await worker.run_once()

    assert first is True
    assert after_first.status == "queued"
    assert after_first.attempts == 1
    assert "404" in (after_first.last_error or "")
    assert second is True
    assert len(host.requests) == 2
    assert (await recording_row(database, recording_sid)).status == "stored"


async def test_recording_host_not_allowed_not_fetched(
    client: Any, database: Database, tmp_path: Any, aiohttp_client: Any
) -> None:
    call_sid = await start_call(client)
    recording_sid = new_sid("RE")
    host = MediaHost(files={f"/R/{recording_sid}": wav_bytes(tmp_path)})
    worker: Worker = client.app[WORKER]
    async with media_host(host):
        # localhost resolves to the same server, but only 127.0.0.1 is listed.
        url = host.base_url.replace("127.0.0.1", "localhost") + f"/R/{recording_sid}"
        params = recording_status(
            call_sid, recording_sid, "completed", url=url, duration=1
        )
        await post_signed(client, "/twilio/voice/recording", params)
        await worker.run_once()

    assert host.requests == []
    [job] = await job_rows(database)
    assert job.status == "dead"
    assert "not in media_hosts" in (job.last_error or "")
    recording = await recording_row(database, recording_sid)
    assert recording.status == "completed"
    assert "not in media_hosts" in (recording.error or "")


async def test_recording_callback_validates_fields(
    client: Any, database: Database
) -> None:
    params = recording_status(new_sid("CA"), new_sid("RE"), "completed", duration=3)

    response = await post_signed(client, "/twilio/voice/recording", params)

    assert response.status == 400
    assert (await response.json())["field"] == "RecordingUrl"
    assert await job_rows(database) == []


async def test_recording_before_call_status_joins_later(
    client: Any, as_admin: str, database: Database
) -> None:
    parent = new_sid("CA")
    child = new_sid("CA")
    recording_sid = new_sid("RE")
    await post_signed(
        client,
        "/twilio/voice/recording",
        recording_status(parent, recording_sid, "absent"),
    )
    leg = call_status(
        child,
        "completed",
        3,
        caller=HARBOR.phone,
        called=ANA.phone,
        direction="outbound-dial",
        parent=parent,
        duration=12,
    )

    await post_signed(client, "/twilio/voice/status", leg)

    page = await (await client.get(f"/calls/{child}")).text()
    assert recording_sid in page
    assert "absent" in page


async def run_download(client: Any, host: MediaHost, url: str) -> str:
    call_sid = await start_call(client)
    recording_sid = new_sid("RE")
    params = recording_status(call_sid, recording_sid, "completed", url=url, duration=1)
    await post_signed(client, "/twilio/voice/recording", params)
    worker: Worker = client.app[WORKER]
    await worker.run_once()
    return recording_sid


async def test_recording_html_is_not_stored(client: Any, database: Database) -> None:
    host = MediaHost(files={"/R/page": b"<html>sign in first</html>"})
    async with media_host(host):
        recording_sid = await run_download(client, host, f"{host.base_url}/R/page")

    [job] = await job_rows(database)
    assert job.status == "dead"
    assert "not a WAV file" in (job.last_error or "")
    assert (await recording_row(database, recording_sid)).status == "completed"
    recordings = client.app[SETTINGS].recordings_dir
    assert list(recordings.glob("*")) == []


async def test_recording_url_with_credentials_refused(
    client: Any, database: Database, tmp_path: Any
) -> None:
    host = MediaHost(files={"/R/x": wav_bytes(tmp_path)})
    async with media_host(host):
        url = host.base_url.replace("http://", "http://user:pw@") + "/R/x"
        await run_download(client, host, url)

    assert host.requests == []
    [job] = await job_rows(database)
    assert job.status == "dead"
    assert "credentials" in (job.last_error or "")


async def test_recording_redirect_to_other_port_gets_no_credentials(
    client: Any, database: Database, tmp_path: Any
) -> None:
    target = MediaHost(files={"/final": wav_bytes(tmp_path)})
    async with media_host(target):
        origin = MediaHost(redirects={"/start": f"{target.base_url}/final"})
        async with media_host(origin):
            recording_sid = await run_download(
                client, origin, f"{origin.base_url}/start"
            )

    assert origin.auth_headers[0] is not None
    assert target.auth_headers == [None]
    assert (await recording_row(database, recording_sid)).status == "stored"


async def test_recording_stale_partials_removed(client: Any, tmp_path: Any) -> None:
    recordings = client.app[SETTINGS].recordings_dir
    recordings.mkdir(parents=True, exist_ok=True)
    stale = recordings / "tmpold.part"
    fresh = recordings / "tmpnew.part"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    os.utime(stale, (0, 0))
    host = MediaHost(files={"/R/x": wav_bytes(tmp_path)})

    async with media_host(host):
        await run_download(client, host, f"{host.base_url}/R/x")

    assert not stale.exists()
    assert fresh.exists()
