"""The batch writer: changes commit together, and one bad change fails alone."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from capture.db import Database
from capture.models import Team
from capture.writer import BatchWriter, WriterStopped


def add_team(name: str) -> Any:
    def change(session: Session) -> str:
        session.add(Team(name=name))
        session.flush()
        return name

    return change


def broken(session: Session) -> None:
    raise ValueError("this change always fails")


async def team_names(database: Database) -> list[str]:
    async with database.reads() as session:
        return list(
            (await session.scalars(select(Team.name).order_by(Team.name))).all()
        )


@pytest.fixture
async def writer(database: Database) -> Any:
    writer = BatchWriter(database.batch_sessions)
    await writer.start()
    yield writer
    await writer.stop()


async def test_writer_batches_concurrent_changes(
    writer: BatchWriter, database: Database
) -> None:
    names = [f"team {number:02d}" for number in range(40)]

    results = await asyncio.gather(*(writer.run(add_team(name)) for name in names))

    assert results == names
    assert await team_names(database) == names
    assert writer.batches < len(names)


async def test_writer_bad_change_fails_alone(
    writer: BatchWriter, database: Database
) -> None:
    changes = [add_team("alpha"), broken, add_team("beta")]

    results = await asyncio.gather(
        *(writer.run(change) for change in changes), return_exceptions=True
    )

    assert results[0] == "alpha"
    assert isinstance(results[1], ValueError)
    assert results[2] == "beta"
    assert await team_names(database) == ["alpha", "beta"]


async def test_writer_conflict_rolls_back_change(
    writer: BatchWriter, database: Database
) -> None:
    await writer.run(add_team("gamma"))

    with pytest.raises(Exception, match=r"(?i)unique"):
        await writer.run(add_team("gamma"))

    async with database.reads() as session:
        count = await session.scalar(select(func.count()).select_from(Team))
    assert count == 1


async def test_writer_stopped_rejects_changes(database: Database) -> None:
    writer = BatchWriter(database.batch_sessions)

    with pytest.raises(WriterStopped):
        await writer.run(add_team("delta"))


async def test_writer_stop_commits_queued_changes(database: Database) -> None:
    writer = BatchWriter(database.batch_sessions)
    await writer.start()
    pending = [
        asyncio.ensure_future(writer.run(add_team(f"late {n}"))) for n in range(5)
    ]
    await asyncio.sleep(0)

    await writer.stop()

    results = await asyncio.gather(*pending)
    assert results == [f"late {n}" for n in range(5)]
    assert await team_names(database) == [f"late {n}" for n in range(5)]
