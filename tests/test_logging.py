"""Logs and metrics carry ids and outcomes, never phone numbers or secrets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from conftest import (
    ADMIN_EMAIL,
    AUTH_TOKEN,
    PASSWORD,
    csrf_of,
    free_port,
    make_settings,
    post_signed,
)
from twilio.request_validator import RequestValidator
from twilio_params import call_status, new_sid, recording_status

from capture.demo_data import CUSTOMERS, REPS
from web.access_log import AccessLog, install_bad_request_filter
from web.app import create_app

HARBOR = CUSTOMERS[0]
DIGITS = HARBOR.phone.lstrip("+")


async def test_logs_leave_out_numbers(
    tmp_path: Path, database_url: str, demo: None, caplog: pytest.LogCaptureFixture
) -> None:
    # INFO is what `touchline serve` logs unless run with --verbose; the
    # webhook handlers' own lines are DEBUG, and must be clean as well.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="telephony.webhooks")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path / "data", database_url, public_url=base)
    runner = web.AppRunner(
        create_app(settings, run_worker=False), access_log_class=AccessLog
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    good = call_status(
        new_sid("CA"), "ringing", 1, caller=REPS[0].phone, called=HARBOR.phone
    )
    bad = dict(good, SequenceNumber="soon")
    try:
        # unsafe=True: keep cookies from an IP address, as the loopback server is.
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            for params in (good, bad):
                signature = RequestValidator(AUTH_TOKEN).compute_signature(
                    base + "/twilio/voice/status", params
                )
                headers = {"X-Twilio-Signature": signature}
                async with session.post(
                    base + "/twilio/voice/status", data=params, headers=headers
                ):
                    pass
            async with session.post(base + "/twilio/voice/status", data=good):
                pass
            async with session.get(base + "/login") as form:
                token = csrf_of(await form.text())
            credentials = {
                "email": ADMIN_EMAIL,
                "password": PASSWORD,
                "csrf_token": token,
            }
            async with session.post(base + "/login", data=credentials) as logged_in:
                assert logged_in.status == 200
            async with session.get(
                base + "/customers", params={"q": HARBOR.phone}
            ) as page:
                assert page.status == 200
            forged = base + "/calls/x%0a2026-12-04%20ERROR%20forged"
            async with session.get(forged) as missing:
                assert missing.status == 404
            async with session.get(base + "/metrics") as response:
                metrics = await response.text()
    finally:
        await runner.cleanup()

    text = caplog.text
    assert "webhook /twilio/voice/status created" in text
    assert "GET '/customers' 200" in text
    assert DIGITS not in text
    assert AUTH_TOKEN not in text
    assert PASSWORD not in text
    assert "x\\n2026-12-04 ERROR forged" in text
    assert not any(line.startswith("2026-12-04 ERROR") for line in text.splitlines())
    series = 'touchline_webhooks_total{path="/twilio/voice/status",outcome="%s"} 1'
    for outcome in ("created", "invalid", "forbidden"):
        assert series % outcome in metrics.splitlines()
    assert DIGITS not in metrics


async def test_metrics_show_the_job_queue(client: TestClient[Any, Any]) -> None:
    call_sid = new_sid("CA")
    recording = recording_status(
        call_sid,
        new_sid("RE"),
        "completed",
        url="http://127.0.0.1:9/recording",
        duration=12,
    )
    stored = await post_signed(client, "/twilio/voice/recording", recording)

    response = await client.get("/metrics")
    lines = (await response.text()).splitlines()

    assert stored.status == 204
    assert 'touchline_jobs{kind="download_recording",status="queued"} 1' in lines
    ages = [
        line
        for line in lines
        if line.startswith('touchline_job_oldest_queued_seconds{kind="download')
    ]
    assert len(ages) == 1
    assert 0 <= float(ages[0].split()[-1]) < 60


async def test_malformed_request_logged_in_one_line(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    install_bad_request_filter()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = make_settings(tmp_path / "data", database_url, public_url=base)
    runner = web.AppRunner(
        create_app(settings, run_worker=False), access_log_class=AccessLog
    )
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    long_query = "/customers?q=" + DIGITS + "x" * 9000
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(base + long_query) as response,
        ):
            status = response.status
    finally:
        await runner.cleanup()

    assert status == 400
    assert "malformed HTTP request from 127.0.0.1 rejected: LineTooLong" in caplog.text
    assert DIGITS not in caplog.text
    assert "Traceback" not in caplog.text
