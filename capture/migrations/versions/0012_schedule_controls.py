"""export schedules: rep filter, run time, weekday and pause

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 00:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Schedules stored so far ran at 01:00 local, weekly ones on Mondays.
    with op.batch_alter_table("export_schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rep_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "run_time", sa.String(length=5), server_default="01:00", nullable=False
            )
        )
        batch_op.add_column(
            sa.Column("weekday", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "paused", sa.Boolean(), server_default=sa.text("false"), nullable=False
            )
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_export_schedules_rep_id_users"),
            "users",
            ["rep_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("export_schedules", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_export_schedules_rep_id_users"), type_="foreignkey"
        )
        batch_op.drop_column("paused")
        batch_op.drop_column("weekday")
        batch_op.drop_column("run_time")
        batch_op.drop_column("rep_id")
