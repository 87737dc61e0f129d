"""Settings an admin can change while the service runs.

Most settings need a restart (database, URLs, ports, engines). The keys in
`RUNTIME_KEYS` are read on each request instead: an admin changes them on
the settings page, the value is stored in `runtime_settings`, and it
overrides the file and the environment until it is reset. Each value is
checked by the same rules as in the file.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from capture.errors import InvalidInput
from capture.models import RuntimeSetting, utcnow
from capture.settings import SETTINGS, Setting, Settings

RUNTIME_KEYS = (
    "session_idle_seconds",
    "session_max_seconds",
    "login_max_failures",
    "login_lockout_seconds",
    "currency",
    "retention_days",
    "working_hours",
    "evening_hours",
    "week_start",
)
# Shown as set or not set, never as their value.
SECRET_KEYS = frozenset({"twilio_auth_token", "secret_key", "twilio_shared_keys"})
DECLARED: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


def parse_value(key: str, raw: str) -> Any:
    """Check a value typed on the page by the setting's own rules."""
    if key not in RUNTIME_KEYS:
        raise InvalidInput(f"{key} cannot be changed while the service runs", key)
    text = raw.strip()
    if not text:
        raise InvalidInput(f"{key} is empty", key)
    try:
        return DECLARED[key].parse(text)
    except (ValueError, TypeError) as error:
        raise InvalidInput(f"{key}: {error}", key) from None


async def overrides(session: AsyncSession) -> dict[str, Any]:
    """Return the stored values, parsed; one the rules now reject is skipped."""
    rows = (await session.scalars(select(RuntimeSetting))).all()
    found = {}
    for row in rows:
        if row.key not in RUNTIME_KEYS:
            continue
        try:
            found[row.key] = DECLARED[row.key].parse(json.loads(row.value))
        except (ValueError, TypeError):
            continue
    return found


async def set_value(
    session: AsyncSession, key: str, raw: str, *, user_id: int | None
) -> Any:
    value = parse_value(key, raw)
    row = await session.get(RuntimeSetting, key)
    if row is None:
        row = RuntimeSetting(key=key)
        session.add(row)
    row.value = json.dumps(value)
    row.updated_by = user_id
    row.updated_at = utcnow()
    await session.flush()
    return value


async def reset_value(session: AsyncSession, key: str) -> None:
    if key not in RUNTIME_KEYS:
        raise InvalidInput(f"{key} cannot be changed while the service runs", key)
    await session.execute(delete(RuntimeSetting).where(RuntimeSetting.key == key))


def effective(base: Settings, changed: dict[str, Any]) -> Settings:
    """Return the settings with the stored values in place of the file's."""
    if not changed:
        return base
    source = dict(base.source)
    source.update({key: "settings page" for key in changed})
    return dataclasses.replace(base, **changed, source=source)


def display_value(settings: Settings, key: str) -> str:
    value = getattr(settings, key)
    if key in SECRET_KEYS:
        return "(set)" if value else "(not set)"
    if key == "database_url":
        return _without_password(str(value))
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value)
    return str(value)


def _without_password(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
