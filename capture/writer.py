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
from collections.abc import Callable, Iterator
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
Q = TypeVar("Q")
Change = Callable[[Session], Any]
# Applies items in a session and returns one result per item, in order.
BulkApply = Callable[[Session, list[Any]], list[Any]]
# One change waiting in a batch: its bulk apply and its payload.
Pending = tuple[BulkApply, Any]

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
class Outcome:
    """The result of one change of a batch, or the error it raised."""

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


class BatchCommitter:
    """Commits batches of changes on one connection it keeps open.

    Used by one thread at a time: the writer's thread, or the main thread
    of the writer's process (`capture.writer_process`).
    """

    def __init__(self, sessions: sessionmaker[Session], zone: ZoneInfo) -> None:
        self.sessions = sessions
        self.zone = zone
        self.connection: Connection | None = None
        # Batches committed, for diagnostics.
        self.batches = 0

    def write(self, batch: list[Pending]) -> list[Outcome]:
        """Commit the batch in one transaction, or item by item if that fails."""
        try:
            return [Outcome(result) for result in self._commit(batch)]
        except Exception as error:
            log.warning(
                "batch of %s failed (%r); writing one by one", len(batch), error
            )
        return [self._write_alone(pending) for pending in batch]

    def _write_alone(self, pending: Pending) -> Outcome:
        # A conflict with another process (both wrote the same row) passes
        # once the other commit is visible, so one retry is enough. Callbacks
        # of one call or message take a lock first and do not conflict.
        for attempt in (1, 2):
            try:
                [result] = self._commit([pending])
            except (IntegrityError, OperationalError) as error:
                if attempt == 2:
                    return Outcome(error=error)
            except Exception as error:
                return Outcome(error=error)
            else:
                return Outcome(result)
        raise AssertionError("unreachable")

    def _commit(self, batch: list[Pending]) -> list[Any]:
        groups: dict[BulkApply, list[int]] = {}
        for index, (apply, _) in enumerate(batch):
            groups.setdefault(apply, []).append(index)
        results: list[Any] = [None] * len(batch)
        try:
            with self.sessions(bind=self._connection()) as session, session.begin():
                lock_keys(session, _lock_keys_of(batch))
                for apply, indexes in groups.items():
                    outputs = apply(session, [batch[i][1] for i in indexes])
                    for index, output in zip(indexes, outputs, strict=True):
                        results[index] = output
                rollups.refresh_marked(session, self.zone)
        except BaseException:
            self.close()
            raise
        self.batches += 1
        return results

    def _connection(self) -> Connection:
        if self.connection is None:
            engine: Engine = self.sessions.kw["bind"]
            self.connection = engine.connect()
        return self.connection

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            return
        try:
            connection.close()
        except Exception as error:
            # A connection the server dropped can fail to close; it is gone anyway.
            log.warning("closing the writer's connection failed: %r", error)


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
        # Used by the writer's thread only.
        self.committer: BatchCommitter | None = None
        self.max_batch = max_batch
        # The organisation's time zone, which decides the day of a touch count.
        self.zone = zone or ZoneInfo("UTC")
        self.queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.accepting = False
        # Counters for diagnostics: batches committed, changes taken from the queue.
        self.items = 0

    @property
    def batches(self) -> int:
        return self.committer.batches if self.committer is not None else 0

    def register(self, apply: BulkApply) -> None:
        """Declare a bulk apply whose changes may run in another process.

        This writer runs every change on its own thread, so it keeps no
        record; `capture.writer_process.ProcessWriter` sends them to its
        process.
        """

    async def start(self) -> None:
        self.committer = BatchCommitter(self.session_factory(), self.zone)
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
        assert self.committer is not None
        for batch in batches_of(self.queue, self.max_batch):
            self.items += len(batch)
            outcomes = self.committer.write([(i.apply, i.payload) for i in batch])
            self._deliver_threadsafe(batch, outcomes)
        self.committer.close()

    def _deliver_threadsafe(self, batch: list[_Item], outcomes: list[Outcome]) -> None:
        assert self.loop is not None
        try:
            self.loop.call_soon_threadsafe(_deliver, batch, outcomes)
        except RuntimeError:
            # The loop is closed, so no request is waiting for these results.
            log.warning("event loop closed; %s results not delivered", len(batch))


def batches_of(
    waiting: queue.SimpleQueue[Q | None], max_batch: int
) -> Iterator[list[Q]]:
    """Yield what is waiting in batches of at most `max_batch`, until `_STOP`.

    Each batch starts with a blocking wait and then takes what is already
    there, so a lone change goes out at once and a crowd goes out together.
    """
    while True:
        batch: list[Q] = []
        item = waiting.get()
        while item is not _STOP:
            batch.append(item)
            if len(batch) >= max_batch:
                break
            try:
                item = waiting.get_nowait()
            except queue.Empty:
                break
        if batch:
            yield batch
        if item is _STOP:
            return


def _lock_keys_of(batch: list[Pending]) -> list[str]:
    """Keys of the resources the batch writes; see `capture.sql.lock_keys`."""
    keys = []
    for _, payload in batch:
        key = getattr(payload, "lock_key", None)
        if key is not None:
            keys.append(key)
    return keys


def _deliver(batch: list[_Item], outcomes: list[Outcome]) -> None:
    """Hand each waiting request its result; runs on the event loop."""
    for item, outcome in zip(batch, outcomes, strict=True):
        if item.future.done():
            continue
        if outcome.error is not None:
            item.future.set_exception(outcome.error)
        else:
            item.future.set_result(outcome.result)
