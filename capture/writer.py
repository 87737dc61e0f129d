"""A single writer task that commits queued changes in batches.

Webhooks arrive many at a time, and one commit per request makes SQLite
writers queue on the database lock. Instead, each request hands its change
to this writer and waits; the writer runs every change waiting in the queue
inside one transaction and commits once. A request is answered only after
the commit of its batch, so an acknowledged webhook is durable.

If one change in a batch raises, the batch is rolled back and each of its
changes runs again in a transaction of its own, so one bad request cannot
fail the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

T = TypeVar("T")
Change = Callable[[AsyncSession], Awaitable[Any]]

# Changes committed together at most; bounds the time one batch holds the lock.
MAX_BATCH = 256


class WriterStopped(RuntimeError):
    """The writer is not running, so the change was not stored."""


@dataclass
class _Item:
    change: Change
    future: asyncio.Future[Any] = field(repr=False)


class BatchWriter:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_batch: int = MAX_BATCH,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.max_batch = max_batch
        self.after_commit = after_commit
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.batches = 0

    async def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="batch-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self.task is None:
            return
        task, self.task = self.task, None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        while not self.queue.empty():
            await self._write([self.queue.get_nowait()])

    async def submit(self, change: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `change` in the next batch and return its result once committed."""
        if self.task is None or self.task.done():
            raise WriterStopped("the database writer is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        await self.queue.put(_Item(change, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            await asyncio.shield(self._write(batch))

    async def _write(self, batch: list[_Item]) -> None:
        try:
            results = await self._commit(batch)
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0], error=error)
                return
            log.warning(
                "batch of %s failed (%r); writing one by one", len(batch), error
            )
            for item in batch:
                await self._write_alone(item)
            return
        for item, result in zip(batch, results, strict=True):
            _settle(item, result=result)
        self._committed()

    async def _write_alone(self, item: _Item) -> None:
        # A conflict with another process (both created the same call) passes
        # once the other commit is visible, so one retry is enough.
        for attempt in (1, 2):
            try:
                [result] = await self._commit([item])
            except (IntegrityError, OperationalError) as error:
                if attempt == 2:
                    _settle(item, error=error)
                    return
                continue
            except Exception as error:
                _settle(item, error=error)
                return
            _settle(item, result=result)
            self._committed()
            return

    async def _commit(self, batch: list[_Item]) -> list[Any]:
        async with self.sessions() as session, session.begin():
            results = [await item.change(session) for item in batch]
        self.batches += 1
        return results

    def _committed(self) -> None:
        if self.after_commit is not None:
            self.after_commit()


def _settle(
    item: _Item, *, result: Any = None, error: BaseException | None = None
) -> None:
    if item.future.done():
        return
    if error is not None:
        item.future.set_exception(error)
    else:
        item.future.set_result(result)
