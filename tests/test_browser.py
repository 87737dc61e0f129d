"""Browser scenarios in headless Chromium against a real `touchline serve`.

One server per module: `touchline demo` loads the demo company into a fresh
SQLite database, `touchline serve` runs on a loopback port with its
in-process worker, and `touchline simulate` sends it two calls and an SMS.
The answered call carries real espeak-ng speech, which the worker downloads
and transcribes with tiny.en before the first scenario starts.

Playwright drives Debian's Chromium at /usr/bin/chromium (or the path in
TOUCHLINE_CHROMIUM); no browser is downloaded. When a scenario fails, a
screenshot and the page's HTML are saved in that test's tmp_path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import smtplib
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from conftest import free_port

from capture.demo_data import CUSTOMERS, DEMO_PASSWORD, REPS, STAFF

try:
    from playwright.sync_api import (
        Browser,
        Locator,
        Page,
        Response,
        ViewportSize,
        expect,
        sync_playwright,
    )
except ImportError:
    pytest.fail(
        "playwright is not installed; run `make install` to install the pinned "
        "dependencies",
        pytrace=False,
    )

CHROMIUM = Path(os.environ.get("TOUCHLINE_CHROMIUM", "/usr/bin/chromium"))
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
# Seed 1 with two calls gives one unanswered call and one answered, recorded
# call between Ana Ruiz and Harbor Freight Co. The site fixture fails if no
# call was recorded.
SIMULATION = ["--calls", "2", "--sms", "1", "--rate", "0", "--seed", "1"]
SIMULATION += ["--fetch-timeout", "30"]
START_TIMEOUT_S = 30.0
TRANSCRIBE_TIMEOUT_S = 90.0
AUTH_TOKEN = "browser-test-auth-token"
LANGUAGE_ACTION = "/account/language"
CAPTURE_DOMAIN = "capture.touchline.test"
# Each line tries a different way to run script; none may run.
HOSTILE_HTML = (
    "<p id='greeting'>Quarterly numbers</p>"
    "<script>window.pwned = 'script'; alert('script')</script>"
    "<img src=x onerror=\"window.pwned = 'img'\">"
    "<a href=\"javascript:window.pwned = 'link'\">open</a>"
    "<svg onload=\"window.pwned = 'svg'\"></svg>"
    "<iframe srcdoc=\"<script>parent.pwned = 'iframe'</script>\"></iframe>"
    "<form action='https://evil.example/'><button>Send</button></form>"
    '<div style="background:url(javascript:alert(1))">styled</div>'
)


@dataclass(frozen=True)
class DemoSite:
    url: str
    smtp_port: int
    database: Path
    log_path: Path
    call_sid: str
    talk_seconds: int
    rep_email: str
    customer_phone: str
    customer_name: str


def touchline(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "web.cli", "--config", str(config), *args]


def run_touchline(config: Path, *args: str, env: dict[str, str]) -> None:
    """Run one `touchline` command and fail the test with its output if it fails."""
    try:
        done = subprocess.run(
            touchline(config, *args), capture_output=True, env=env, timeout=90
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"touchline {args[0]} timed out:\n{error.output!r}")
    if done.returncode != 0:
        output = (done.stdout + done.stderr).decode(errors="replace")[-3000:]
        pytest.fail(f"touchline {args[0]} exited {done.returncode}:\n{output}")


def write_config(directory: Path, port: int, smtp_port: int) -> Path:
    config = directory / "touchline.toml"
    config.write_text(
        f"smtp_port = {smtp_port}\n"
        f'capture_domains = ["{CAPTURE_DOMAIN}"]\n'
        f'data_dir = "{directory / "data"}"\n'
        f'public_url = "http://127.0.0.1:{port}"\n'
        f'twilio_account_sid = "AC{"0" * 32}"\n'
        f'twilio_auth_token = "{AUTH_TOKEN}"\n'
        f'secret_key = "{"k" * 40}"\n'
        'media_hosts = ["127.0.0.1"]\n'
        'timezone = "America/Los_Angeles"\n'
        'transcribe_engine = "faster-whisper"\n'
        'whisper_model = "tiny.en"\n'
    )
    return config


def wait_until_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"touchline serve exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.2)
    pytest.fail(
        f"touchline serve returned no 200 from /healthz:\n{log.read_text()[-3000:]}"
    )


def wait_for_transcripts(database: Path, log: Path) -> None:
    """Wait until the worker has no queued or running job and a transcript exists."""
    query = (
        "SELECT (SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')),"
        " (SELECT count(*) FROM transcripts)"
    )
    deadline = time.monotonic() + TRANSCRIBE_TIMEOUT_S
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            pending, transcripts = connection.execute(query).fetchone()
        if pending == 0 and transcripts > 0:
            return
        time.sleep(0.3)
    pytest.fail(f"the recording was not transcribed:\n{log.read_text()[-3000:]}")


def recorded_call(report: dict[str, Any]) -> dict[str, Any]:
    for call in report["calls"]:
        if call["answered"] and call["recording_status"] == "completed":
            return dict(call)
    pytest.fail(f"the simulation made no recorded call: {report['calls']}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    directory = tmp_path_factory.mktemp("browser-site")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    smtp_port = free_port()
    config = write_config(directory, port, smtp_port)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    log_path = directory / "serve.log"
    run_touchline(config, "demo", env=env)

    with log_path.open("wb") as log:
        server = subprocess.Popen(
            touchline(config, "serve", "--host", "127.0.0.1", "--port", str(port)),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_until_healthy(url, server, log_path)
        report_path = directory / "simulation.json"
        simulate = ["simulate", "--url", url, *SIMULATION, "--report", str(report_path)]
        run_touchline(config, *simulate, env=env)
        call = recorded_call(json.loads(report_path.read_text()))
        wait_for_transcripts(directory / "data" / "touchline.db", log_path)
        names = {customer.phone: customer.name for customer in CUSTOMERS}
        yield DemoSite(
            url=url,
            smtp_port=smtp_port,
            database=directory / "data" / "touchline.db",
            log_path=log_path,
            call_sid=call["call_sid"],
            talk_seconds=call["talk_seconds"],
            rep_email=call["rep_email"],
            customer_phone=call["customer_phone"],
            customer_name=names[call["customer_phone"]],
        )
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's package with "
            "`apt-get install chromium`, or set TOUCHLINE_CHROMIUM to its path",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True
        )
        yield launched
        launched.close()


@pytest.fixture
def page(
    browser: Browser, site: DemoSite, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Page]:
    context = browser.new_context(base_url=site.url, viewport=VIEWPORT)
    context.set_default_timeout(10_000)
    opened = context.new_page()
    failures_before = request.session.testsfailed
    yield opened
    # The call phase has been reported by now, so a failed check has
    # already raised the session's failure count.
    if request.session.testsfailed > failures_before:
        opened.screenshot(path=tmp_path / "failure.png", full_page=True)
        (tmp_path / "failure.html").write_text(opened.content())
        shutil.copy(site.log_path, tmp_path / "serve.log")
        print(f"failed page and server log saved in {tmp_path}")
    context.close()


def log_in(page: Page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("header form.account")).to_be_visible()


def rep_name(email: str) -> str:
    return next(rep.name for rep in REPS if rep.email == email)


def team_manager(rep_email: str) -> str:
    team = next(rep.team for rep in REPS if rep.email == rep_email)
    return next(
        email
        for email, _, role, staff_team in STAFF
        if (role, staff_team) == ("manager", team)
    )


def national(phone: str) -> str:
    """Format an E.164 number as people in its country write it: (415) 555-0123."""
    number = phonenumbers.parse(phone)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def dotted(phone: str) -> str:
    """Format a +1 number with dots: 415.555.0123."""
    digits = phone.removeprefix("+1")
    return f"{digits[:3]}.{digits[3:6]}.{digits[6:]}"


def test_login_form_rep(page: Page, site: DemoSite) -> None:
    log_in(page, site.rep_email)
    page.goto("/customers")

    account = page.locator("header .account a")
    expect(account).to_contain_text(rep_name(site.rep_email))
    rows = page.locator("main tbody tr")
    expect(rows.filter(has_text=site.customer_name)).to_have_count(1)
    others = [c.name for c in CUSTOMERS if c.owner_email != site.rep_email]
    for name in others:
        expect(rows.filter(has_text=name)).to_have_count(0)


@pytest.mark.parametrize("formatted", [national, dotted], ids=["national", "dotted"])
def test_search_reformatted_phone(page: Page, site: DemoSite, formatted: Any) -> None:
    log_in(page, site.rep_email)
    page.goto("/customers")

    page.get_by_role("searchbox").fill(formatted(site.customer_phone))
    page.get_by_role("button", name="Search").click()
    rows = page.locator("main tbody tr")
    expect(rows).to_have_count(1)
    rows.get_by_role("link", name=site.customer_name).click()

    expect(page).to_have_url(re.compile(r"/customers/\d+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(site.customer_name)
    call_link = page.locator(f'a[href="/calls/{site.call_sid}"]')
    expect(call_link).to_have_count(1)


def test_call_player_seeks(page: Page, site: DemoSite) -> None:
    recordings: list[Response] = []
    page.on(
        "response",
        lambda response: (
            recordings.append(response) if "/recordings/" in response.url else None
        ),
    )
    log_in(page, site.rep_email)
    page.goto(f"/calls/{site.call_sid}")
    lines = page.locator("ol.transcript li[data-start]")
    expect(lines.first).to_be_visible()
    page.wait_for_function("document.getElementById('player').readyState >= 1")

    duration = page.evaluate("document.getElementById('player').duration")
    assert abs(duration - site.talk_seconds) < 1.0
    last = lines.last
    start = float(last.get_attribute("data-start") or "nan")
    assert start > 0, "the last transcript line should start after 0:00"
    last.locator("button.seek").click()

    page.wait_for_function(
        "start => document.getElementById('player').currentTime >= start", arg=start
    )
    expect(last).to_have_class(re.compile(r"\bplaying\b"))
    expect(lines.first).not_to_have_class(re.compile(r"\bplaying\b"))
    partial = [r for r in recordings if r.status == 206]
    assert partial, [(r.url, r.status) for r in recordings]
    assert partial[0].header_value("content-range") is not None
    assert partial[0].request.header_value("range") is not None


def test_language_switch_chinese(page: Page, site: DemoSite) -> None:
    # The rep's manager, whom no other scenario logs in as, so a failure
    # here leaves no Chinese pages behind for the others.
    log_in(page, team_manager(site.rep_email))
    page.goto("/customers")
    nav = page.locator("header nav")
    expect(nav).to_contain_text("Customers")

    switch = page.locator(f'header form[action="{LANGUAGE_ACTION}"]')
    assert switch.count() == 1, "no language switch in the page header"
    choose_chinese(switch)

    expect(page.locator("html")).to_have_attribute("lang", re.compile(r"^zh"))
    expect(nav).to_contain_text("客户")
    expect(nav).not_to_contain_text("Customers")
    expect(page.get_by_role("button", name="退出登录")).to_be_visible()
    page.goto(f"/calls/{site.call_sid}")
    expect(page.locator("html")).to_have_attribute("lang", re.compile(r"^zh"))
    expect(page.get_by_role("heading", name="转写文本")).to_be_visible()

    # The choice is stored on the user; switch back for later runs and pages.
    switch.locator("select").select_option("en")
    switch.locator("button").first.click()
    expect(page.locator("html")).to_have_attribute("lang", "en")


def choose_chinese(switch: Locator) -> None:
    """Pick the Chinese option of the language form and submit it."""
    select = switch.locator("select")
    if select.count():
        option = select.locator("option[value^='zh']").first
        select.select_option(option.get_attribute("value"))
        switch.locator("button, input[type=submit]").first.click()
    else:
        switch.locator("button[value^='zh'], input[value^='zh']").first.click()


def test_other_rep_customer_not_found(page: Page, site: DemoSite) -> None:
    log_in(page, site.rep_email)
    page.goto("/customers")
    page.get_by_role("link", name=site.customer_name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(site.customer_name)
    customer_path = page.url.removeprefix(site.url)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login"))
    other = next(rep.email for rep in REPS if rep.email != site.rep_email)
    log_in(page, other)

    response = page.goto(customer_path)

    assert response is not None
    assert response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Error 404")
    expect(page.locator("main")).not_to_contain_text(site.customer_name)


def test_plan_chain_and_board(page: Page, site: DemoSite) -> None:
    log_in(page, site.rep_email)
    page.goto("/customers")
    page.get_by_role("link", name=site.customer_name).click()
    expect(page.locator(".contacts .local-time").first).to_contain_text("local time")

    plan_form = page.locator("#set-plan")
    plan_form.get_by_label("Purpose").select_option(label="Sign and collect payment")
    plan_form.get_by_label("Window").select_option(label="Later today")
    plan_form.get_by_label("Note").fill("send the contract")
    plan_form.get_by_role("button", name="Set next step").click()

    next_step = page.locator("#next-step")
    expect(next_step).to_contain_text("Sign and collect payment")
    expect(next_step).to_contain_text("send the contract")
    page.locator("header nav").get_by_role("link", name="Plan board").click()
    due_today = page.locator("#due-today")
    expect(due_today.get_by_role("link", name=site.customer_name)).to_be_visible()
    due_today.get_by_role("link", name=site.customer_name).click()

    complete = page.locator("#complete-plan")
    complete.get_by_label("set the next plan").check()
    complete.get_by_label("Purpose").select_option(label="Keep in touch")
    complete.get_by_label("Window").select_option(label="Next week")
    complete.get_by_role("button", name="Complete").click()

    expect(next_step).to_contain_text("Keep in touch")
    expect(page.locator("#plan-history")).to_contain_text("Sign and collect payment")
    page.goto("/board")
    expect(
        page.locator("#due-today").get_by_role("link", name=site.customer_name)
    ).to_have_count(0)


def send_hostile_email(site: DemoSite) -> int:
    """Send an HTML email over SMTP to the site; return its email id."""
    message = EmailMessage()
    message["From"] = "Harbor Ops <ops@harbor.example>"
    message["To"] = site.rep_email
    message["Subject"] = "Hostile markup"
    message["Message-ID"] = "<hostile@harbor.example>"
    message.set_content("Quarterly numbers (plain)")
    message.add_alternative(HOSTILE_HTML, subtype="html")
    with smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=30) as smtp:
        smtp.sendmail(
            "ops@harbor.example",
            [f"log@{CAPTURE_DOMAIN}"],
            message.as_bytes().replace(b"\n", b"\r\n"),
        )
    with sqlite3.connect(f"file:{site.database}?mode=ro", uri=True) as connection:
        row = connection.execute(
            "SELECT id FROM emails WHERE message_id = 'hostile@harbor.example'"
        ).fetchone()
    assert row is not None, "the email sent over SMTP was not stored"
    return int(row[0])


def test_email_html_runs_no_script(page: Page, site: DemoSite) -> None:
    email_id = send_hostile_email(site)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, "ana@demo.touchline.test")

    page.goto(f"/emails/{email_id}")
    expect(page.locator("pre.email-body")).to_contain_text("Quarterly numbers (plain)")
    page.get_by_role("link", name="Show formatted (HTML)").click()
    expect(page.locator("#greeting, .email-body p").first).to_have_text(
        "Quarterly numbers"
    )
    body = page.locator(".email-body")
    if body.locator("a").count():
        body.locator("a").first.click()
    page.wait_for_timeout(500)

    assert page.evaluate("() => window.pwned === undefined")
    assert dialogs == []
    assert body.locator("script, iframe, svg, form, img").count() == 0
    assert body.locator("[onerror], [onload], [style]").count() == 0
    assert body.locator("a[href^='javascript']").count() == 0


def player_time(page: Page) -> float:
    return float(page.evaluate("document.getElementById('player').currentTime"))


def clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


def test_review_comment_at_moment(page: Page, site: DemoSite) -> None:
    log_in(page, site.rep_email)
    page.goto(f"/calls/{site.call_sid}")
    lines = page.locator("ol.transcript li[data-start]")
    expect(lines.first).to_be_visible()
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    last = lines.last
    start = float(last.get_attribute("data-start") or "nan")

    last.locator("button.seek").click()
    page.wait_for_function(
        "start => document.getElementById('player').currentTime >= start", arg=start
    )
    page.evaluate("document.getElementById('player').pause()")
    moment = player_time(page)
    page.get_by_role("button", name="Use the current moment").click()
    page.get_by_label("Comment (mention people with @name)").fill("Listen to the close")
    page.get_by_role("button", name="Add comment").click()

    expect(page).to_have_url(re.compile(rf"\?t={int(moment)}#comment-\d+$"))
    comment = page.locator("ol.comments > li", has_text="Listen to the close")
    expect(comment).to_have_count(1)
    expect(comment.locator("a.seek-link")).to_have_text(clock(moment))
    assert float(comment.get_attribute("data-at") or "nan") == int(moment)
    expect(page.locator(".timeline a.mark.comment")).to_have_count(1)
    page.wait_for_function(
        "at => Math.abs(document.getElementById('player').currentTime - at) < 0.5",
        arg=int(moment),
    )


def test_review_keyboard_shortcuts(page: Page, site: DemoSite) -> None:
    log_in(page, site.rep_email)
    page.goto(f"/calls/{site.call_sid}?t=6")
    page.wait_for_function("document.getElementById('player').readyState >= 1")
    page.wait_for_function("document.getElementById('player').currentTime >= 6")
    page.evaluate("document.activeElement && document.activeElement.blur()")

    page.keyboard.press("ArrowLeft")
    back = player_time(page)
    page.keyboard.press("ArrowRight")
    forward = player_time(page)
    page.keyboard.press("]")
    faster = page.evaluate("document.getElementById('player').playbackRate")
    page.keyboard.press("[")
    page.keyboard.press("[")
    slower = page.evaluate("document.getElementById('player').playbackRate")
    page.keyboard.press(" ")
    page.wait_for_function("!document.getElementById('player').paused")
    page.keyboard.press(" ")

    assert abs(back - 1) < 0.5
    assert abs(forward - 6) < 0.5
    assert faster == 1.25
    assert slower == 0.75
    expect(page.locator("#rate")).to_have_text("0.75×")
    page.wait_for_function("document.getElementById('player').paused")


def test_reports_page_manager(page: Page, site: DemoSite) -> None:
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    log_in(page, team_manager(site.rep_email))

    page.get_by_role("navigation").get_by_role("link", name="Reports").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Reports")
    row = page.locator(f'#rep-summary tr[data-rep="{site.rep_email}"]')
    expect(row).to_contain_text(rep_name(site.rep_email))
    # The recorded call is this rep's only answered call of the simulation.
    expect(row.locator("td").nth(6)).to_have_text("1")
    expect(row.locator("td").nth(7)).to_contain_text("sec")
    expect(page.locator("#kpis svg.trend")).to_have_count(6)
    assert refused == []


def test_reports_page_rep_own_row(page: Page, site: DemoSite) -> None:
    log_in(page, site.rep_email)

    page.goto("/reports")

    expect(page.locator("#rep-summary tr[data-rep]")).to_have_count(1)
    expect(page.locator(f'tr[data-rep="{site.rep_email}"]')).to_be_visible()


def test_schedule_created_on_page(page: Page, site: DemoSite) -> None:
    log_in(page, "omar@demo.touchline.test")
    page.get_by_role("navigation").get_by_role("link", name="Scheduled exports").click()
    form = page.locator("#new-schedule")

    form.locator("select[name=report]").select_option("calls")
    form.locator("select[name=format]").select_option("xlsx")
    form.locator("select[name=frequency]").select_option("weekly")
    form.locator("select[name=weekday]").select_option("friday")
    form.locator("input[name=time]").fill("17:30")
    form.locator("input[name=target]").fill("../outside")
    form.get_by_role("button", name="Add schedule").click()

    expect(page.get_by_role("alert")).to_contain_text("outside the export folder")
    expect(page.get_by_role("alert")).to_contain_text("target")
    expect(page.locator("#schedules tr[data-schedule]")).to_have_count(0)

    form.locator("input[name=target]").fill("browser/weekly")
    form.get_by_role("button", name="Add schedule").click()

    row = page.locator("#schedules tr[data-schedule]")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Calls (XLSX)")
    expect(row).to_contain_text("Weekly, Friday, 17:30")
    expect(row).to_contain_text("not run yet")

    row.get_by_role("button", name="Run now").click()
    expect(row.locator("td.outcome")).to_have_text("succeeded")
    folder = site.database.parent / "exports" / "browser" / "weekly"
    written = [path.name for path in folder.iterdir()]
    assert len(written) == 1
    assert written[0].startswith("calls_")
    assert written[0].endswith(".xlsx")

    row.get_by_role("button", name="Pause").click()
    expect(row).to_contain_text("paused")
    row.get_by_role("button", name="Delete").click()
    expect(page.locator("#schedules tr[data-schedule]")).to_have_count(0)
