"""touch days and export schedules for reports

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 21:45:00
"""

import sqlalchemy as sa
from alembic import op

import capture.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "touch_days",
        sa.Column("rep_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("touches", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("talk_seconds", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rep_id"],
            ["users.id"],
            name=op.f("fk_touch_days_rep_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "rep_id", "day", "channel", "direction", name=op.f("pk_touch_days")
        ),
    )

    op.create_index("ix_touch_days_day", "touch_days", ["day"])
    op.create_index("ix_customers_created_at", "customers", ["created_at"])
    op.create_table(
        "export_schedules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report", sa.String(length=16), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("frequency", sa.String(length=8), nullable=False),
        sa.Column("destination", sa.String(length=8), nullable=False),
        sa.Column("target", sa.String(length=320), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("created_at", capture.models.UTCDateTime(), nullable=False),
        sa.Column("next_run_at", capture.models.UTCDateTime(), nullable=False),
        sa.Column("last_run_at", capture.models.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_export_schedules_created_by_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
            name=op.f("fk_export_schedules_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_schedules")),
    )
    op.create_index("ix_export_schedules_next_run", "export_schedules", ["next_run_at"])


def downgrade() -> None:
    op.drop_index("ix_export_schedules_next_run", table_name="export_schedules")
    op.drop_table("export_schedules")
    op.drop_index("ix_customers_created_at", table_name="customers")
    op.drop_index("ix_touch_days_day", table_name="touch_days")
    op.drop_table("touch_days")
