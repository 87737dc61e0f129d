"""Fixtures: every database test runs on SQLite and on PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (trust auth). Each test session
creates its own database, migrates it once and empties its tables before
every test; SQLite tests copy a migrated file.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import CookieJar, web
from aiohttp.test_utils import TestClient
from twilio.request_validator import RequestValidator
from yarl import URL

from capture import migrate
from capture.db import Database, transaction
from capture.demo import load_demo
from capture.models import Base
from capture.passwords import hash_password
from capture.settings import Settings, load_settings
from web.app import create_app

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PG_ADMIN_DSN = os.environ.get(
    "TOUCHLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"
)
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
ACCOUNT_SID = "AC" + "0" * 32
PUBLIC_URL = "https://crm.example.test"
SECRET_KEY = "s" * 40
# The password of every demo user in tests.
PASSWORD = "correct horse battery staple"
ADMIN_EMAIL = "ada@demo.touchline.test"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pg_dsn(database: str) -> str:
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    return f"{base}/{database}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "touchline.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    name = f"touchline_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _pg_dsn(name)
    migrate.upgrade(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate(url: str) -> None:
    tables = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "touchline.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    asyncio.run(_truncate(url))
    return url


def make_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": str(data_dir),
        "database_url": database_url,
        "public_url": PUBLIC_URL,
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "media_hosts": "127.0.0.1",
        "timezone": "America/Los_Angeles",
        "secret_key": SECRET_KEY,
        "transcribe_engine": "none",
        "whisper_model": "tiny.en",
    }
    values.update(overrides)
    return load_settings(environ={}, overrides=values)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path / "data", database_url)


@pytest.fixture
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = Database(settings.database_url)
    yield db
    await db.dispose()


@pytest.fixture(scope="session")
def password_hash() -> str:
    """The hash of PASSWORD, computed once: Argon2 takes about 0.1 s."""
    return hash_password(PASSWORD)


@pytest.fixture
async def demo(database: Database, settings: Settings, password_hash: str) -> None:
    async with transaction(database.writes) as session:
        await load_demo(session, settings.default_region, password_hash)


async def start_client(aiohttp_client: Any, app: web.Application) -> Any:
    """Serve `app` on loopback with a client that keeps Secure cookies.

    The tests' public_url is https, so session cookies are Secure. The jar
    treats the loopback server as a secure origin, as a browser treats the
    https site in front of a proxy.
    """
    port = free_port()
    jar = CookieJar(unsafe=True, treat_as_secure_origin=[f"http://127.0.0.1:{port}"])
    return await aiohttp_client(app, server_kwargs={"port": port}, cookie_jar=jar)


@pytest.fixture
async def client(
    aiohttp_client: Any, settings: Settings, demo: None
) -> TestClient[Any, Any]:
    return await start_client(aiohttp_client, create_app(settings, run_worker=False))


def wrong_token(token: str) -> str:
    """A CSRF token that differs from `token` in its first character."""
    return ("y" if token.startswith("x") else "x") + token[1:]


def csrf_of(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found is not None, "no CSRF token in the page"
    return found.group(1)


async def login(
    client: TestClient[Any, Any], email: str, password: str = PASSWORD
) -> str:
    """Log the client in through the login form; return the session's CSRF token."""
    form = await client.get("/login")
    response = await client.post(
        "/login",
        data={
            "email": email,
            "password": password,
            "csrf_token": csrf_of(await form.text()),
        },
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    page = await client.get("/account/password")
    return csrf_of(await page.text())


@pytest.fixture
async def as_admin(client: TestClient[Any, Any]) -> str:
    """Log `client` in as the demo admin; return the CSRF token."""
    return await login(client, ADMIN_EMAIL)


def sign(url: str, params: dict[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, params)


async def post_signed(
    client: TestClient[Any, Any],
    path: str,
    params: dict[str, str],
    *,
    signed_url: str | None = None,
    token: str = AUTH_TOKEN,
) -> Any:
    """POST a form to the server, signed as Twilio signs it."""
    url = signed_url if signed_url is not None else PUBLIC_URL + path
    headers = {"X-Twilio-Signature": sign(url, params, token)}
    # encoded=True sends the path and query byte for byte, as Twilio does;
    # otherwise yarl would decode %40 to @ and change what was signed.
    target = URL(str(client.make_url("/")).rstrip("/") + path, encoded=True)
    return await client.session.post(target, data=params, headers=headers)
