"""A single writer that commits queued changes in batches, on its own thread.

Webhooks arrive many at a time, and one commit per request makes SQLite
writers queue on the database lock. Instead, each request hands its change
to this writer and waits. The writer applies every change waiting in the
queue inside one transaction and commits once. A request gets its response
only after the commit of its batch, so an acknowledged webhook is durable.

A change is an item and the bulk function that applies it. Items of the
same bulk function in one batch are applied by one call, so that a batch of
call status events costs a few statements rather than a few per event.

Batches run on a dedicated thread with a synchronous session. The event
loop keeps serving requests meanwhile, and a statement costs one call into
the driver instead of several hops between the loop and a driver thread.

If a batch raises, it is rolled back and each of its changes runs again in a
transaction of its own, so one bad request cannot fail the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

T = TypeVar("T")
Change = Callable[[Session], Any]
# Applies items in a session and returns one result per item, in order.
BulkApply = Callable[[Session, list[Any]], list[Any]]

# Changes committed together at most; bounds the time one batch holds the lock.
MAX_BATCH = 256


class WriterStopped(RuntimeError):
    """The writer is not running, so the change was not stored."""


@dataclass
class _Item:
    apply: BulkApply
    payload: Any
    future: asyncio.Future[Any] = field(repr=False)


@dataclass
class _Outcome:
    result: Any = None
    error: BaseException | None = None


def _run_each(session: Session, changes: list[Change]) -> list[Any]:
    return [change(session) for change in changes]


class BatchWriter:
    def __init__(
        self,
        sessions: Callable[[], sessionmaker[Session]],
        *,
        max_batch: int = MAX_BATCH,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        # A factory, so that the engine is created when the writer starts.
        self.session_factory = sessions
        self.sessions: sessionmaker[Session] | None = None
        self.max_batch = max_batch
        self.after_commit = after_commit
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.in_flight: asyncio.Future[None] | None = None
        self.executor: ThreadPoolExecutor | None = None
        # Counters for diagnostics: batches committed, changes taken from the queue.
        self.batches = 0
        self.items = 0

    async def start(self) -> None:
        self.sessions = self.session_factory()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="writer")
        self.task = asyncio.create_task(self._run(), name="batch-writer")

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self.task is None:
            return
        task, self.task = self.task, None
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self.in_flight is not None:
            # The batch being committed when the task was cancelled.
            await self.in_flight
        remaining = []
        while not self.queue.empty():
            remaining.append(self.queue.get_nowait())
        if remaining:
            await self._write(remaining)
        if self.executor is not None:
            self.executor.shutdown(wait=True)

    async def run(self, change: Callable[[Session], T]) -> T:
        """Run `change` in the next batch and return its result once committed."""
        result: T = await self.submit(_run_each, change)
        return result

    async def submit(self, apply: BulkApply, payload: Any) -> Any:
        """Apply `payload` with `apply` in the next batch; return its result."""
        if self.task is None or self.task.done():
            raise WriterStopped("the database writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        await self.queue.put(_Item(apply, payload, future))
        return await future

    async def _run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            self.items += len(batch)
            self.in_flight = asyncio.ensure_future(self._write(batch))
            # Cancelling the writer must not abandon a batch mid-commit.
            await asyncio.shield(self.in_flight)
            self.in_flight = None

    async def _write(self, batch: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        outcomes = await loop.run_in_executor(self.executor, self._write_batch, batch)
        for item, outcome in zip(batch, outcomes, strict=True):
            if item.future.done():
                continue
            if outcome.error is not None:
                item.future.set_exception(outcome.error)
            else:
                item.future.set_result(outcome.result)
        if self.after_commit is not None and any(o.error is None for o in outcomes):
            self.after_commit()

    def _write_batch(self, batch: list[_Item]) -> list[_Outcome]:
        """Commit the batch in one transaction, or item by item if that fails."""
        try:
            return [_Outcome(result) for result in self._commit(batch)]
        except Exception as error:
            log.warning(
                "batch of %s failed (%r); writing one by one", len(batch), error
            )
        return [self._write_alone(item) for item in batch]

    def _write_alone(self, item: _Item) -> _Outcome:
        # A conflict with another process (both created the same call) passes
        # once the other commit is visible, so one retry is enough.
        for attempt in (1, 2):
            try:
                [result] = self._commit([item])
            except (IntegrityError, OperationalError) as error:
                if attempt == 2:
                    return _Outcome(error=error)
            except Exception as error:
                return _Outcome(error=error)
            else:
                return _Outcome(result)
        raise AssertionError("unreachable")

    def _commit(self, batch: list[_Item]) -> list[Any]:
        assert self.sessions is not None
        groups: dict[BulkApply, list[int]] = {}
        for index, item in enumerate(batch):
            groups.setdefault(item.apply, []).append(index)
        results: list[Any] = [None] * len(batch)
        with self.sessions() as session, session.begin():
            for apply, indexes in groups.items():
                outputs = apply(session, [batch[i].payload for i in indexes])
                for index, output in zip(indexes, outputs, strict=True):
                    results[index] = output
        self.batches += 1
        return results
