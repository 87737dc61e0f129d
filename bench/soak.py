"""Soak test: a steady rate of mixed webhooks, then a count of what was kept.

Starts the service on loopback and sends signed webhooks at `--rate` per
second for `--seconds`. Each simulated call sends its four status
callbacks. For a share of calls it also sends a completed recording,
whose media a local server returns: real speech made with espeak-ng, so
transcription runs meanwhile. Inbound SMS, SMS status callbacks and reps'
emails (raw MIME with an API token) come in between. A share of requests
is sent twice, as Twilio retries do.

- `--database sqlite`: one `touchline serve` process on a SQLite file.
- `--database postgresql`: two `touchline serve --no-worker` processes and
  three `touchline worker` processes on a new database on 127.0.0.1:5432;
  requests alternate between the two web processes.

At the end it checks that every call, status event, message and recording
sent is stored exactly once, and reports latency percentiles, errors, and
each process's memory (RSS) over time.

Run: .venv/bin/python bench/soak.py [--database sqlite] [--rate 200]
     [--seconds 600] [--recording-share 0.02] [--logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from webhooks import free_port, start, stop, wait_ready  # noqa: E402

from capture.demo_data import CUSTOMERS, REPS  # noqa: E402

TOKEN = "soak-auth-token"
ACCOUNT = "AC" + "5" * 32
PUBLIC_URL = "https://soak.touchline.test"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
STATUSES = (("initiated", None), ("ringing", None), ("in-progress", None))
SPEECH = "Hello, this is Ana from Touchline. Can we talk about the contract next week?"


@dataclass
class Sent:
    calls: set[str] = field(default_factory=set)
    call_events: int = 0
    messages: set[str] = field(default_factory=set)
    recordings: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    requests: int = 0
    repeats: int = 0


@dataclass
class Results:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def speech_wav(folder: Path) -> bytes:
    """Make a short two-channel 8 kHz call recording with espeak-ng and sox."""
    spoken = folder / "spoken.wav"
    call = folder / "call.wav"
    subprocess.run(["espeak-ng", "-w", str(spoken), SPEECH], check=True)
    subprocess.run(
        [
            "sox",
            "-D",
            "-G",
            str(spoken),
            "-r",
            "8000",
            "-c",
            "2",
            "-b",
            "16",
            str(call),
        ],
        check=True,
    )
    return call.read_bytes()


async def media_server(audio: bytes) -> tuple[web.AppRunner, int]:
    async def recording(request: web.Request) -> web.Response:
        return web.Response(body=audio, content_type="audio/x-wav")

    app = web.Application()
    app.router.add_get("/recordings/{sid}", recording)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


def call_requests(
    rng: random.Random, number: int, media_port: int, share: float, sent: Sent
) -> list[tuple[str, dict[str, str]]]:
    rep, customer = REPS[number % len(REPS)], CUSTOMERS[number % len(CUSTOMERS)]
    sid = f"CA{uuid.uuid4().hex}"
    sent.calls.add(sid)
    base = {
        "AccountSid": ACCOUNT,
        "CallSid": sid,
        "Direction": "outbound-api",
        "From": rep.phone,
        "To": customer.phone,
        "Timestamp": "Mon, 02 Nov 2026 16:00:00 +0000",
    }
    events = [(status, duration) for status, duration in STATUSES] + [
        ("completed", rng.randint(5, 900))
    ]
    rng.shuffle(events)  # arrival order differs from the sequence
    batch = []
    order = {
        name: index for index, (name, _) in enumerate([*STATUSES, ("completed", 0)])
    }
    for status, duration in events:
        form = dict(base, CallStatus=status, SequenceNumber=str(order[status]))
        if duration is not None:
            form["CallDuration"] = str(duration)
        batch.append(("/twilio/voice/status", form))
        sent.call_events += 1
    if rng.random() < share:
        recording = f"RE{uuid.uuid4().hex}"
        sent.recordings.add(recording)
        batch.append(
            (
                "/twilio/voice/recording",
                {
                    "AccountSid": ACCOUNT,
                    "CallSid": sid,
                    "RecordingSid": recording,
                    "RecordingStatus": "completed",
                    "RecordingUrl": f"http://127.0.0.1:{media_port}/recordings/{recording}",
                    "RecordingDuration": "6",
                    "RecordingChannels": "2",
                    "RecordingSource": "OutboundAPI",
                    "RecordingStartTime": "Mon, 02 Nov 2026 16:00:01 +0000",
                },
            )
        )
    return batch


def sms_requests(number: int, sent: Sent) -> list[tuple[str, dict[str, str]]]:
    rep, customer = REPS[number % len(REPS)], CUSTOMERS[number % len(CUSTOMERS)]
    inbound, outbound = f"SM{uuid.uuid4().hex}", f"SM{uuid.uuid4().hex}"
    sent.messages.update((inbound, outbound))
    return [
        (
            "/twilio/sms",
            {
                "AccountSid": ACCOUNT,
                "MessageSid": inbound,
                "SmsSid": inbound,
                "SmsStatus": "received",
                "From": customer.phone,
                "To": rep.phone,
                "Body": "Please send the contract tomorrow",
                "NumMedia": "0",
                "NumSegments": "1",
            },
        ),
        (
            "/twilio/sms/status",
            {
                "AccountSid": ACCOUNT,
                "MessageSid": outbound,
                "SmsSid": outbound,
                "MessageStatus": "delivered",
                "From": rep.phone,
                "To": customer.phone,
            },
        ),
    ]


def email_request(number: int, sent: Sent) -> tuple[str, dict[str, str]]:
    """Build a rep's email to a customer, as raw MIME for /email/inbound/mime."""
    rep, customer = REPS[number % len(REPS)], CUSTOMERS[number % len(CUSTOMERS)]
    message_id = f"{uuid.uuid4().hex}@soak.touchline.test"
    sent.emails.add(message_id)
    message = EmailMessage()
    message["From"] = rep.email
    message["To"] = customer.email
    message["Subject"] = f"Contract draft {number}"
    message["Message-ID"] = f"<{message_id}>"
    message["Date"] = "Mon, 02 Nov 2026 16:00:00 +0000"
    message.set_content("Hello, the contract draft is attached as discussed.")
    return ("/email/inbound/mime", {"_raw": message.as_string()})


