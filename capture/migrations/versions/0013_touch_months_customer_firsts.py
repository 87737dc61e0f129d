"""monthly touch counts, customer firsts and report indexes

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 00:30:00

The monthly counts are summed from the daily counts, whose days are
already in the organisation's time zone. The customer firsts start empty
because their cycle days need that time zone, which only the settings
hold: `migrate.upgrade` fills them when it is given the zone, as every
`touchline` command that migrates does.
"""

import sqlalchemy as sa
from alembic import op

import capture.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "touch_months",
        sa.Column("rep_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("touches", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("talk_seconds", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rep_id"],
            ["users.id"],
            name=op.f("fk_touch_months_rep_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "rep_id", "month", "channel", "direction", name=op.f("pk_touch_months")
        ),
    )
    op.create_index("ix_touch_months_month", "touch_months", ["month"])
    _fill_months()
    op.create_table(
        "customer_firsts",
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("created_at", capture.models.UTCDateTime(), nullable=True),
        sa.Column("first_touch_at", capture.models.UTCDateTime(), nullable=True),
        sa.Column("first_won_at", capture.models.UTCDateTime(), nullable=True),
        sa.Column("first_deal_id", sa.Integer(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("signed_minor", sa.BigInteger(), nullable=True),
        sa.Column("touches_to_win", sa.Integer(), nullable=True),
        sa.Column("cycle_days", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_firsts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", name=op.f("pk_customer_firsts")),
    )
    op.create_index(
        "ix_customer_firsts_won",
        "customer_firsts",
        ["first_won_at", "created_at", "cycle_days", "touches_to_win"],
    )
    op.create_index("ix_deals_won_at", "deals", ["won_at", "stage", "customer_id"])
    op.create_index("ix_deals_created_at", "deals", ["created_at"])
    op.create_index("ix_payments_received_at", "payments", ["received_at"])
    op.create_index("ix_customers_closed_at", "customers", ["closed_at"])


def _fill_months() -> None:
    if op.get_bind().dialect.name == "postgresql":
        month = "CAST(date_trunc('month', day) AS DATE)"
    else:
        # SQLite stores a Date as its ISO text, YYYY-MM-DD.
        month = "substr(day, 1, 8) || '01'"
    op.execute(
        "INSERT INTO touch_months"
        " (rep_id, month, channel, direction, touches, answered, talk_seconds)"
        f" SELECT rep_id, {month}, channel, direction,"
        " SUM(touches), SUM(answered), SUM(talk_seconds)"
        f" FROM touch_days GROUP BY rep_id, {month}, channel, direction"
    )


def downgrade() -> None:
    op.drop_index("ix_customers_closed_at", table_name="customers")
    op.drop_index("ix_payments_received_at", table_name="payments")
    op.drop_index("ix_deals_created_at", table_name="deals")
    op.drop_index("ix_deals_won_at", table_name="deals")
    op.drop_index("ix_customer_firsts_won", table_name="customer_firsts")
    op.drop_table("customer_firsts")
    op.drop_index("ix_touch_months_month", table_name="touch_months")
    op.drop_table("touch_months")
