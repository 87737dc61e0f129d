"""webhook ledger and message media

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 21:05:00.000000
"""

import sqlalchemy as sa
from alembic import op

import capture.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "message_media",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("media_url", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("file_path", sa.Text(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", capture.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", capture.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_message_media_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_media")),
        sa.UniqueConstraint(
            "message_id", "position", name=op.f("uq_message_media_message_id_position")
        ),
    )
    op.create_table(
        "webhook_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("received_at", capture.models.UTCDateTime(), nullable=False),
        sa.Column("path", sa.String(length=200), nullable=False),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("signature", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("sid", sa.String(length=64), nullable=True),
        sa.Column("activity_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("body_encoding", sa.String(length=8), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=True),
        sa.Column("replay_of", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["replay_of"],
            ["webhook_requests.id"],
            name=op.f("fk_webhook_requests_replay_of_webhook_requests"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_requests")),
    )
    problems = sa.text("outcome IN ('forbidden', 'invalid', 'failed')")
    op.create_index(
        "ix_webhook_requests_problems",
        "webhook_requests",
        ["outcome", "id"],
        unique=False,
        sqlite_where=problems,
        postgresql_where=problems,
    )
    op.create_index(
        "ix_webhook_requests_received",
        "webhook_requests",
        ["received_at"],
        unique=False,
    )
    replayed = sa.text("replay_of IS NOT NULL")
    op.create_index(
        "ix_webhook_requests_replay_of",
        "webhook_requests",
        ["replay_of"],
        unique=False,
        sqlite_where=replayed,
        postgresql_where=replayed,
    )
    op.create_index(
        "ix_webhook_requests_problem_sid",
        "webhook_requests",
        ["sid"],
        unique=False,
        sqlite_where=problems,
        postgresql_where=problems,
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_requests_problem_sid", table_name="webhook_requests")
    op.drop_index("ix_webhook_requests_replay_of", table_name="webhook_requests")
    op.drop_index("ix_webhook_requests_problems", table_name="webhook_requests")
    op.drop_index("ix_webhook_requests_received", table_name="webhook_requests")
    op.drop_table("webhook_requests")
    op.drop_table("message_media")