def workload(
    args: argparse.Namespace, media_port: int, sent: Sent
) -> list[tuple[str, dict[str, str]]]:
    """Build every request of the run, in sending order, retries included."""
    rng = random.Random(args.seed)
    total = args.rate * args.seconds
    items: list[tuple[str, dict[str, str]]] = []
    number = 0
    while len(items) < total:
        number += 1
        if number % 10 == 0:
            group = [email_request(number, sent)]
        elif number % 5 == 0:
            group = sms_requests(number, sent)
        else:
            group = call_requests(rng, number, media_port, args.recording_share, sent)
        for item in group:
            items.append(item)
            if rng.random() < args.repeat_share:
                items.append(item)
                sent.repeats += 1
    sent.requests = len(items)
    return items


async def send(
    targets: list[str], items: list[tuple[str, dict[str, str]]], rate: int, token: str
) -> Results:
    """Send `items` at `rate` per second, open loop, and time each response."""
    validator = RequestValidator(TOKEN)
    results = Results()
    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=512)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = []
        for index, (path, form) in enumerate(items):
            due = started + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            target = targets[index % len(targets)] + path
            if "_raw" in form:
                body = form["_raw"].encode()
                headers = {
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "message/rfc822",
                }
            else:
                body = urllib.parse.urlencode(form).encode()
                headers = {
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": validator.compute_signature(
                        PUBLIC_URL + path, form
                    ),
                }
            tasks.append(
                asyncio.create_task(_post(session, target, body, headers, results))
            )
        await asyncio.gather(*tasks)
    return results


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    results: Results,
) -> None:
    began = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        status = 0
        if len(results.errors) < 20:
            results.errors.append(repr(error))
    results.latencies_ms.append((time.perf_counter() - began) * 1000)
    results.statuses[status] = results.statuses.get(status, 0) + 1


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def sample_memory(
    processes: dict[str, int],
    samples: dict[str, list[float]],
    stop_event: asyncio.Event,
) -> None:
    while not stop_event.is_set():
        for name, pid in processes.items():
            samples.setdefault(name, []).append(round(rss_mib(pid), 1))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop_event.wait(), timeout=10)


