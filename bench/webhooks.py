"""Webhook throughput: the real service against a signature-only handler.

Both servers run as separate processes on loopback and get the same load
from wrk: signed call status callbacks (initiated, ringing, in-progress,
completed for each of many calls) at a fixed number of connections. The
real service stores every event through its batching writer in SQLite;
the baseline only parses the form and checks the signature. The figure
that matters is the ratio of the two throughputs, measured in one run.

The service runs with the default `webhook_writer` (process). With
`--writers process,thread` each round measures the service once with each
writer, in that order, after the baseline. The server's CPU time includes
the processes it started (the writer's process and its fork server).

Run: .venv/bin/python bench/webhooks.py [--connections 32] [--seconds 10]
     [--repeat N] [--writers process[,thread]]
Needs wrk (Debian package wrk).
"""

from __future__ import annotations

import argparse
import email.utils
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from twilio.request_validator import RequestValidator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capture.demo_data import CUSTOMERS, REPS  # noqa: E402

TOKEN = "bench-auth-token"
PATH = "/twilio/voice/status"
STATUSES = (
    ("initiated", None),
    ("ringing", None),
    ("in-progress", None),
    ("completed", 93),
)
LUA = r"""
local requests = {}
local index = 0
local count = 0
init = function(args)
  local file = io.open(args[1], "r")
  for line in file:lines() do
    local signature, body = line:match("^(%S+) (.*)$")
    count = count + 1
    requests[count] = wrk.format("POST", nil, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = signature,
    }, body)
  end
  file:close()
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  index = math.random(0, count - 1)
end
request = function()
  index = (index % count) + 1
  return requests[index]
end
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_requests(path: Path, public_url: str, calls: int) -> None:
    """Write one `signature body` line per status callback."""
    validator = RequestValidator(TOKEN)
    start = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
    with path.open("w") as output:
        for number in range(calls):
            rep = REPS[number % len(REPS)]
            customer = CUSTOMERS[number % len(CUSTOMERS)]
            sid = f"CA{number:032x}"
            for sequence, (status, duration) in enumerate(STATUSES):
                moment = start + timedelta(seconds=number + 10 * sequence)
                params = {
                    "AccountSid": "AC" + "0" * 32,
                    "ApiVersion": "2010-04-01",
                    "CallSid": sid,
                    "CallStatus": status,
                    "Direction": "outbound-api",
                    "From": rep.phone,
                    "To": customer.phone,
                    "SequenceNumber": str(sequence),
                    "Timestamp": email.utils.format_datetime(moment, usegmt=True),
                }
                if duration is not None:
                    params["CallDuration"] = str(duration)
                signature = validator.compute_signature(public_url + PATH, params)
                output.write(f"{signature} {urllib.parse.urlencode(params)}\n")


def wait_ready(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError as error:
            if getattr(error, "code", None) is not None:
                return
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not respond within {seconds} s")


def process_cpu_seconds(pid: int) -> float:
    """Return the user and system CPU time so far of a process, its threads
    and the processes under it that are still running (the writer's)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(process_cpu_seconds(child) for child in children_of(pid))


def children_of(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        children.extend(int(child) for child in text.split())
    return children


def run_wrk(
    url: str,
    requests: Path,
    script: Path,
    connections: int,
    seconds: int,
    server_pid: int,
) -> dict[str, float]:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url + PATH,
        "--",
        str(requests),
    ]
    cpu_before = process_cpu_seconds(server_pid)
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    cpu = process_cpu_seconds(server_pid) - cpu_before
    result = parse_wrk(output)
    # CPU per request moves less than throughput when other work shares the
    # machine, so it is a second view of the same comparison.
    handled = result["requests_per_second"] * seconds
    result["server_cpu_us_per_request"] = round(cpu / handled * 1e6, 1)
    return result


def parse_wrk(output: str) -> dict[str, float]:
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.*)", output)
    latency = {
        key: _milliseconds(value)
        for key, value in re.findall(r"^\s+(50|90|99)%\s+(\S+)", output, re.MULTILINE)
    }
    return {
        "requests_per_second": rate,
        "non_2xx": float(non_2xx.group(1)) if non_2xx else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
        "p50_ms": latency.get("50", 0.0),
        "p90_ms": latency.get("90", 0.0),
        "p99_ms": latency.get("99", 0.0),
    }


def _milliseconds(text: str) -> float:
    number = float(re.match(r"[\d.]+", text).group(0))
    if text.endswith("us"):
        return number / 1000
    if text.endswith("ms"):
        return number
    return number * 1000


