"""touch days: per-rep daily touch counts for reports

Revision ID: 0010
Revises: 0004
Create Date: 2026-12-04 21:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0004"
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


def downgrade() -> None:
    op.drop_table("touch_days")
