"""plan chain: closing reasons, suggested plans' sources, touches by plan

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:10:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("closed_reason", sa.Text(), server_default="", nullable=False)
        )
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source_activity_id", sa.Integer(), nullable=True)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_plans_source_activity_id_activities"),
            "activities",
            ["source_activity_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.create_index("ix_activities_plan_id", ["plan_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("activities", schema=None) as batch_op:
        batch_op.drop_index("ix_activities_plan_id")
    with op.batch_alter_table("plans", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_plans_source_activity_id_activities"), type_="foreignkey"
        )
        batch_op.drop_column("source_activity_id")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("closed_reason")
