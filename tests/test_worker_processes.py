"""`touchline worker` processes running real transcription jobs.

Each test starts workers as separate processes on the test database, with
the tiny.en model, and checks the job table and the transcripts they leave.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from audio import assemble_turns, synthesize_speech, write_wav
from sqlalchemy import func, select
from test_cli import TOUCHLINE, environment

from capture.db import Database, transaction
from capture.jobs import enqueue
from capture.models import Job, Recording, Transcript, TranscriptSegment
from capture.recordings import TRANSCRIBE_JOB

# Worker processes load the model and decode on a shared CPU, which takes
# minutes rather than the default test timeout.
pytestmark = [pytest.mark.speech, pytest.mark.timeout(600)]

# Distinct sentences, so that no channel repeats itself: Whisper's
# compression-ratio check would take a repeated sentence for a decoding loop.
SENTENCES = (
    "We can lower the pricing if you sign the contract today.",
    "I will call you back on Thursday afternoon.",
    "Could you send me the proposal by email?",
    "Our team has used the product for three years.",
    "The renewal date is the first of March.",
    "Which plan includes the reporting dashboard?",
    "I need to check the budget with my manager.",
    "The installation takes about two weeks.",
    "Please add our finance director to the next meeting.",
)
DONE_LINE = re.compile(r"job (\d+) transcribe_recording done: try=(\d+)")


def long_call(path: Path, turns: int) -> Path:
    """Write a dual-channel call of `turns` alternating espeak-ng utterances."""
    spoken = [synthesize_speech(sentence) for sentence in SENTENCES]
    track = assemble_turns(
        [(1 + number % 2, spoken[number % len(spoken)]) for number in range(turns)]
    )
    return write_wav(path, track)


def seed_recordings(
    database: Database, data_dir: Path, audio: Path, count: int
) -> list[str]:
    """Store `count` copies of `audio` as recordings and queue their jobs."""
    folder = data_dir / "recordings"
    folder.mkdir(parents=True, exist_ok=True)
    sids = [f"RE{number:032d}" for number in range(count)]
    writer_sessions = database.batch_sessions()
    with writer_sessions() as session, session.begin():
        for sid in sids:
            shutil.copy(audio, folder / f"{sid}.wav")
            session.add(
                Recording(
                    recording_sid=sid,
                    call_sid=f"CA{sid[2:]}",
                    status="stored",
                    channels=2,
                    file_path=f"recordings/{sid}.wav",
                )
            )
            payload = {"recording_sid": sid}
            enqueue(
                session, TRANSCRIBE_JOB, payload, dedupe_key=f"{TRANSCRIBE_JOB}:{sid}"
            )
    return sids


def worker_environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = environment(tmp_path, database_url)
    env.update(
        {
            "TOUCHLINE_TRANSCRIBE_ENGINE": "faster-whisper",
            "TOUCHLINE_WHISPER_MODEL": "tiny.en",
            "HF_HUB_OFFLINE": "1",
            # One CTranslate2 thread per process: several workers share the
            # test machine's cores.
            "OMP_NUM_THREADS": "1",
        }
    )
    return env


class WorkerProcess:
    """A `touchline worker` whose log goes to a file, read as it grows."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.process = subprocess.Popen(
            [TOUCHLINE, "worker"], env=env, stdout=self._log, stderr=self._log
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, number: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(number)
        code = self.process.wait(timeout=60)
        self._log.close()
        return code


