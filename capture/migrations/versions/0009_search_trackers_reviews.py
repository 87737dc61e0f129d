"""transcript search, keyword trackers, call comments and reviews

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 21:15:00

SQLite gets an FTS5 table with the trigram tokenizer, kept in step with
transcript segments and SMS bodies by triggers. Its rowid packs the source
row's id and a source code (id * 8 + code), so that a trigger finds the
entry of a changed row by rowid. PostgreSQL gets GIN indexes on the
'simple' text search vector of the same columns, with each CJK character
made a word of its own so that phrase queries find Chinese words.
"""

import sqlalchemy as sa
from alembic import op

import capture.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Must match CJK_CHARACTER and the vector expression in transcripts/search.py.
CJK = r"([\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff])"
# (table, column, source code) of each searchable text.
SOURCES = [("transcript_segments", "text", 0), ("messages", "body", 1)]


def upgrade() -> None:
    _create_tables()
    if op.get_bind().dialect.name == "sqlite":
        _create_sqlite_index()
    else:
        _create_postgresql_indexes()


def _create_tables() -> None:
    op.create_table(
        "trackers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("phrases", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", capture.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_trackers_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trackers")),
        sa.UniqueConstraint("name", name=op.f("uq_trackers_name")),
    )
    op.create_table(
        "call_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("at_ms", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column("created_at", capture.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["users.id"],
            name=op.f("fk_call_comments_author_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_call_comments_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["call_comments.id"],
            name=op.f("fk_call_comments_parent_id_call_comments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plans.id"],
            name=op.f("fk_call_comments_plan_id_plans"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_comments")),
    )
    op.create_index(
        op.f("ix_call_comments_call_id"), "call_comments", ["call_id"], unique=False
    )
    op.create_table(
        "comment_mentions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("comment_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["comment_id"],
            ["call_comments.id"],
            name=op.f("fk_comment_mentions_comment_id_call_comments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_comment_mentions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_comment_mentions")),
        sa.UniqueConstraint(
            "comment_id", "user_id", name=op.f("uq_comment_mentions_comment_id_user_id")
        ),
    )
    op.create_index(
        op.f("ix_comment_mentions_user_id"),
        "comment_mentions",
        ["user_id"],
        unique=False,
    )
    op.create_table(
        "call_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reviewed_at", capture.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_call_reviews_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["reviewer_id"],
            ["users.id"],
            name=op.f("fk_call_reviews_reviewer_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_reviews")),
        sa.UniqueConstraint(
            "call_id", "reviewer_id", name=op.f("uq_call_reviews_call_id_reviewer_id")
        ),
    )


def _create_sqlite_index() -> None:
    op.execute("CREATE VIRTUAL TABLE search_fts USING fts5(body, tokenize='trigram')")
    for table, column, code in SOURCES:
        rowid = f"id * 8 + {code}"
        op.execute(
            f"CREATE TRIGGER search_{table}_insert AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO search_fts (rowid, body) VALUES (new.{rowid}, new.{column}); "
            "END"
        )
        op.execute(
            f"CREATE TRIGGER search_{table}_delete AFTER DELETE ON {table} BEGIN "
            f"DELETE FROM search_fts WHERE rowid = old.{rowid}; END"
        )
        op.execute(
            f"CREATE TRIGGER search_{table}_update AFTER UPDATE OF {column} ON {table} "
            f"BEGIN UPDATE search_fts SET body = new.{column} "
            f"WHERE rowid = old.{rowid}; END"
        )
        op.execute(
            f"INSERT INTO search_fts (rowid, body) "
            f"SELECT {rowid}, {column} FROM {table}"
        )


def _create_postgresql_indexes() -> None:
    for table, column, _ in SOURCES:
        op.execute(
            f"CREATE INDEX ix_{table}_search ON {table} USING gin "
            f"(to_tsvector('simple', regexp_replace({column}, '{CJK}', ' \\1 ', 'g')))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table, _, _ in SOURCES:
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER search_{table}_{event}")
        op.execute("DROP TABLE search_fts")
    else:
        for table, _, _ in SOURCES:
            op.execute(f"DROP INDEX ix_{table}_search")
    op.drop_table("call_reviews")
    op.drop_index(op.f("ix_comment_mentions_user_id"), table_name="comment_mentions")
    op.drop_table("comment_mentions")
    op.drop_index(op.f("ix_call_comments_call_id"), table_name="call_comments")
    op.drop_table("call_comments")
    op.drop_table("trackers")
