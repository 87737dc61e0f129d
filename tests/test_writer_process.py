"""The writer's process: registered changes commit in a child process, the
rest on the thread, and a child that dies is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import make_settings, post_signed, start_client
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from twilio_params import call_status, new_sid

from capture import writer_process
from capture.db import Database, transaction
from capture.demo import load_demo
from capture.demo_data import CUSTOMERS, REPS
from capture.models import CallEvent, Team
from capture.settings import SettingsError, load_settings
from capture.writer import BatchWriter, WriterStopped
from capture.writer_process import MAX_FAILED_STARTS, ProcessWriter, WriterError
from web.app import create_app
from web.keys import WRITER

# Bulk applies of the tests. They are module-level functions, so that the
# writer's process can import them by name.


def add_teams(session: Session, names: list[str]) -> list[int]:
    """Add a team per name; return the id of the process that added it."""
    for name in names:
        if name == "bad":
            raise ValueError("this change always fails")
        session.add(Team(name=name))
    session.flush()
    return [os.getpid()] * len(names)


def sleep_then_add(session: Session, names: list[str]) -> list[str]:
    time.sleep(30)
    return add_teams_named(session, names)


def echo(session: Session, payloads: list[bytes]) -> list[bytes]:
    return payloads


def add_teams_named(session: Session, names: list[str]) -> list[str]:
    add_teams(session, names)
    return names


class Unpicklable(Exception):
    def __init__(self, *, reason: str) -> None:
        super().__init__(reason)


def raise_unpicklable(session: Session, names: list[str]) -> list[str]:
    raise Unpicklable(reason="needs a keyword to be rebuilt")


async def team_names(database: Database) -> list[str]:
    async with database.reads() as session:
        return list(
            (await session.scalars(select(Team.name).order_by(Team.name))).all()
        )


def add_team_here(name: str) -> Any:
    def change(session: Session) -> int:
        session.add(Team(name=name))
        session.flush()
        return os.getpid()

    return change


@pytest.fixture
async def writer(database: Database, database_url: str) -> Any:
    writer = ProcessWriter(database.batch_sessions, database_url)
    for apply in (add_teams, sleep_then_add, add_teams_named, raise_unpicklable, echo):
        writer.register(apply)
    await writer.start()
    yield writer
    await writer.stop()


async def test_registered_changes_commit_in_the_writers_process(
    writer: ProcessWriter, database: Database
) -> None:
    names = [f"team {number:02d}" for number in range(40)]

    pids = await asyncio.gather(*(writer.submit(add_teams, name) for name in names))

    assert writer.process is not None
    assert set(pids) == {writer.process.pid}
    assert writer.process.pid != os.getpid()
    assert await team_names(database) == names
    assert 1 <= writer.batches < len(names)
    assert writer.items == len(names)


async def test_other_changes_run_on_the_thread(
    writer: ProcessWriter, database: Database
) -> None:
    thread_pid, process_pid = await asyncio.gather(
        writer.run(add_team_here("alpha")), writer.submit(add_teams, "beta")
    )

    assert thread_pid == os.getpid()
    assert process_pid != os.getpid()
    assert await team_names(database) == ["alpha", "beta"]


async def test_bad_change_fails_alone_in_the_process(
    writer: ProcessWriter, database: Database
) -> None:
    results = await asyncio.gather(
        *(writer.submit(add_teams, name) for name in ("alpha", "bad", "gamma")),
        return_exceptions=True,
    )

    assert isinstance(results[1], ValueError)
    assert str(results[1]) == "this change always fails"
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[2], BaseException)
    assert await team_names(database) == ["alpha", "gamma"]


async def test_error_that_does_not_pickle_keeps_its_text(
    writer: ProcessWriter,
) -> None:
    with pytest.raises(WriterError, match="Unpicklable: needs a keyword"):
        await writer.submit(raise_unpicklable, "x")


async def test_payload_that_does_not_pickle_fails_alone(
    writer: ProcessWriter, database: Database
) -> None:
    results = await asyncio.gather(
        writer.submit(add_teams_named, "alpha"),
        writer.submit(add_teams_named, lambda: "no"),
        return_exceptions=True,
    )

    assert results[0] == "alpha"
    assert isinstance(results[1], Exception)
    assert await team_names(database) == ["alpha"]


async def test_killed_process_fails_its_changes_and_is_replaced(
    writer: ProcessWriter, database: Database
) -> None:
    assert writer.process is not None
    first = writer.process.pid
    assert first is not None
    stuck = asyncio.ensure_future(writer.submit(sleep_then_add, "lost"))
    await asyncio.sleep(0.5)

    os.kill(first, signal.SIGKILL)

    with pytest.raises(WriterStopped):
        await asyncio.wait_for(stuck, 10)
    pid = await asyncio.wait_for(writer.submit(add_teams, "after"), 10)
    assert pid not in (first, os.getpid())
    assert await team_names(database) == ["after"]


async def test_stop_commits_what_was_submitted(
    database: Database, database_url: str
) -> None:
    writer = ProcessWriter(database.batch_sessions, database_url)
    writer.register(add_teams_named)
    await writer.start()
    pending = [
        asyncio.ensure_future(writer.submit(add_teams_named, f"late {n}"))
        for n in range(5)
    ]
    await asyncio.sleep(0)

    await writer.stop()

    assert await asyncio.gather(*pending) == [f"late {n}" for n in range(5)]
    assert await team_names(database) == [f"late {n}" for n in range(5)]
    assert writer.process is None
    with pytest.raises(WriterStopped):
        await writer.submit(add_teams_named, "too late")


async def test_stop_waits_for_restart_after_failed_start(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file is at the path of the database's folder, so every child
    # ends before its first message, and the next starts after a pause.
    monkeypatch.setattr(writer_process, "RESTART_PAUSE", 3.0)
    (tmp_path / "file").write_text("not a folder")
    writer = ProcessWriter(
        database.batch_sessions, f"sqlite:///{tmp_path / 'file' / 'db.sqlite'}"
    )
    writer.register(add_teams)
    await writer.start()
    for _ in range(3000):
        # The child of the first restart ended, while that restart still
        # ran, and the second restart waits for its pause.
        if writer.failed_starts == 2 and writer.process is None:
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the writer's children did not end while starting")
    assert writer.restarting is not None

    await writer.stop()
    await asyncio.sleep(0.5)

    assert writer.restarting is None
    assert writer.process is None
    assert writer.channel is None


async def loop_delay(seconds: float) -> float:
    """Return the longest a 10 ms sleep overran while `seconds` passed."""
    worst = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        await asyncio.sleep(0.01)
        worst = max(worst, time.monotonic() - started - 0.01)
    return worst


async def test_stopped_process_does_not_block_the_loop(
    writer: ProcessWriter,
) -> None:
    assert writer.process is not None and writer.process.pid is not None
    pid = writer.process.pid
    payloads = [bytes([number % 256]) * 20_000 for number in range(300)]
    os.kill(pid, signal.SIGSTOP)
    try:
        pending = [asyncio.ensure_future(writer.submit(echo, p)) for p in payloads]
        await asyncio.sleep(0)

        delay = await loop_delay(1.0)

        assert writer.channel is not None
        assert writer.channel.unsent_bytes > 0
        assert not any(future.done() for future in pending)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert delay < 0.5
    assert await asyncio.wait_for(asyncio.gather(*pending), 60) == payloads


async def test_large_changes_and_results_both_ways(writer: ProcessWriter) -> None:
    payloads = [bytes([number % 256]) * 20_000 for number in range(100)]
    results = []
    for _ in range(20):
        turn = [writer.post(echo, payload) for payload in payloads]
        results.append(asyncio.gather(*turn))
        await asyncio.sleep(0)

    done = await asyncio.wait_for(asyncio.gather(*results), 60)

    assert all(turn == payloads for turn in done)


async def test_failed_starts_fall_back_to_the_thread(
    database: Database, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("not a folder")
    writer = ProcessWriter(
        database.batch_sessions, f"sqlite:///{tmp_path / 'file' / 'db.sqlite'}"
    )
    writer.register(add_teams)
    await writer.start()
    try:
        for _ in range(3000):
            if not writer.codes:
                break
            await asyncio.sleep(0.01)

        pid = await asyncio.wait_for(writer.submit(add_teams, "on the thread"), 10)

        assert writer.failed_starts == MAX_FAILED_STARTS
        assert pid == os.getpid()
        assert writer.restarting is None
        assert await team_names(database) == ["on the thread"]
    finally:
        await writer.stop()


@pytest.mark.parametrize("mode", ["process", "thread"])
async def test_status_webhook_stored_by_either_writer(
    aiohttp_client: Any, tmp_path: Path, database_url: str, mode: str
) -> None:
    settings = make_settings(tmp_path / "data", database_url, webhook_writer=mode)
    database = Database(settings.database_url)
    try:
        async with transaction(database.writes) as session:
            await load_demo(session, settings.default_region, "unused-hash")
        app = create_app(settings, run_worker=False)
        client = await start_client(aiohttp_client, app)
        call_sid = new_sid("CA")
        params = call_status(
            call_sid,
            "completed",
            3,
            caller=REPS[0].phone,
            called=CUSTOMERS[0].phone,
            duration=9,
        )

        response = await post_signed(client, "/twilio/voice/status", params)

        assert response.status == 204
        assert isinstance(app[WRITER], ProcessWriter) == (mode == "process")
        assert isinstance(app[WRITER], BatchWriter)
        async with database.reads() as session:
            stored = await session.scalar(
                select(func.count()).where(CallEvent.call_sid == call_sid)
            )
        assert stored == 1
    finally:
        await database.dispose()


def test_unknown_writer_mode_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="webhook_writer"):
        load_settings(
            environ={},
            overrides={
                "data_dir": str(tmp_path),
                "secret_key": "s" * 40,
                "twilio_auth_token": "token",
                "webhook_writer": "fork",
            },
        )