@pytest.fixture
def start_worker(
    tmp_path: Path, database_url: str
) -> Iterator[Callable[[], WorkerProcess]]:
    env = worker_environment(tmp_path, database_url)
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(env, tmp_path / f"worker{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(signal.SIGKILL)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


async def jobs_of(database: Database) -> list[Job]:
    async with database.reads() as session:
        return list((await session.scalars(select(Job).order_by(Job.id))).all())


async def wait_for_jobs(
    database: Database, status: str, seconds: float, workers: list[WorkerProcess]
) -> list[Job]:
    deadline = time.monotonic() + seconds
    while True:
        rows = await jobs_of(database)
        if all(job.status == status for job in rows):
            return rows
        for worker in workers:
            assert worker.process.poll() is None, worker.log()
        if time.monotonic() > deadline:
            counts = Counter(job.status for job in rows)
            raise AssertionError(f"jobs not all {status} after {seconds} s: {counts}")
        await asyncio.sleep(0.5)


async def transcript_counts(database: Database) -> tuple[int, list[int]]:
    """Return the number of transcripts and their segment counts."""
    async with database.reads() as session:
        transcripts = await session.scalar(select(func.count(Transcript.id)))
        per_transcript = await session.execute(
            select(func.count(TranscriptSegment.id)).group_by(
                TranscriptSegment.transcript_id
            )
        )
    return int(transcripts or 0), [int(count) for (count,) in per_transcript]


def kill_while_transcribing(worker: WorkerProcess) -> None:
    """SIGKILL `worker` once it has loaded the model and is decoding."""
    wait_for(lambda: "Loaded Whisper model" in worker.log(), 120, "the model load")
    # The model loads inside the job, so decoding starts right after it.
    time.sleep(1.0)
    assert "transcribed" not in worker.log(), "the job ended before the kill"
    worker.stop(signal.SIGKILL)


async def test_killed_worker_job_finishes_once(
    tmp_path: Path,
    database: Database,
    start_worker: Callable[[], WorkerProcess],
) -> None:
    audio = long_call(tmp_path / "call.wav", turns=18)
    seed_recordings(database, tmp_path / "data", audio, count=1)
    first = start_worker()

    kill_while_transcribing(first)
    killed_state = (await jobs_of(database))[0]
    killed_transcripts, _ = await transcript_counts(database)
    second = start_worker()
    finished = await wait_for_jobs(database, "done", 300, [second])
    second.stop()

    assert first.process.returncode == -signal.SIGKILL
    assert killed_state.status == "running"
    assert killed_transcripts == 0
    assert finished[0].attempts == 2
    transcripts, segments = await transcript_counts(database)
    assert transcripts == 1
    assert "held by dead worker" in second.log()
    async with database.reads() as session:
        starts = (await session.execute(select(TranscriptSegment.start_ms))).all()
    assert len(segments) == 1
    assert segments[0] == len(set(starts)), "segments were stored twice"
    assert segments[0] >= 12, "most of the 18 turns were transcribed"


async def test_workers_run_each_job_once(
    tmp_path: Path,
    database_url: str,
    database: Database,
    start_worker: Callable[[], WorkerProcess],
) -> None:
    # SQLite allows one writer, so one worker process is the supported setup.
    processes = 3 if database_url.startswith("postgresql") else 1
    audio = long_call(tmp_path / "short.wav", turns=1)
    sids = seed_recordings(database, tmp_path / "data", audio, count=30)

    workers = [start_worker() for _ in range(processes)]
    finished = await wait_for_jobs(database, "done", 600, workers)
    for worker in workers:
        assert worker.stop() == 0, worker.log()

    assert len(finished) == len(sids)
    assert [job.attempts for job in finished] == [1] * len(sids)
    runs = Counter(
        int(job_id)
        for worker in workers
        for job_id, _ in DONE_LINE.findall(worker.log())
    )
    assert sorted(runs) == [job.id for job in finished]
    assert set(runs.values()) == {1}, "a job ran more than once"
    transcripts, _ = await transcript_counts(database)
    assert transcripts == len(sids)
    async with transaction(database.reads) as session:
        locked_by = (await session.scalars(select(Job.locked_by))).all()
    # locked_by is host:process/slot; each process runs worker_concurrency slots.
    holders = {str(value).rsplit("/", 1)[0] for value in locked_by}
    assert len(holders) == processes, "every worker process ran jobs"
