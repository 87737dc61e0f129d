"""The `touchline` command, run as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import AUTH_TOKEN, SECRET_KEY, login
from test_api_export import EXPECTED_CSV, seed_export

from capture.settings import load_settings
from web.cli import _demo_settings

TOUCHLINE = str(Path(sys.executable).with_name("touchline"))


def environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHLINE_")}
    config = tmp_path / "touchline.toml"
    config.write_text("# every setting comes from the environment\n")
    env.update(
        {
            "TOUCHLINE_CONFIG": str(config),
            "TOUCHLINE_DATA_DIR": str(tmp_path / "data"),
            "TOUCHLINE_DATABASE_URL": database_url,
            "TOUCHLINE_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TOUCHLINE_SECRET_KEY": SECRET_KEY,
            "TOUCHLINE_TIMEZONE": "America/Los_Angeles",
            # No SMTP listener: servers started from tests would share its port.
            "TOUCHLINE_SMTP_PORT": "0",
        }
    )
    return env


def touchline(env: dict[str, str], *args: str, stdin: str = "") -> Any:
    return subprocess.run(
        [TOUCHLINE, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_missing_setting_names_key(tmp_path: Path) -> None:
    env = environment(tmp_path, f"sqlite:///{tmp_path / 'x.db'}")
    del env["TOUCHLINE_TWILIO_AUTH_TOKEN"]

    result = touchline(env, "db", "upgrade")

    assert result.returncode == 2
    assert "twilio_auth_token" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_users_and_tokens(tmp_path: Path, database_url: str) -> None:
    env = environment(tmp_path, database_url)

    added = touchline(
        env,
        "users",
        "add",
        "--email",
        "Zoe@Example.com",
        "--name",
        "Zoe Park",
        "--role",
        "rep",
        "--phone",
        "(415) 555-0150",
        "--team",
        "North",
        "--password-stdin",
        stdin="correct horse battery staple\n",
    )
    again = touchline(
        env,
        "users",
        "add",
        "--email",
        "zoe@example.com",
        "--name",
        "Zoe Again",
        "--role",
        "rep",
        "--password-stdin",
        stdin="another long password\n",
    )
    token = touchline(env, "tokens", "create", "--user", "zoe@example.com")
    unknown = touchline(env, "tokens", "create", "--user", "nobody@example.com")

    assert added.returncode == 0, added.stderr
    assert "zoe@example.com" in added.stdout
    assert again.returncode == 1
    assert "exists" in again.stderr
    assert token.returncode == 0, token.stderr
    assert token.stdout.startswith("tl_")
    assert unknown.returncode == 1
    assert "nobody@example.com" in unknown.stderr


async def test_cli_export_matches_api_bytes(
    client: Any, database: Any, tmp_path: Path, database_url: str
) -> None:
    await seed_export(client, database)
    env = environment(tmp_path, database_url)
    output = tmp_path / "activities.csv"

    result = touchline(
        env,
        "export",
        "activities",
        "--from",
        "2026-11-30",
        "--to",
        "2026-12-01",
        "-o",
        str(output),
    )

    assert result.returncode == 0, result.stderr
    assert "3 activities exported" in result.stderr
    assert output.read_bytes() == EXPECTED_CSV


def test_cli_export_bad_date_named(tmp_path: Path, database_url: str) -> None:
    env = environment(tmp_path, database_url)

    result = touchline(
        env, "export", "activities", "--from", "yesterday", "--to", "2026-12-01"
    )

    assert result.returncode == 1
    assert "from" in result.stderr
    assert "yesterday" in result.stderr


async def test_cli_tokens_list_and_revoke(
    client: Any, database: Any, tmp_path: Path, database_url: str
) -> None:
    env = environment(tmp_path, database_url)
    email = "mia@demo.touchline.test"
    secret = touchline(
        env, "tokens", "create", "--user", email, "--label", "nightly export"
    ).stdout.strip()
    bearer = {"Authorization": f"Bearer {secret}"}
    before = await client.get("/api/v1/customers", headers=bearer)

    listed = touchline(env, "tokens", "list", "--user", email)
    token_id = listed.stdout.splitlines()[1].split("\t")[0]
    revoked = touchline(env, "tokens", "revoke", "--id", token_id)
    relisted = touchline(env, "tokens", "list", "--user", email)
    after = await client.get("/api/v1/customers", headers=bearer)
    unknown = touchline(env, "tokens", "revoke", "--id", "999")

    assert before.status == 200
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout
    assert secret[:8] + "..." in listed.stdout
    assert "nightly export" in listed.stdout
    assert revoked.returncode == 0, revoked.stderr
    assert f"token {token_id} revoked" in revoked.stdout
    assert "\t-\t" not in relisted.stdout.splitlines()[1]
    assert after.status == 401
    assert unknown.returncode == 1
    assert "999" in unknown.stderr


async def test_cli_revoke_by_secret(
    client: Any, database: Any, tmp_path: Path, database_url: str
) -> None:
    env = environment(tmp_path, database_url)
    secret = touchline(
        env, "tokens", "create", "--user", "ana@demo.touchline.test"
    ).stdout.strip()

    revoked = touchline(env, "tokens", "revoke", "--token-stdin", stdin=secret + "\n")
    response = await client.get(
        "/api/v1/customers", headers={"Authorization": f"Bearer {secret}"}
    )

    assert revoked.returncode == 0, revoked.stderr
    assert secret not in revoked.stdout + revoked.stderr
    assert response.status == 401


async def test_cli_user_password_logs_in(
    client: Any, tmp_path: Path, database_url: str
) -> None:
    env = environment(tmp_path, database_url)
    short = touchline(
        env,
        *("users", "add", "--email", "kim@example.com", "--name", "Kim"),
        *("--role", "ops", "--password-stdin"),
        stdin="short\n",
    )
    added = touchline(
        env,
        *("users", "add", "--email", "kim@example.com", "--name", "Kim"),
        *("--role", "ops", "--password-stdin"),
        stdin="kim's long password\n",
    )

    token = await login(client, "kim@example.com", "kim's long password")

    assert short.returncode == 1
    assert "password is shorter than 10 characters" in short.stderr
    assert added.returncode == 0, added.stderr
    assert token


@pytest.mark.parametrize(
    ("public_url", "port", "expected"),
    [
        ("http://127.0.0.1:8080", 18080, "http://127.0.0.1:18080"),
        ("http://localhost:8080", 8081, "http://localhost:8081"),
        ("http://127.0.0.1:8080", 8080, "http://127.0.0.1:8080"),
        ("https://crm.example.test", 18080, "https://crm.example.test"),
    ],
)
def test_demo_signs_for_served_port(public_url: str, port: int, expected: str) -> None:
    settings = load_settings(
        environ={},
        overrides={
            "public_url": public_url,
            "twilio_auth_token": "x",
            "secret_key": "k" * 40,
        },
    )

    assert _demo_settings(settings, port).public_url == expected


@pytest.mark.parametrize("team", ["99", "99999999999999999999"])
@pytest.mark.parametrize("report", ["summary", "kpis", "calls"])
def test_cli_export_unknown_team_named(
    tmp_path: Path, database_url: str, report: str, team: str
) -> None:
    env = environment(tmp_path, database_url)

    result = touchline(env, "export", report, "--team", team)

    assert result.returncode == 1
    assert f"team {team} not found" in result.stderr
    assert "Traceback" not in result.stderr
