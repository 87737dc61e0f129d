"""A single writer that commits queued changes in batches, on its own thread.

Webhooks arrive many at a time, and one commit per request makes SQLite
writers queue on the database lock. Instead, each request hands its change
to this writer and waits. The writer applies every change waiting in the
queue inside one transaction and commits once. A request gets its response
only after the commit of its batch, so an acknowledged webhook is durable.

A change is an item and the bulk function that applies it. Items of the
same bulk function in one batch are applied by one call, so that a batch of
call status events costs a few statements rather than a few per event.

Batches run on a thread of their own with a synchronous session. The
thread takes changes straight from a thread-safe queue and starts the next
batch as soon as one commits, without waiting for the event loop, which
keeps serving requests meanwhile. The results of a batch go back to the
loop in one callback.

If a batch raises, it is rolled back and each of its changes runs again in a
transaction of its own, so one bad request cannot fail the others.

Several web processes may write to one PostgreSQL database. A payload can
name the resource it writes with a `lock_key` (a call, a message), and a
batch takes the advisory locks of all its keys before its first change,
so two processes never both create the same call.

The thread keeps one database connection open between batches: taking a
connection from the pool and handing it back cost about a sixth of a
batch. A batch that fails closes the connection, so a connection the
server dropped is replaced by the next batch.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from capture import rollups
from capture.sql import lock_keys

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


# Put on the queue by stop(): the thread commits what came before it and ends.
_STOP = None


@dataclass(frozen=True)
class _KeyedChange:
    """A change with the key of the resource it writes, if it names one."""

    change: Change
    lock_key: str | None

    def __call__(self, session: Session) -> Any:
        return self.change(session)


def _run_each(session: Session, changes: list[Change]) -> list[Any]:
    return [change(session) for change in changes]


class BatchWriter:
    def __init__(
        self,
        sessions: Callable[[], sessionmaker[Session]],
        *,
        max_batch: int = MAX_BATCH,
        zone: ZoneInfo | None = None,
    ) -> None:
        # A factory, so that the engine is created when the writer starts.
        self.session_factory = sessions
        self.sessions: sessionmaker[Session] | None = None
        # Used by the writer's thread only.
        self.connection: Connection | None = None
        self.max_batch = max_batch
        # The organisation's time zone, which decides the day of a touch count.
        self.zone = zone or ZoneInfo("UTC")
        self.queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.accepting = False
        # Counters for diagnostics: batches committed, changes taken from the queue.
        self.batches = 0
        self.items = 0

    async def start(self) -> None:
        self.sessions = self.session_factory()
        self.loop = asyncio.get_running_loop()
        self.thread = threading.Thread(
            target=self._run, name="batch-writer", daemon=True
        )
        self.thread.start()
        self.accepting = True

    async def stop(self) -> None:
        """Commit every change submitted so far, then stop."""
        if self.thread is None:
            return
        self.accepting = False
        thread, self.thread = self.thread, None
        self.queue.put(_STOP)
        await asyncio.to_thread(thread.join)
        # Results of the last batches were scheduled before the thread ended.
        await asyncio.sleep(0)

    async def run(
        self, change: Callable[[Session], T], *, lock_key: str | None = None
    ) -> T:
        """Run `change` in the next batch and return its result once committed.

        `lock_key` names the resource the change may create (see `lock_keys`).
        """
        payload = change if lock_key is None else _KeyedChange(change, lock_key)
        result: T = await self.submit(_run_each, payload)
        return result

    async def submit(self, apply: BulkApply, payload: Any) -> Any:
        """Apply `payload` with `apply` in the next batch; return its result."""
        return await self.post(apply, payload)

    def post(self, apply: BulkApply, payload: Any) -> asyncio.Future[Any]:
        """Queue `payload` for the next batch; the future resolves after commit.

        A caller that does not wait must still retrieve the future's
        exception, for example in a done callback.
        """
        if not self.accepting:
            raise WriterStopped("the database writer is not running")
        assert self.loop is not None
        future: asyncio.Future[Any] = self.loop.create_future()
        self.queue.put(_Item(apply, payload, future))
        return future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[_Item] = []
            item = self.queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)
                if len(batch) >= self.max_batch:
                    break
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self.items += len(batch)
                outcomes = self._write_batch(batch)
                self._deliver_threadsafe(batch, outcomes)
        self._close_connection()

    def _deliver_threadsafe(self, batch: list[_Item], outcomes: list[_Outcome]) -> None:
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(_deliver, batch, outcomes)
        except RuntimeError:
            # The loop is closed, so no request is waiting for these results.
            log.warning("event loop closed; %s results not delivered", len(batch))

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
        # A conflict with another process (both wrote the same row) passes
        # once the other commit is visible, so one retry is enough. Callbacks
        # of one call or message take a lock first and do not conflict.
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
        try:
            with self.sessions(bind=self._connection()) as session, session.begin():
                lock_keys(session, _lock_keys_of(batch))
                for apply, indexes in groups.items():
                    outputs = apply(session, [batch[i].payload for i in indexes])
                    for index, output in zip(indexes, outputs, strict=True):
                        results[index] = output
                rollups.refresh_marked(session, self.zone)
        except BaseException:
            self._close_connection()
            raise
        self.batches += 1
        return results

    def _connection(self) -> Connection:
        if self.connection is None:
            assert self.sessions is not None
            engine: Engine = self.sessions.kw["bind"]
            self.connection = engine.connect()
        return self.connection

    def _close_connection(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            connection.close()
        except Exception as error:
            # A connection the server dropped can fail to close; it is gone anyway.
            log.warning("closing the writer's connection failed: %r", error)


def _lock_keys_of(batch: list[_Item]) -> list[str]:
    """Keys of the resources the batch writes; see `capture.sql.lock_keys`."""
    keys = []
    for item in batch:
        key = getattr(item.payload, "lock_key", None)
        if key is not None:
            keys.append(key)
    return keys


def _deliver(batch: list[_Item], outcomes: list[_Outcome]) -> None:
    """Hand each waiting request its result; runs on the event loop."""
    for item, outcome in zip(batch, outcomes, strict=True):
        if item.future.done():
            continue
        if outcome.error is not None:
            item.future.set_exception(outcome.error)
        else:
            item.future.set_result(outcome.result)
