"""call legs and missed calls

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 21:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

import capture.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_legs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("twilio_direction", sa.String(length=16), nullable=False),
        sa.Column("from_party", sa.String(length=320), nullable=False),
        sa.Column("to_party", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.Column("started_at", capture.models.UTCDateTime(), nullable=True),
        sa.Column("answered_at", capture.models.UTCDateTime(), nullable=True),
        sa.Column("ended_at", capture.models.UTCDateTime(), nullable=True),
        sa.Column("talk_seconds", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"],
            ["calls.id"],
            name=op.f("fk_call_legs_call_id_calls"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_legs")),
        sa.UniqueConstraint("call_sid", name=op.f("uq_call_legs_call_sid")),
    )
    with op.batch_alter_table("call_legs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_call_legs_call_id"), ["call_id"], unique=False
        )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("own_answered_at", capture.models.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("own_talk_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("leg_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "missed", sa.Boolean(), server_default=sa.text("false"), nullable=False
            )
        )
    # Calls stored so far have no legs, so their own values are the shown ones.
    # NOTE: child legs stored before this revision stay calls of their own,
    # each with its touch; only legs that arrive from now on join their parent.
    op.execute(
        "UPDATE calls SET own_answered_at = answered_at, "
        "own_talk_seconds = talk_seconds"
    )


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("missed")
        batch_op.drop_column("leg_count")
        batch_op.drop_column("own_talk_seconds")
        batch_op.drop_column("own_answered_at")
    with op.batch_alter_table("call_legs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_call_legs_call_id"))
    op.drop_table("call_legs")