def start(
    command: list[str], env: dict[str, str], log: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start a server process; its output goes to `log`, or nowhere."""
    if log is None:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    with log.open("ab") as output:
        return subprocess.Popen(
            command, env=env, stdout=output, stderr=subprocess.STDOUT
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def measure_service(
    work: Path, args: argparse.Namespace, writer: str
) -> tuple[dict[str, float], int]:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    requests = work / "service.txt"
    write_requests(requests, public_url, args.calls)
    env = dict(os.environ)
    env.update(
        {
            "TOUCHLINE_DATA_DIR": str(work / "data"),
            "TOUCHLINE_PUBLIC_URL": public_url,
            "TOUCHLINE_TWILIO_AUTH_TOKEN": TOKEN,
            "TOUCHLINE_SECRET_KEY": "b" * 40,
            "TOUCHLINE_TRANSCRIBE_ENGINE": "none",
            "TOUCHLINE_WEBHOOK_WRITER": writer,
            # The benchmark sends webhooks only, so no SMTP listener is started.
            "TOUCHLINE_SMTP_PORT": "0",
        }
    )
    touchline = str(Path(sys.executable).with_name("touchline"))
    subprocess.run([touchline, "demo"], env=env, check=True, capture_output=True)
    process = start([touchline, "serve", "--port", str(port)], env)
    try:
        wait_ready(public_url + "/healthz")
        result = run_wrk(
            public_url,
            requests,
            work / "load.lua",
            args.connections,
            args.seconds,
            process.pid,
        )
    finally:
        stop(process)
    return result, count_events(work / "data" / "touchline.db")


def count_events(database: Path) -> int:
    import sqlite3

    with sqlite3.connect(database) as connection:
        return int(connection.execute("SELECT count(*) FROM call_events").fetchone()[0])


def measure_baseline(work: Path, args: argparse.Namespace) -> dict[str, float]:
    port = free_port()
    public_url = f"http://127.0.0.1:{port}"
    requests = work / "baseline.txt"
    write_requests(requests, public_url, args.calls)
    script = str(ROOT / "bench" / "signature_only.py")
    process = start(
        [sys.executable, script, str(port), public_url, TOKEN], dict(os.environ)
    )
    try:
        wait_ready(public_url + PATH)
        return run_wrk(
            public_url,
            requests,
            work / "load.lua",
            args.connections,
            args.seconds,
            process.pid,
        )
    finally:
        stop(process)


def compare(
    baseline: dict[str, float], service: dict[str, float], stored: int
) -> dict[str, object]:
    ratio = service["requests_per_second"] / baseline["requests_per_second"]
    cpu_ratio = (
        baseline["server_cpu_us_per_request"] / service["server_cpu_us_per_request"]
    )
    return {
        "service": service,
        "events_stored": stored,
        "ratio": round(ratio, 3),
        "cpu_ratio": round(cpu_ratio, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=32, help="open connections")
    parser.add_argument("--seconds", type=int, default=10, help="length of each run")
    parser.add_argument(
        "--calls", type=int, default=25_000, help="calls (4 events each)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of baseline then service; the report gives the median ratio",
    )
    parser.add_argument(
        "--writers",
        default="process",
        help="comma-separated webhook_writer settings to measure in each round",
    )
    args = parser.parse_args()
    writers = args.writers.split(",")
    if not set(writers) <= {"process", "thread"}:
        parser.error("--writers takes process, thread or both")
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    rounds = []
    with tempfile.TemporaryDirectory(prefix="touchline-bench-") as temporary:
        for number in range(args.repeat):
            work = Path(temporary) / f"round-{number + 1}"
            work.mkdir()
            (work / "load.lua").write_text(LUA)
            baseline = measure_baseline(work, args)
            round_report: dict[str, object] = {"baseline": baseline}
            for writer in writers:
                folder = work / writer
                folder.mkdir()
                (folder / "load.lua").write_text(LUA)
                service, stored = measure_service(folder, args, writer)
                round_report[writer] = compare(baseline, service, stored)
            rounds.append(round_report)
    report = {
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "connections": args.connections,
        "seconds": args.seconds,
        "rounds": rounds,
    }
    for writer in writers:
        report[f"median_ratio_{writer}"] = statistics.median(
            r[writer]["ratio"] for r in rounds
        )
        report[f"median_cpu_ratio_{writer}"] = statistics.median(
            r[writer]["cpu_ratio"] for r in rounds
        )
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
