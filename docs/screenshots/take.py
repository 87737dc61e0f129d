"""Take the screenshots in docs/screenshots from a fresh demo server.

Starts `touchline serve --demo` on a free loopback port with its data in a
temporary directory, waits until the demo calls are transcribed, then logs
in with headless Chromium and saves one PNG per page at a fixed viewport.
Run it with `make screenshots`. Chromium comes from Debian's `chromium`
package and Chinese text needs `fonts-noto-cjk`; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, ViewportSize, sync_playwright

from capture.demo_data import DEMO_PASSWORD

HERE = Path(__file__).resolve().parent
CHROMIUM = Path(os.environ.get("TOUCHLINE_CHROMIUM", "/usr/bin/chromium"))
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
ADMIN = "ada@demo.touchline.test"
START_TIMEOUT_S = 60.0
# The demo took about 20 s in all on two cores with tiny.en; this limit leaves
# room for slower machines.
TRANSCRIBE_TIMEOUT_S = 300.0
# The call with the longest transcript that has a customer, for the call page.
BEST_CALL = """
SELECT r.call_sid, a.customer_id, count(s.id) AS lines
FROM recordings r
JOIN transcripts t ON t.recording_id = r.id
JOIN transcript_segments s ON s.transcript_id = t.id
JOIN calls c ON c.call_sid = r.call_sid
JOIN activities a ON a.id = c.activity_id
WHERE a.customer_id IS NOT NULL
GROUP BY r.call_sid, a.customer_id
ORDER BY lines DESC, r.call_sid
LIMIT 1
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(directory: Path, port: int) -> Path:
    config = directory / "touchline.toml"
    config.write_text(
        f'data_dir = "{directory / "data"}"\n'
        f'public_url = "http://127.0.0.1:{port}"\n'
        'twilio_account_sid = "ACd0d0d0d0d0d0d0d0d0d0d0d0d0d0d0d0"\n'
        'twilio_auth_token = "screenshots-auth-token"\n'
        f'secret_key = "{"k" * 40}"\n'
        'media_hosts = ["127.0.0.1"]\n'
        'timezone = "America/Los_Angeles"\n'
        'whisper_model = "tiny.en"\n'
        # No SMTP listener: the pages need none, and a fixed port could clash.
        "smtp_port = 0\n"
    )
    return config


def wait_for(
    description: str, timeout_s: float, log: Path, ready: Callable[[], bool]
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-3000:]
    raise SystemExit(f"take.py: timed out waiting for {description}\n{tail}")


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError):
        return False


def demo_transcribed(database: Path, log: Path) -> bool:
    """True once the demo simulation has finished and no job is waiting."""
    if "demo simulation finished" not in log.read_text(errors="replace"):
        return False
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        query = "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')"
        (pending,) = connection.execute(query).fetchone()
    return int(pending) == 0


@contextmanager
def demo_server(directory: Path) -> Iterator[str]:
    """Serve the demo company on a free loopback port and yield its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_config(directory, port)
    log_path = directory / "serve.log"
    command = [sys.executable, "-m", "web.cli", "--config", str(config)]
    command += ["serve", "--demo", "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env
        )
    try:
        wait_for("/healthz", START_TIMEOUT_S, log_path, lambda: healthy(url))
        database = directory / "data" / "touchline.db"
        wait_for(
            "the demo transcripts",
            TRANSCRIBE_TIMEOUT_S,
            log_path,
            lambda: demo_transcribed(database, log_path),
        )
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def best_call(database: Path) -> tuple[str, int]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        row = connection.execute(BEST_CALL).fetchone()
    if row is None:
        raise SystemExit("take.py: the demo produced no transcribed call")
    return str(row[0]), int(row[1])


def save(page: Page, output: Path, name: str) -> None:
    path = output / f"{name}.png"
    page.screenshot(path=path)
    print(f"{path} ({path.stat().st_size // 1024} KiB)")


def log_in(page: Page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("header form.account").wait_for()


def play_second_line(page: Page) -> None:
    """Seek to the second transcript line and pause there, so it is highlighted."""
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    line = page.locator("ol.transcript li[data-start]").nth(1)
    line.locator("button.seek").click()
    start = float(line.get_attribute("data-start") or "0")
    page.wait_for_function(
        "start => document.getElementById('player').currentTime > start + 0.5",
        arg=start,
    )
    page.evaluate("document.getElementById('player').pause()")


def switch_to_chinese(page: Page) -> bool:
    """Choose Simplified Chinese in the header, or return False if no page offers it."""
    select = page.locator('header form[action="/account/language"] select')
    if not select.count():
        return False
    select.select_option(
        select.locator("option[value^='zh']").first.get_attribute("value")
    )
    page.locator('header form[action="/account/language"] button').click()
    page.wait_for_load_state()
    return True


def take(url: str, database: Path, output: Path) -> None:
    call_sid, customer_id = best_call(database)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        context = browser.new_context(base_url=url, viewport=VIEWPORT)
        page = context.new_page()
        page.goto("/login")
        save(page, output, "login")
        log_in(page, ADMIN)
        page.goto("/customers")
        save(page, output, "customers")
        page.goto(f"/customers/{customer_id}")
        save(page, output, "customer")
        page.goto(f"/calls/{call_sid}")
        play_second_line(page)
        save(page, output, "call")
        page.goto("/reports/reps")
        save(page, output, "reps")
        if switch_to_chinese(page):
            page.goto(f"/calls/{call_sid}")
            save(page, output, "call-zh")
        else:
            print("no language switch in the header; call-zh.png not taken")
        browser.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=HERE, help="folder for the PNG files"
    )
    args = parser.parse_args()
    if not CHROMIUM.is_file():
        print(f"take.py: Chromium not found at {CHROMIUM}", file=sys.stderr)
        return 1
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="touchline-screens-") as temporary:
        directory = Path(temporary)
        with demo_server(directory) as url:
            take(url, directory / "data" / "touchline.db", args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
