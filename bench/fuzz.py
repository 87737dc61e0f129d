"""Fuzz a running service's parsers over HTTP and check what it stored.

Starts `touchline serve` on SQLite on a loopback port, then sends
`--requests` mutated requests to every webhook and to the import API. Most
requests are signed correctly, so they reach the parsers. Mutations drop,
repeat, lengthen and replace fields with hostile values. It then checks:

- no response was a 5xx;
- every 400 and 422 came as JSON with an `error` message and a `field`;
- the database contains no partial rows: every call and message has its
  touch, every status event belongs to a stored call, and no foreign key
  points nowhere.

Run: .venv/bin/python bench/fuzz.py [--requests 100000] [--concurrency 16]
     [--seed 1]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from multidict import MultiDict
from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from webhooks import free_port, start, stop, wait_ready  # noqa: E402

from capture.demo_data import CUSTOMERS, REPS  # noqa: E402

TOKEN = "fuzz-auth-token"
ACCOUNT = "AC" + "0" * 32
HOSTILE = [
    "",
    " ",
    "\x00",
    "\x1b[31m",
    "\u2028",
    "\ud7ff",
    "-1",
    "0",
    "2147483648",
    "9" * 40,
    "1e9",
    "NaN",
    "+266696687",
    "anonymous",
    "client:",
    "client:" + "a" * 300,
    "sip:ana@127.0.0.1",
    "+1 (415) 555-0111 ext. 9",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%00",
    "../../etc/passwd",
    "Fri, 31 Dec 9999 23:59:59 +0000",
    "Mon, 01 Jan 1900 00:00:00 +0000",
    "not a date",
    "下周再联系",
    "x" * 5000,
    "CA" + "g" * 32,
    "CA" + "0" * 31,
    "completed",
    "canceled",
    "absent",
    "http://169.254.169.254/latest",
    "http://127.0.0.1:1/x.wav",
]


def call_form(rng: random.Random) -> dict[str, str]:
    rep, customer = rng.choice(REPS), rng.choice(CUSTOMERS)
    form = {
        "AccountSid": ACCOUNT,
        "CallSid": f"CA{rng.getrandbits(128):032x}",
        "CallStatus": rng.choice(["initiated", "ringing", "in-progress", "completed"]),
        "Direction": rng.choice(["outbound-api", "inbound", "outbound-dial"]),
        "From": rep.phone,
        "To": customer.phone,
        "SequenceNumber": str(rng.randint(0, 5)),
        "Timestamp": "Mon, 02 Nov 2026 16:00:00 +0000",
    }
    if form["CallStatus"] == "completed":
        form["CallDuration"] = str(rng.randint(0, 600))
    return form


def recording_form(rng: random.Random) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT,
        "CallSid": f"CA{rng.getrandbits(128):032x}",
        "RecordingSid": f"RE{rng.getrandbits(128):032x}",
        "RecordingStatus": rng.choice(["in-progress", "completed", "absent"]),
        "RecordingUrl": "http://127.0.0.1:1/recording",
        "RecordingDuration": str(rng.randint(0, 600)),
        "RecordingChannels": rng.choice(["1", "2"]),
        "RecordingSource": "OutboundAPI",
        "RecordingStartTime": "Mon, 02 Nov 2026 16:00:00 +0000",
    }


def sms_form(rng: random.Random) -> dict[str, str]:
    sid = f"SM{rng.getrandbits(128):032x}"
    customer, rep = rng.choice(CUSTOMERS), rng.choice(REPS)
    return {
        "AccountSid": ACCOUNT,
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "From": customer.phone,
        "To": rep.phone,
        "Body": rng.choice(["call me next week", "合同明天发", "ok"]),
        "NumMedia": "0",
        "NumSegments": "1",
    }


def sms_status_form(rng: random.Random) -> dict[str, str]:
    form = sms_form(rng)
    del form["Body"], form["SmsStatus"]
    form["MessageStatus"] = rng.choice(["queued", "sent", "delivered", "failed"])
    form["From"], form["To"] = form["To"], form["From"]
    return form


BUILDERS = {
    "/twilio/voice/status": call_form,
    "/twilio/voice/recording": recording_form,
    "/twilio/sms": sms_form,
    "/twilio/sms/status": sms_status_form,
}


def mutate(rng: random.Random, form: dict[str, str]) -> list[tuple[str, str]]:
    """Return the form's pairs after zero to three random mutations."""
    pairs = list(form.items())
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        action = rng.randrange(5)
        index = rng.randrange(len(pairs)) if pairs else 0
        if action == 0 and pairs:
            del pairs[index]
        elif action == 1 and pairs:
            pairs[index] = (pairs[index][0], rng.choice(HOSTILE))
        elif action == 2 and pairs:
            pairs.append((pairs[index][0], rng.choice(HOSTILE)))
        elif action == 3:
            pairs.append((rng.choice(HOSTILE)[:20] or "Extra", rng.choice(HOSTILE)))
        elif pairs:
            name, value = pairs[index]
            pairs[index] = (name, value + rng.choice(HOSTILE))
    return pairs


def csv_body(rng: random.Random, number: int) -> str:
    header = ["external_id", "occurred_at", "channel", "customer_phone", "summary"]
    rows = []
    for line in range(rng.randint(1, 3)):
        cells = [
            f"fuzz-{number}-{line}",
            rng.choice(["2026-11-02 10:00", "2026-03-08 02:30", "yesterday"]),
            rng.choice(["chat", "call", "fax"]),
            rng.choice(CUSTOMERS).phone,
            rng.choice(HOSTILE),
        ]
        if rng.random() < 0.3:
            cells[rng.randrange(len(cells))] = rng.choice(HOSTILE)
        rows.append(",".join(_csv_cell(cell) for cell in cells))
    if rng.random() < 0.2:
        header[rng.randrange(len(header))] = rng.choice(HOSTILE)[:10]
    return "\r\n".join([",".join(header), *rows]) + "\r\n"