def environment(work: Path, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "TOUCHLINE_DATA_DIR": str(work / "data"),
            "TOUCHLINE_DATABASE_URL": database_url,
            "TOUCHLINE_PUBLIC_URL": PUBLIC_URL,
            "TOUCHLINE_TWILIO_ACCOUNT_SID": ACCOUNT,
            "TOUCHLINE_TWILIO_AUTH_TOKEN": TOKEN,
            "TOUCHLINE_SECRET_KEY": "s" * 40,
            "TOUCHLINE_MEDIA_HOSTS": "127.0.0.1",
            "TOUCHLINE_SMTP_PORT": "0",
            "TOUCHLINE_TRANSCRIBE_ENGINE": "faster-whisper",
            "TOUCHLINE_WHISPER_MODEL": "tiny.en",
            "HF_HUB_OFFLINE": "1",
        }
    )
    return env


def counts_sqlite(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as connection:
        return {
            name: connection.execute(query).fetchone()[0]
            for name, query in COUNTS.items()
        }


async def counts_postgresql(url: str) -> dict[str, int]:
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return {
            name: await connection.fetchval(query) for name, query in COUNTS.items()
        }
    finally:
        await connection.close()


COUNTS = {
    "calls": "SELECT count(*) FROM calls",
    "call_events": "SELECT count(*) FROM call_events",
    "messages": "SELECT count(*) FROM messages",
    "recordings": "SELECT count(*) FROM recordings",
    "touches": "SELECT count(*) FROM activities",
    "emails": "SELECT count(*) FROM emails",
    "transcripts": "SELECT count(*) FROM transcripts",
    "jobs_done": "SELECT count(*) FROM jobs WHERE status = 'done'",
    "jobs_dead": "SELECT count(*) FROM jobs WHERE status = 'dead'",
    "jobs_waiting": "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')",
}


async def create_pg_database() -> tuple[str, str]:
    import asyncpg

    name = f"touchline_soak_{uuid.uuid4().hex[:8]}"
    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name, f"postgresql://postgres@127.0.0.1:5432/{name}"


async def drop_pg_database(name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    audio = speech_wav(work)
    media, media_port = await media_server(audio)
    pg_name = None
    if args.database == "postgresql":
        pg_name, raw_url = await create_pg_database()
        database_url = raw_url.replace("postgresql://", "postgresql+asyncpg://")
    else:
        raw_url = ""
        database_url = f"sqlite:///{work / 'data' / 'touchline.db'}"
    env = environment(work, database_url)
    touchline = str(Path(sys.executable).with_name("touchline"))
    demo = [touchline, "demo"]
    await asyncio.to_thread(
        subprocess.run, demo, env=env, check=True, capture_output=True
    )
    create = [touchline, "tokens", "create", "--user", "ada@demo.touchline.test"]
    created = await asyncio.to_thread(
        subprocess.run, create, env=env, check=True, capture_output=True, text=True
    )
    token = created.stdout.strip()
    processes: dict[str, subprocess.Popen[bytes]] = {}
    ports = [free_port()] if args.database == "sqlite" else [free_port(), free_port()]
    for index, port in enumerate(ports):
        command = [touchline, "serve", "--port", str(port)]
        if args.database == "postgresql":
            command.append("--no-worker")
        processes[f"web-{index + 1}"] = start(
            command, env, _log_file(args, f"web-{index + 1}")
        )
    if args.database == "postgresql":
        for index in range(3):
            name = f"worker-{index + 1}"
            processes[name] = start([touchline, "worker"], env, _log_file(args, name))
    sent = Sent()
    memory: dict[str, list[float]] = {}
    try:
        for port in ports:
            await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}/healthz")
        items = workload(args, media_port, sent)
        stop_sampling = asyncio.Event()
        sampler = asyncio.create_task(
            sample_memory(
                {k: p.pid for k, p in processes.items()}, memory, stop_sampling
            )
        )
        began = time.perf_counter()
        targets = [f"http://127.0.0.1:{p}" for p in ports]
        results = await send(targets, items, args.rate, token)
        elapsed = time.perf_counter() - began
        await asyncio.sleep(args.drain)
        stop_sampling.set()
        await sampler
    finally:
        for process in processes.values():
            stop(process)
        await media.cleanup()
    if args.database == "sqlite":
        stored = counts_sqlite(work / "data" / "touchline.db")
    else:
        stored = await counts_postgresql(raw_url)
        assert pg_name is not None
        await drop_pg_database(pg_name)
    return report(args, sent, results, elapsed, stored, memory)


def _log_file(args: argparse.Namespace, name: str) -> Path | None:
    if args.logs is None:
        return None
    args.logs.mkdir(parents=True, exist_ok=True)
    return args.logs / f"{name}.log"


def report(
    args: argparse.Namespace,
    sent: Sent,
    results: Results,
    elapsed: float,
    stored: dict[str, int],
    memory: dict[str, list[float]],
) -> dict[str, Any]:
    latencies = sorted(results.latencies_ms)
    quantiles = statistics.quantiles(latencies, n=1000)
    expected = {
        "calls": len(sent.calls),
        "call_events": sent.call_events,
        "messages": len(sent.messages),
        "recordings": len(sent.recordings),
        "emails": len(sent.emails),
        "touches": len(sent.calls) + len(sent.messages) + len(sent.emails),
    }
    return {
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "database": args.database,
        "rate_requested": args.rate,
        "seconds": round(elapsed, 1),
        "requests": sent.requests,
        "repeats": sent.repeats,
        "achieved_rate": round(sent.requests / elapsed, 1),
        "statuses": results.statuses,
        "errors": results.errors,
        "latency_ms": {
            "p50": round(quantiles[499], 1),
            "p95": round(quantiles[949], 1),
            "p99": round(quantiles[989], 1),
            "max": round(latencies[-1], 1),
        },
        "expected": expected,
        "stored": stored,
        "lost_or_doubled": {
            name: stored[name] - count
            for name, count in expected.items()
            if stored[name] != count
        },
        "rss_mib": {
            name: {"first": values[0], "max": max(values), "last": values[-1]}
            for name, values in memory.items()
            if values
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database", choices=["sqlite", "postgresql"], default="sqlite"
    )
    parser.add_argument("--rate", type=int, default=200, help="requests per second")
    parser.add_argument("--seconds", type=int, default=600, help="length of the run")
    parser.add_argument(
        "--recording-share",
        type=float,
        default=0.02,
        help="share of calls with a recording",
    )
    parser.add_argument(
        "--repeat-share", type=float, default=0.02, help="share of requests sent twice"
    )
    parser.add_argument(
        "--drain", type=int, default=5, help="seconds to wait for jobs before counting"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument(
        "--logs", type=Path, help="folder for each server process's log (default: none)"
    )
    args = parser.parse_args()
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: apt-get install {tool}", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="touchline-soak-") as temporary:
        result = asyncio.run(run(args, Path(temporary)))
    print(json.dumps(result, indent=2))
    failed = result["lost_or_doubled"] or set(result["statuses"]) - {200, 204}
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
