"""Apply the Alembic migrations shipped with the package."""

from __future__ import annotations

import logging
from pathlib import Path
from zoneinfo import ZoneInfo

from alembic import command
from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser treats % as interpolation; URLs may contain it.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(
    database_url: str, revision: str = "head", *, zone: ZoneInfo | None = None
) -> None:
    """Migrate the database to `revision`; blocking, so call it off the loop.

    With the organisation's time zone `zone`, also compute the kept report
    rows that a migration could not, because they need that zone.
    """
    command.upgrade(alembic_config(database_url), revision)
    log.info("database migrated to %s", revision)
    if zone is not None and revision == "head":
        _fill_report_rows(database_url, zone)


def _fill_report_rows(database_url: str, zone: ZoneInfo) -> None:
    from sqlalchemy.orm import Session

    from capture import firsts
    from capture.db import create_sync_engine

    engine = create_sync_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            rows = firsts.fill_if_missing(session, zone)
    finally:
        engine.dispose()
    if rows:
        log.info("customer first-touch rows computed after upgrade: %s", rows)
