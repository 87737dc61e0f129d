"""Stored XSS: hostile text in every place a user or a customer can write it.

A `touchline serve` on a fresh demo database receives markup through its
real interfaces: an SMS body from an unknown number, which makes a new
lead, a user's name, a custom field's label and value, and a
milestone. A transcript segment is written into the database directly,
because speech cannot carry markup. Headless Chromium then opens every
page that shows them, as the admin, and checks that the markup is shown as
text and that no script ran.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import free_port, sign
from test_browser import (
    AUTH_TOKEN,
    browser,  # noqa: F401  (a fixture)
    run_touchline,
    touchline,
    wait_until_healthy,
    write_config,
)
from twilio_params import call_status, inbound_sms, new_sid, recording_status

from capture.demo_data import CUSTOMERS, DEMO_PASSWORD, REPS, STAFF

try:
    from playwright.sync_api import Browser, Dialog, Page, expect
except ImportError:
    pytest.fail("playwright is not installed; run `make install`", pytrace=False)

# Each payload sets a different mark, so a failure shows which one ran.
IMAGE = '<img src=x onerror="window.__xss=1">'
SCRIPT = "<script>window.__xss=2</script>"
LINK = '<a href="javascript:window.__xss=3">open</a>'
HOSTILE = f"{IMAGE} {SCRIPT} {LINK}"
ADMIN = next(email for email, _, role, _ in STAFF if role == "admin")
ANA = REPS[0]
HARBOR = CUSTOMERS[0]
STRANGER = "+14155550177"


@dataclass(frozen=True)
class HostileSite:
    url: str
    lead_id: int
    call_sid: str


def post_form(url: str, path: str, params: dict[str, str]) -> int:
    body = urllib.parse.urlencode(params).encode()
    request = urllib.request.Request(
        url + path,
        data=body,
        headers={"X-Twilio-Signature": sign(url + path, params, AUTH_TOKEN)},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def call_api(url: str, token: str, method: str, path: str, body: object) -> int:
    request = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return int(response.status)


def write_transcript(database: Path, call_sid: str, recording_sid: str) -> None:
    with sqlite3.connect(database) as connection:
        connection.execute(
            "UPDATE recordings SET status = 'stored' WHERE recording_sid = ?",
            (recording_sid,),
        )
        (recording_id,) = connection.execute(
            "SELECT id FROM recordings WHERE recording_sid = ?", (recording_sid,)
        ).fetchone()
        cursor = connection.execute(
            "INSERT INTO transcripts (recording_id, engine, model, language, "
            "duration_seconds, text, created_at) VALUES (?, 'test', 'none', 'en', "
            "4.0, ?, '2026-11-02 16:00:05.000000')",
            (recording_id, HOSTILE),
        )
        connection.execute(
            "INSERT INTO transcript_segments (transcript_id, channel, speaker, "
            "start_ms, end_ms, text, confidence) VALUES (?, 1, 'customer', 0, "
            "4000, ?, 0.9)",
            (cursor.lastrowid, HOSTILE),
        )


def seed(url: str, config: Path, env: dict[str, str], data: Path) -> HostileSite:
    subprocess.run(
        touchline(
            config,
            *("users", "add", "--email", "eve@example.com", "--name", HOSTILE),
            *("--role", "rep", "--team", "West", "--password-stdin"),
        ),
        input="a long password here\n",
        text=True,
        capture_output=True,
        env=env,
        check=True,
    )
    token = subprocess.run(
        touchline(config, "tokens", "create", "--user", ADMIN),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()

    sms = inbound_sms(new_sid("SM"), STRANGER, ANA.phone, HOSTILE)
    assert post_form(url, "/twilio/sms", sms) == 200
    field = {"key": "notes", "label": IMAGE, "kind": "text", "required": False}

    assert call_api(url, token, "POST", "/api/v1/custom-fields", field) == 201
    value = {"fields": {"notes": HOSTILE}}
    assert call_api(url, token, "PATCH", "/api/v1/customers/1/value", value) == 200
    milestone = {"title": IMAGE, "occurred_at": "2026-11-02T10:00:00-08:00"}
    milestone["note"] = HOSTILE
    assert (
        call_api(url, token, "POST", "/api/v1/customers/1/milestones", milestone) == 201
    )

    call_sid, recording_sid = new_sid("CA"), new_sid("RE")
    status = call_status(
        call_sid, "completed", 3, caller=ANA.phone, called=HARBOR.phone, duration=4
    )
    assert post_form(url, "/twilio/voice/status", status) == 204
    recording = recording_status(
        call_sid, recording_sid, "completed", url="http://127.0.0.1:9/R", duration=4
    )
    assert post_form(url, "/twilio/voice/recording", recording) == 204
    write_transcript(data / "touchline.db", call_sid, recording_sid)

    with sqlite3.connect(data / "touchline.db") as connection:
        (lead_id,) = connection.execute(
            "SELECT customer_id FROM contact_points WHERE value = ?", (STRANGER,)
        ).fetchone()
    return HostileSite(url=url, lead_id=int(lead_id), call_sid=call_sid)


@pytest.fixture(scope="module")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileSite]:
    directory = tmp_path_factory.mktemp("xss-site")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = write_config(directory, port, smtp_port=0)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    log_path = directory / "serve.log"
    run_touchline(config, "demo", env=env)
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            touchline(config, "serve", "--no-worker", "--port", str(port)),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_until_healthy(url, server, log_path)
        yield seed(url, config, env, directory / "data")
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def admin_page(browser: Browser, hostile_site: HostileSite) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(base_url=hostile_site.url)
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Email").fill(ADMIN)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("header form.account")).to_be_visible()
    yield page
    context.close()


def pages(site: HostileSite) -> list[str]:
    return [
        "/",
        "/customers",
        f"/customers/{site.lead_id}",
        "/customers/1",
        "/customers/1/value",
        "/calls",
        f"/calls/{site.call_sid}",
        "/reports/reps?from=2026-11-01&to=2026-11-30",
        "/admin/users",
        "/admin/fields",
    ]


def test_hostile_text_shown_never_run(
    admin_page: Page, hostile_site: HostileSite
) -> None:
    dialogs: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    admin_page.on("dialog", dismiss)
    markup_counts = {}
    for path in pages(hostile_site):
        response = admin_page.goto(path)
        assert response is not None
        assert response.status == 200, path
        # Click every link, so a javascript: URL in one would run.
        for link in admin_page.locator("main a[href^='javascript:']").all():
            link.click()
        mark = admin_page.evaluate("window.__xss === undefined ? null : window.__xss")
        assert mark is None, f"{path} ran script {mark}"
        markup_counts[path] = admin_page.locator("body").inner_text().count("onerror=")

    assert dialogs == []
    # The markup is on each page that shows the hostile text, as visible text.
    for path in (f"/customers/{hostile_site.lead_id}", "/customers/1/value"):
        assert markup_counts[path] >= 1, path
    assert markup_counts[f"/calls/{hostile_site.call_sid}"] >= 1
    assert markup_counts["/admin/users"] >= 1
    assert markup_counts["/admin/fields"] >= 1


def test_pages_carry_a_script_policy(
    admin_page: Page, hostile_site: HostileSite
) -> None:
    response = admin_page.goto("/customers/1")

    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "object-src 'none'" in policy