def _csv_cell(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def requests(
    seed: int, count: int, public_url: str, api_token: str
) -> Iterator[tuple[str, str, bytes, dict[str, str]]]:
    rng = random.Random(seed)
    validator = RequestValidator(TOKEN)
    paths = list(BUILDERS)
    for number in range(count):
        if number % 20 == 19:
            body = csv_body(rng, number).encode()
            headers = {
                "Authorization": f"Bearer {api_token}",
                "Content-Type": "text/csv",
            }
            yield "import", "/api/v1/imports/activities", body, headers
            continue
        path = rng.choice(paths)
        pairs = mutate(rng, BUILDERS[path](rng))
        body = urllib.parse.urlencode(pairs).encode()
        signed = validator.compute_signature(
            public_url + path, _validator_params(pairs)
        )
        if rng.random() < 0.05:
            signed = signed[::-1]
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signed,
        }
        yield path, path, body, headers


def _validator_params(pairs: list[tuple[str, str]]) -> MultiDict[str]:
    # The validator reads every value of a repeated name through getall.
    return MultiDict(pairs)


async def send_all(
    base: str, work: Iterator[tuple[str, str, bytes, dict[str, str]]], concurrency: int
) -> tuple[collections.Counter[tuple[str, int]], list[str]]:
    statuses: collections.Counter[tuple[str, int]] = collections.Counter()
    problems: list[str] = []
    lock = asyncio.Lock()

    async def runner(session: aiohttp.ClientSession) -> None:
        while True:
            async with lock:
                item = next(work, None)
            if item is None:
                return
            label, path, body, headers = item
            async with session.post(base + path, data=body, headers=headers) as reply:
                text = await reply.text()
                statuses[label, reply.status] += 1
                problem = _problem(reply.status, reply.content_type, text)
                if problem and len(problems) < 20:
                    problems.append(f"{label} {reply.status}: {problem}: {text[:200]}")

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(runner(session) for _ in range(concurrency)))
    return statuses, problems


def _problem(status: int, content_type: str, text: str) -> str | None:
    if status >= 500:
        return "server error"
    if status not in (400, 422):
        return None
    if content_type != "application/json":
        return f"{content_type} instead of JSON"
    body = json.loads(text)
    if not body.get("error") or "field" not in body:
        return "no error message or field"
    return None


CONSISTENCY = {
    "calls without a touch": "SELECT count(*) FROM calls WHERE activity_id IS NULL "
    "OR activity_id NOT IN (SELECT id FROM activities)",
    "messages without a touch": "SELECT count(*) FROM messages "
    "WHERE activity_id IS NULL OR activity_id NOT IN (SELECT id FROM activities)",
    "call events without a call": "SELECT count(*) FROM call_events "
    "WHERE call_sid NOT IN (SELECT call_sid FROM calls)",
    "foreign key violations": "SELECT count(*) FROM pragma_foreign_key_check",
}


def check_database(database: Path) -> dict[str, int]:
    with sqlite3.connect(database) as connection:
        return {
            name: int(connection.execute(query).fetchone()[0])
            for name, query in CONSISTENCY.items()
        }


def admin_token(env: dict[str, str]) -> str:
    touchline = str(Path(sys.executable).with_name("touchline"))
    subprocess.run([touchline, "demo"], env=env, check=True, capture_output=True)
    created = subprocess.run(
        [touchline, "tokens", "create", "--user", "ada@demo.touchline.test"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return created.stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000, help="requests sent")
    parser.add_argument("--concurrency", type=int, default=16, help="open requests")
    parser.add_argument("--seed", type=int, default=1, help="random seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="touchline-fuzz-") as temporary:
        work = Path(temporary)
        port = free_port()
        public_url = f"http://127.0.0.1:{port}"
        env = dict(os.environ)
        env.update(
            {
                "TOUCHLINE_DATA_DIR": str(work / "data"),
                "TOUCHLINE_PUBLIC_URL": public_url,
                "TOUCHLINE_TWILIO_AUTH_TOKEN": TOKEN,
                "TOUCHLINE_SECRET_KEY": "f" * 40,
                "TOUCHLINE_SMTP_PORT": "0",
                "TOUCHLINE_TRANSCRIBE_ENGINE": "none",
                "TOUCHLINE_MEDIA_HOSTS": "127.0.0.1",
            }
        )
        token = admin_token(env)
        touchline = str(Path(sys.executable).with_name("touchline"))
        server = start([touchline, "serve", "--port", str(port)], env)
        try:
            wait_ready(public_url + "/healthz")
            started = time.perf_counter()
            work_items = requests(args.seed, args.requests, public_url, token)
            statuses, problems = asyncio.run(
                send_all(public_url, work_items, args.concurrency)
            )
            elapsed = time.perf_counter() - started
        finally:
            stop(server)
        database = check_database(work / "data" / "touchline.db")
    report = {
        "requests": sum(statuses.values()),
        "seconds": round(elapsed, 1),
        "statuses": {
            f"{label} {status}": n for (label, status), n in sorted(statuses.items())
        },
        "problems": problems,
        "database": database,
    }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    failed = problems or any(database.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
