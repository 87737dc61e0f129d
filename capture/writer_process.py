"""The batch writer with a process of its own for the busiest changes.

In one web process, the event loop and the writer's thread share the
interpreter lock, so the Python that stores a webhook competes with the
Python that serves the next request. `ProcessWriter` commits the changes
of registered bulk applies (the webhooks' status events and their ledger
rows) in a child process instead, on the other core. Every other change
runs on the inherited thread as before.

A change goes to the child over a socket pair (`capture.frames`) at once
when the child has nothing to do. Otherwise the loop collects the changes
of its turn and sends them as one message at the end of the turn. The
child commits them in batches, as the thread would, and sends back one
message per batch. A request still gets its response only after its
batch commits. Sending to an idle child at once, rather than at the end
of the turn, raised the webhook throughput by about a third
(docs/benchmarks.md).

If the child dies, the changes without a result fail, and a new child
starts. A webhook then gets a 503, so Twilio retries it, and the retry
changes nothing that was stored. After MAX_FAILED_STARTS children in a
row end before they are ready, the registered changes run on the thread
instead. Python's fork
server runs the program's main module in each new process, so a program
that starts the service without an `if __name__ == "__main__":` guard
gets no working child. The child ends when it reads the stop message,
after committing what came before it, or when the socket closes because
the web process is gone.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import pickle
import signal
import socket
import time
from asyncio import FIRST_COMPLETED
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from capture.db import create_sync_engine
from capture.frames import LoopChannel, message_waiting, receive_message, send_message
from capture.writer import (
    MAX_BATCH,
    BatchCommitter,
    BatchWriter,
    BulkApply,
    Outcome,
    WriterStopped,
)

log = logging.getLogger(__name__)

# A change on its way to the child: its number, its apply's code, its payload.
Sent = tuple[int, int, Any]
# What the child sends back for each batch: (number, result or error, failed?).
Answer = tuple[int, Any, bool]
# A child that ends sooner than this after starting waits this long before
# the next one starts, so a child that cannot run does not spin.
RESTART_PAUSE = 1.0
# How long stop() waits for the child to commit what it has and end.
STOP_SECONDS = 30.0
# Children in a row that end before they are ready, after which the
# registered changes run on the thread instead.
MAX_FAILED_STARTS = 3
PROTOCOL = pickle.HIGHEST_PROTOCOL


class WriterError(RuntimeError):
    """An error of the writer's process that could not be sent as it was.

    Its message keeps the original error's type and text.
    """


def writer_context(modules: list[str]) -> ForkServerContext:
    """Return the context the writer's process starts in.

    It is a fork server: a fresh interpreter that has imported the writer's
    modules and the program's main module forks each child. So a child
    never inherits the web process's threads, and after the first it
    starts in milliseconds rather than importing the program again.
    `modules` are imported by the server before it forks; they count only
    for the first writer of the program.
    """
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    context.set_forkserver_preload(["__main__", __name__, *modules])
    return context


class ProcessWriter(BatchWriter):
    def __init__(
        self,
        sessions: Callable[[], sessionmaker[Session]],
        database_url: str,
        *,
        max_batch: int = MAX_BATCH,
        zone: ZoneInfo | None = None,
    ) -> None:
        super().__init__(sessions, max_batch=max_batch, zone=zone)
        self.database_url = database_url
        self.codes: dict[BulkApply, int] = {}
        self.process: BaseProcess | None = None
        self.channel: LoopChannel | None = None
        self.started_at = 0.0
        self.failed_starts = 0
        self.restarting: asyncio.Task[None] | None = None
        # Changes not sent yet: they go when the child is idle or the turn ends.
        self.outgoing: list[Sent] = []
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.numbers = 0
        self.child_batches = 0
        self.ended: asyncio.Future[None] | None = None
        self.ready: asyncio.Future[None] | None = None

    @property
    def batches(self) -> int:
        return super().batches + self.child_batches

    def register(self, apply: BulkApply) -> None:
        """Run the changes of `apply` in the writer's process from now on.

        `apply`, its payloads, results and errors must pickle. The child
        learns its applies when it starts, so register them before `start`.
        """
        if self.loop is not None:
            raise RuntimeError("register bulk applies before the writer starts")
        pickle.dumps(apply, PROTOCOL)
        self.codes.setdefault(apply, len(self.codes))

    async def start(self) -> None:
        await super().start()
        await self._spawn()

    async def stop(self) -> None:
        """Commit every change submitted so far, in both writers, then stop."""
        self.accepting = False
        # A child that dies while starting makes its restart start another one.
        while self.restarting is not None:
            await self.restarting
        self._flush()
        if self.channel is not None and self.ended is not None:
            self.channel.send(pickle.dumps(None, PROTOCOL))
            try:
                await asyncio.wait_for(asyncio.shield(self.ended), STOP_SECONDS)
            except TimeoutError:
                log.error(
                    "the writer's process did not end within %s s; killing it",
                    STOP_SECONDS,
                )
                if self.process is not None:
                    self.process.kill()
                self.channel.close()
        await self._reap()
        await super().stop()

    def post(self, apply: BulkApply, payload: Any) -> asyncio.Future[Any]:
        code = self.codes.get(apply)
        if code is None:
            return super().post(apply, payload)
        if not self.accepting:
            raise WriterStopped("the database writer is not running")
        assert self.loop is not None
        future: asyncio.Future[Any] = self.loop.create_future()
        self.numbers += 1
        self.waiting[self.numbers] = future
        self.outgoing.append((self.numbers, code, payload))
        if len(self.waiting) == len(self.outgoing):
            # The child has nothing to do, so it can start on this change now.
            self._flush()
        elif len(self.outgoing) == 1:
            self.loop.call_soon(self._flush)
        return future

    async def _spawn(self) -> None:
        assert self.loop is not None
        pause = RESTART_PAUSE - (time.monotonic() - self.started_at)
        if pause > 0 and self.started_at:
            await asyncio.sleep(pause)
        applies = sorted(self.codes, key=self.codes.__getitem__)
        modules = set().union(*(_modules_of(apply) for apply in applies))
        context = writer_context(sorted(modules))
        ours, theirs = socket.socketpair()
        process = context.Process(
            target=serve,
            args=(theirs, self.database_url, self.zone.key, applies, self.max_batch),
            kwargs={"log_level": logging.getLogger().getEffectiveLevel()},
            name="touchline-writer",
            daemon=True,
        )
        try:
            await asyncio.to_thread(process.start)
        finally:
            theirs.close()
        self.started_at = time.monotonic()
        self.process = process
        self.ended = self.loop.create_future()
        self.ready = self.loop.create_future()
        self.channel = LoopChannel(self.loop, ours, self._receive, self._ended)
        # The child sends its first message once its database engine exists.
        await asyncio.wait([self.ready, self.ended], return_when=FIRST_COMPLETED)
        if self.ready.done():
            log.info("writer process %s started", process.pid)
            self._flush()

    def _flush(self) -> None:
        """Send the changes not sent yet as one message."""
        if not self.outgoing or self.channel is None:
            # Sent once the child starts, or failed when the writer stops.
            if not self.accepting and self.channel is None:
                self._fail([number for number, _, _ in self.outgoing])
                self.outgoing = []
            return
        sent, self.outgoing = self.outgoing, []
        try:
            data = pickle.dumps(sent, PROTOCOL)
        except Exception:
            sent = self._picklable(sent)
            data = pickle.dumps(sent, PROTOCOL)
        # If the child is gone, the channel closes and _ended fails these.
        self.channel.send(data)

    def _picklable(self, sent: list[Sent]) -> list[Sent]:
        """Return the changes that pickle; fail the others at once."""
        picklable = []
        for change in sent:
            try:
                pickle.dumps(change, PROTOCOL)
            except Exception as error:
                future = self.waiting.pop(change[0])
                if not future.done():
                    future.set_exception(error)
            else:
                picklable.append(change)
        return picklable

    def _receive(self, message: bytes) -> None:
        batches, answers = pickle.loads(message)
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(None)
        self.child_batches += batches
        self.items += len(answers)
        for number, value, failed in answers:
            future = self.waiting.pop(number, None)
            if future is None or future.done():
                continue
            if failed:
                future.set_exception(value)
            else:
                future.set_result(value)

    def _ended(self) -> None:
        """Fail the changes without a result: the child's end of the socket closed."""
        assert self.loop is not None
        self.channel = None
        if self.ended is not None and not self.ended.done():
            self.ended.set_result(None)
        # NOTE: a child that dies after a commit and before sending its
        # results leaves changes that are stored but failed here, so the
        # ledger can hold a stored row and a failed row for one request.
        lost = list(self.waiting)
        self.outgoing = []
        self._fail(lost)
        if self.accepting:
            self._replace_child(len(lost))

    def _replace_child(self, lost: int) -> None:
        """Start another child, or after too many failed starts use the thread."""
        assert self.loop is not None
        started = self.ready is not None and self.ready.done()
        self.failed_starts = 0 if started else self.failed_starts + 1

        if self.failed_starts >= MAX_FAILED_STARTS:
            log.error(
                "the writer's process failed to start %s times in a row; "
                "committing webhook changes on the writer's thread instead. "
                "A program that starts the service must guard its entry point "
                "with `if __name__ == '__main__':`",
                self.failed_starts,
            )
            self.codes.clear()
            return

        log.error(
            "the writer's process ended; %s changes failed, starting another",
            lost,
        )
        self.restarting = self.loop.create_task(self._restart())

    async def _restart(self) -> None:
        try:
            await self._reap()
            await self._spawn()
        finally:
            # A child that died while this one waited for it has already
            # started the next restart, which stop() must still wait for.
            if self.restarting is asyncio.current_task():
                self.restarting = None

    def _fail(self, numbers: list[int]) -> None:
        for number in numbers:
            future = self.waiting.pop(number, None)
            if future is not None and not future.done():
                future.set_exception(
                    WriterStopped("the database writer's process ended")
                )

    async def _reap(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        await asyncio.to_thread(process.join, STOP_SECONDS)
        if process.is_alive():
            process.kill()
            await asyncio.to_thread(process.join)
        if process.exitcode:
            log.error("the writer's process exited with %s", process.exitcode)


def serve(
    sock: socket.socket,
    database_url: str,
    zone: str,
    applies: list[BulkApply],
    max_batch: int,
    *,
    log_level: int = logging.INFO,
) -> None:
    """Run the writer's process: commit what arrives, send each batch's results."""
    # Ctrl-C reaches the whole process group, but the web process stops this one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    engine = create_sync_engine(database_url)
    committer = BatchCommitter(
        sessionmaker(engine, expire_on_commit=False), ZoneInfo(zone)
    )
    send_message(sock, _dumps_answers(0, []))
    try:
        for batch in _arrivals(sock, max_batch):
            outcomes = committer.write(
                [(applies[code], payload) for _, code, payload in batch]
            )
            answers = [
                _answer(number, outcome)
                for (number, _, _), outcome in zip(batch, outcomes, strict=True)
            ]
            send_message(sock, _dumps_answers(committer.batches, answers))
            committer.batches = 0
    finally:
        committer.close()
        engine.dispose()
        sock.close()


def _modules_of(apply: Callable[..., Any]) -> set[str]:
    """Return the modules of a function, or of a partial's function and arguments."""
    if isinstance(apply, functools.partial):
        parts = [apply.func, *(arg for arg in apply.args if callable(arg))]
        return set().union(*(_modules_of(part) for part in parts))
    return {apply.__module__}


def _arrivals(sock: socket.socket, max_batch: int) -> Iterator[list[Sent]]:
    """Yield batches of the changes that arrived, until the stop message.

    Waits for a message only when nothing is waiting. Between batches it
    takes every message already in the socket, so changes that arrived
    during a commit go into the next batch together. One thread does both,
    so no reading thread competes with a batch for the interpreter lock.
    """
    waiting: deque[Sent] = deque()
    stopping = False
    while waiting or not stopping:
        if not waiting:
            stopping = _take(sock, waiting)
        while not stopping and message_waiting(sock):
            stopping = _take(sock, waiting)
        count = min(max_batch, len(waiting))
        if count:
            yield [waiting.popleft() for _ in range(count)]


def _take(sock: socket.socket, waiting: deque[Sent]) -> bool:
    """Read one message into `waiting`; return True for the stop message."""
    try:
        changes = pickle.loads(receive_message(sock))
    except (EOFError, OSError):
        log.warning("the web process is gone; committing what arrived")
        return True
    if changes is None:
        return True
    waiting.extend(changes)
    return False


def _answer(number: int, outcome: Outcome) -> Answer:
    if outcome.error is None:
        return (number, outcome.result, False)
    return (number, _portable(outcome.error), True)


def _portable(error: BaseException) -> BaseException:
    """Return the error if it survives pickling, otherwise its type and text."""
    try:
        pickle.loads(pickle.dumps(error, PROTOCOL))
    except Exception:
        return WriterError(f"{type(error).__name__}: {error}")
    return error


def _dumps_answers(batches: int, answers: list[Answer]) -> bytes:
    try:
        return pickle.dumps((batches, answers), PROTOCOL)
    except Exception:
        # A result that does not pickle fails its own change only.
        return pickle.dumps(
            (batches, [_checked(answer) for answer in answers]), PROTOCOL
        )


def _checked(answer: Answer) -> Answer:
    try:
        pickle.dumps(answer, PROTOCOL)
    except Exception as error:
        return (answer[0], WriterError(f"the result did not pickle: {error!r}"), True)
    return answer
