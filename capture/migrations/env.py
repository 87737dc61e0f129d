"""Alembic environment: runs migrations over the async engine of the URL."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from capture.db import create_engine
from capture.models import Base

config = context.config

# Full-text search objects that migrations create by hand, outside the
# models: SQLite's FTS5 table with its shadow tables, and PostgreSQL's GIN
# expression indexes. Autogenerate and `alembic check` leave them alone.
SEARCH_OBJECTS = (
    "search_fts",
    "ix_transcript_segments_search",
    "ix_messages_search",
    "ix_emails_search",
)


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    return not (name or "").startswith(SEARCH_OBJECTS)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run touchline db upgrade")
asyncio.run(_run_async())
