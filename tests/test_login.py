"""Login, logout, lockout, session expiry, password change, CSRF and cookies."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import (
    ADMIN_EMAIL,
    PASSWORD,
    csrf_of,
    login,
    make_settings,
    post_signed,
    start_client,
    wrong_token,
)
from sqlalchemy import select
from twilio_params import call_status, new_sid
from yarl import URL

from capture.db import Database
from capture.demo_data import CUSTOMERS, REPS
from capture.errors import InvalidInput
from capture.models import AuditEvent, LoginThrottle
from capture.passwords import check_new_password
from web.app import create_app

ANA_EMAIL = "ana@demo.touchline.test"
WRONG = "email or password is wrong"


async def custom_client(
    aiohttp_client: Any, tmp_path: Path, database_url: str, **overrides: Any
) -> Any:
    settings = make_settings(tmp_path / "data", database_url, **overrides)
    return await start_client(aiohttp_client, create_app(settings, run_worker=False))


async def post_login(client: Any, email: str, password: str) -> Any:
    form = await client.get("/login")
    return await client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": csrf_of(await form.text()),
        },
        allow_redirects=False,
    )


async def audit_actions(database: Database) -> list[str]:
    async with database.reads() as session:
        rows = await session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        return [row.action for row in rows]


async def test_login_page_needs_login(client: Any) -> None:
    page = await client.get("/customers/1?x=1", allow_redirects=False)
    recording = await client.get("/recordings/RE1.wav", allow_redirects=False)
    api = await client.get("/api/v1/customers")
    health = await client.get("/healthz")

    assert page.status == 303
    target = URL(page.headers["Location"])
    assert target.path == "/login"
    assert target.query["next"] == "/customers/1?x=1"
    assert recording.status == 303
    assert api.status == 401
    assert api.content_type == "application/json"
    assert health.status == 200


async def test_login_then_logout(client: Any, database: Database) -> None:
    form = await client.get("/login?next=/reports/reps")
    token = csrf_of(await form.text())

    response = await client.post(
        "/login",
        data={
            "email": "  ANA@demo.touchline.test ",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "/reports/reps",
        },
        allow_redirects=False,
    )
    page = await client.get("/customers")
    csrf = csrf_of(await page.text())
    logout = await client.post(
        "/logout", data={"csrf_token": csrf}, allow_redirects=False
    )
    after = await client.get("/customers", allow_redirects=False)

    assert response.status == 303
    assert response.headers["Location"] == "/reports/reps"
    assert page.status == 200
    assert "Ana Ruiz" in await page.text()
    assert logout.status == 303
    assert after.status == 303
    assert await audit_actions(database) == ["login", "logout"]


@pytest.mark.parametrize("target", ["//evil.example/", "/\\evil.example", "https://x"])
async def test_login_next_stays_on_site(client: Any, target: str) -> None:
    form = await client.get("/login")

    response = await client.post(
        "/login",
        data={
            "email": ANA_EMAIL,
            "password": PASSWORD,
            "csrf_token": csrf_of(await form.text()),
            "next": target,
        },
        allow_redirects=False,
    )

    assert response.headers["Location"] == "/customers"


async def test_login_wrong_password_same_as_unknown(
    client: Any, database: Database
) -> None:
    wrong = await post_login(client, ANA_EMAIL, "not the password")
    unknown = await post_login(client, "nobody@demo.touchline.test", PASSWORD)
    missing = await post_login(client, ANA_EMAIL, "")

    assert wrong.status == 401
    assert unknown.status == 401
    assert WRONG in await wrong.text()
    assert WRONG in await unknown.text()
    assert missing.status == 400
    assert "password is missing" in await missing.text()
    assert await audit_actions(database) == ["login_failed", "login_failed"]


async def test_login_lockout_grows(
    aiohttp_client: Any, tmp_path: Path, database_url: str, demo: None
) -> None:
    client = await custom_client(
        aiohttp_client,
        tmp_path,
        database_url,
        login_max_failures=2,
        login_lockout_seconds=30,
    )

    first = await post_login(client, ANA_EMAIL, "wrong password 1")
    second = await post_login(client, ANA_EMAIL, "wrong password 2")
    correct = await post_login(client, ANA_EMAIL, PASSWORD)
    other = await post_login(client, ADMIN_EMAIL, PASSWORD)

    assert first.status == 401
    assert second.status == 429
    assert second.headers["Retry-After"] == "30"
    assert correct.status == 429
    assert "locked" in await correct.text()
    assert other.status == 303


async def test_login_lockout_doubles_after_expiry(
    client: Any, database: Database
) -> None:
    async def fail() -> Any:
        return await post_login(client, ANA_EMAIL, "wrong password")

    for _ in range(5):
        last = await fail()
    async with database.writes() as session, session.begin():
        throttle = (await session.scalars(select(LoginThrottle))).one()
        throttle.locked_until = None
    sixth = await fail()

    assert last.headers["Retry-After"] == "60"
    assert sixth.headers["Retry-After"] == "120"


async def test_login_lockout_unknown_email_same_answer(
    aiohttp_client: Any, tmp_path: Path, database_url: str, demo: None
) -> None:
    client = await custom_client(
        aiohttp_client, tmp_path, database_url, login_max_failures=1
    )

    known = await post_login(client, ANA_EMAIL, "wrong password")
    unknown = await post_login(client, "nobody@demo.touchline.test", "wrong")

    assert known.status == unknown.status == 429
    assert known.headers["Retry-After"] == unknown.headers["Retry-After"]


async def test_login_success_resets_failures(client: Any, database: Database) -> None:
    await post_login(client, ANA_EMAIL, "wrong password")

    response = await post_login(client, ANA_EMAIL, PASSWORD)

    async with database.reads() as session:
        rows = list(await session.scalars(select(LoginThrottle)))
    assert response.status == 303
    assert rows == []


async def test_session_idle_expiry(
    aiohttp_client: Any, tmp_path: Path, database_url: str, demo: None
) -> None:
    client = await custom_client(
        aiohttp_client, tmp_path, database_url, session_idle_seconds=1
    )
    await login(client, ANA_EMAIL)

    soon = await client.get("/customers", allow_redirects=False)
    await asyncio.sleep(1.3)
    late = await client.get("/customers", allow_redirects=False)

    assert soon.status == 200
    assert late.status == 303
    assert late.headers["Location"].startswith("/login")


async def test_session_absolute_expiry(
    aiohttp_client: Any, tmp_path: Path, database_url: str, demo: None
) -> None:
    client = await custom_client(
        aiohttp_client, tmp_path, database_url, session_max_seconds=2
    )
    await login(client, ANA_EMAIL)

    statuses = []
    for _ in range(5):
        await asyncio.sleep(0.6)
        response = await client.get("/customers", allow_redirects=False)
        statuses.append(response.status)

    assert statuses[0] == 200
    assert statuses[-1] == 303


async def test_session_cookie_flags(
    aiohttp_client: Any, tmp_path: Path, database_url: str, demo: None, client: Any
) -> None:
    plain = await custom_client(
        aiohttp_client, tmp_path, database_url, public_url="http://crm.example.test"
    )

    secure = (await client.get("/login")).headers["Set-Cookie"]
    insecure = (await plain.get("/login")).headers["Set-Cookie"]

    assert "touchline_session=" in secure
    assert "HttpOnly" in secure
    assert "SameSite=Lax" in secure
    assert "Secure" in secure
    assert "HttpOnly" in insecure
    assert "Secure" not in insecure


async def test_csrf_missing_or_wrong_rejected(client: Any, database: Database) -> None:
    await client.get("/login")
    no_token = await client.post(
        "/login", data={"email": ANA_EMAIL, "password": PASSWORD}
    )
    token = await login(client, ADMIN_EMAIL)
    wrong = await client.post(
        "/admin/users/2/deactivate", data={"csrf_token": wrong_token(token)}
    )
    header = await client.post(
        "/logout", headers={"X-CSRF-Token": "wrong"}, allow_redirects=False
    )
    still_in = await client.get("/customers", allow_redirects=False)
    right = await client.post(
        "/logout", headers={"X-CSRF-Token": token}, allow_redirects=False
    )

    assert no_token.status == 403
    assert "csrf_token" in await no_token.text()
    assert wrong.status == 403
    assert header.status == 403
    assert still_in.status == 200
    assert right.status == 303
    assert "user_deactivated" not in await audit_actions(database)


async def test_csrf_token_of_other_session_rejected(client: Any) -> None:
    stolen = await login(client, ANA_EMAIL)
    client.session.cookie_jar.clear()
    await login(client, ADMIN_EMAIL)

    response = await client.post("/logout", data={"csrf_token": stolen})

    assert response.status == 403


async def test_password_change(client: Any, database: Database) -> None:
    token = await login(client, ANA_EMAIL)
    new = "a brand new passphrase"

    wrong = await client.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current_password": "not it at all",
            "new_password": new,
            "confirm_password": new,
        },
    )
    short = await client.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current_password": PASSWORD,
            "new_password": "short",
            "confirm_password": "short",
        },
    )
    changed = await client.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current_password": PASSWORD,
            "new_password": new,
            "confirm_password": new,
        },
    )
    same_session = await client.get("/customers", allow_redirects=False)
    client.session.cookie_jar.clear()
    old = await post_login(client, ANA_EMAIL, PASSWORD)
    fresh = await post_login(client, ANA_EMAIL, new)

    assert wrong.status == 400
    assert "current_password is wrong" in await wrong.text()
    assert short.status == 400
    assert "new_password is shorter" in await short.text()
    assert changed.status == 200
    assert "Password changed" in await changed.text()
    assert same_session.status == 200
    assert old.status == 401
    assert fresh.status == 303
    assert "password_changed" in await audit_actions(database)


async def test_password_change_ends_other_sessions(client: Any) -> None:
    token = await login(client, ANA_EMAIL)
    other = client.session.cookie_jar.filter_cookies(client.make_url("/"))
    old_cookie = other["touchline_session"].value
    new = "a brand new passphrase"

    await client.post(
        "/account/password",
        data={
            "csrf_token": token,
            "current_password": PASSWORD,
            "new_password": new,
            "confirm_password": new,
        },
    )
    client.session.cookie_jar.update_cookies(
        {"touchline_session": old_cookie}, response_url=client.make_url("/")
    )
    response = await client.get("/customers", allow_redirects=False)

    assert response.status == 303


async def test_pages_security_headers(client: Any) -> None:
    await login(client, ANA_EMAIL)

    page = await client.get("/customers")
    public = await client.get("/healthz")

    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Cache-Control"] == "no-store"
    assert "Cache-Control" not in public.headers


async def test_machine_endpoints_start_no_session(client: Any) -> None:
    # A webhook, health check or metrics scrape must not get a session
    # cookie, because no client reads it and each one costs an encryption.
    params = call_status(
        new_sid("CA"), "ringing", 1, caller=REPS[0].phone, called=CUSTOMERS[0].phone
    )

    webhook = await post_signed(client, "/twilio/voice/status", params)
    health = await client.get("/healthz")
    metrics = await client.get("/metrics")
    api = await client.get("/api/v1/customers")

    assert webhook.status == 204
    assert (health.status, metrics.status, api.status) == (200, 200, 401)
    for response in (webhook, health, metrics, api):
        assert "Set-Cookie" not in response.headers
    assert not client.session.cookie_jar.filter_cookies(client.make_url("/"))


async def test_logout_ends_copied_session(client: Any) -> None:
    await login(client, ANA_EMAIL)
    cookies = client.session.cookie_jar.filter_cookies(client.make_url("/"))
    copied = {"Cookie": f"touchline_session={cookies['touchline_session'].value}"}
    page = await client.get("/account/password")

    # A client of its own, so only the copied cookie is sent.
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as other:
        url = client.make_url("/customers")
        before = await other.get(url, headers=copied, allow_redirects=False)
        await client.post("/logout", data={"csrf_token": csrf_of(await page.text())})
        after = await other.get(url, headers=copied, allow_redirects=False)

    assert before.status == 200
    assert after.status == 303
    assert after.headers["Location"].startswith("/login")


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "shorter than 10"),
        ("x" * 1025, "longer than 1024"),
        ("\x00" * 12, "control characters"),
        ("long enough\x07", "control characters"),
    ],
)
def test_new_password_rules(password: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as error:
        check_new_password(password)

    assert error.value.field == "password"


def test_new_password_accepts_any_language() -> None:
    check_new_password("这是一个足够长的中文密码句子")
