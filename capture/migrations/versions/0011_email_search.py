"""email bodies in full-text search

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 00:30:00

Emails get `html_text`, the text rendering of HTML-only mail, filled here
for the emails already stored. Search covers an email's subject, text body
and `html_text`: on SQLite through `search_fts` entries with rowid code 2
(id * 8 + 2) kept in step by triggers, on PostgreSQL through a GIN index on
the same 'simple' vector expression as migration 0009's, with each CJK
character made a word of its own.
"""

import sqlalchemy as sa
from alembic import op

from capture.email_text import html_text_of

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Must match CJK_CHARACTER and the vector expression in transcripts/search.py.
CJK = r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])"
CODE = 2
ROWID = f"id * 8 + {CODE}"
# The indexed text; transcripts/search.py repeats it with the table name.
SQLITE_TEXT = (
    "{row}.subject || char(10) || {row}.text_body || char(10) || {row}.html_text"
)
POSTGRESQL_TEXT = "subject || ' ' || text_body || ' ' || html_text"
BATCH = 500

emails = sa.table(
    "emails",
    sa.column("id", sa.Integer),
    sa.column("text_body", sa.Text),
    sa.column("html_body", sa.Text),
    sa.column("html_text", sa.Text),
)


def upgrade() -> None:
    op.add_column(
        "emails",
        sa.Column("html_text", sa.Text(), nullable=False, server_default=""),
    )
    _fill_html_text()
    if op.get_bind().dialect.name == "sqlite":
        _create_sqlite_index()
    else:
        op.execute(
            "CREATE INDEX ix_emails_search ON emails USING gin "
            f"(to_tsvector('simple', regexp_replace({POSTGRESQL_TEXT}, '{CJK}', "
            "' \\1 ', 'g')))"
        )


def _fill_html_text() -> None:
    """Store the text rendering of every HTML-only email, in batches by id."""
    bind = op.get_bind()
    last_id = 0
    while True:
        rows = bind.execute(
            sa.select(emails.c.id, emails.c.text_body, emails.c.html_body)
            .where(emails.c.id > last_id, emails.c.html_body != "")
            .order_by(emails.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        for email_id, text_body, html_body in rows:
            rendered = html_text_of(text_body, html_body)
            if rendered:
                bind.execute(
                    sa.update(emails)
                    .where(emails.c.id == email_id)
                    .values(html_text=rendered)
                )
        last_id = rows[-1][0]


def _create_sqlite_index() -> None:
    new_text = SQLITE_TEXT.format(row="new")
    op.execute(
        "CREATE TRIGGER search_emails_insert AFTER INSERT ON emails BEGIN "
        f"INSERT INTO search_fts (rowid, body) VALUES (new.{ROWID}, {new_text}); END"
    )
    op.execute(
        "CREATE TRIGGER search_emails_delete AFTER DELETE ON emails BEGIN "
        f"DELETE FROM search_fts WHERE rowid = old.{ROWID}; END"
    )
    op.execute(
        "CREATE TRIGGER search_emails_update "
        "AFTER UPDATE OF subject, text_body, html_text ON emails BEGIN "
        f"UPDATE search_fts SET body = {new_text} WHERE rowid = old.{ROWID}; END"
    )
    op.execute(
        "INSERT INTO search_fts (rowid, body) "
        f"SELECT {ROWID}, {SQLITE_TEXT.format(row='emails')} FROM emails"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for event in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER search_emails_{event}")
        op.execute(f"DELETE FROM search_fts WHERE rowid % 8 = {CODE}")
    else:
        op.execute("DROP INDEX ix_emails_search")
    op.drop_column("emails", "html_text")
