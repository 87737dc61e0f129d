"""monthly touch counts in the per-rep summary's columns

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 06:30:00

A month of the per-rep summary read about eight rows per rep, one per
channel and direction, and split them into the summary's columns in SQL.
The monthly counts now hold one row per rep and month with those columns,
summed from the daily counts as before. The indexes that the summary reads
by time (customers created, deals won or opened, payments received) now
also hold the columns it sums, so it reads those rows from the index.
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# The month columns that count a (channel, direction) of the daily counts;
# the same split as `capture.rollups.MONTH_COLUMNS`, frozen here.
SPLIT = {
    "calls_made": (("call",), "outbound"),
    "calls_received": (("call",), "inbound"),
    "sms_sent": (("sms", "mms"), "outbound"),
    "sms_received": (("sms", "mms"), "inbound"),
    "emails_sent": (("email",), "outbound"),
    "emails_received": (("email",), "inbound"),
}


# Index name: table and columns, after the upgrade and before it.
COVERING = {
    "ix_customers_created_at": ("customers", ["created_at", "owner_id"]),
    "ix_deals_won_at": (
        "deals",
        ["won_at", "stage", "customer_id", "owner_id", "currency", "signed_minor"],
    ),
    "ix_deals_created_at": (
        "deals",
        ["created_at", "owner_id", "currency", "expected_minor"],
    ),
    "ix_payments_received_at": (
        "payments",
        ["received_at", "deal_id", "currency", "amount_minor"],
    ),
}
NARROW = {
    "ix_customers_created_at": ("customers", ["created_at"]),
    "ix_deals_won_at": ("deals", ["won_at", "stage", "customer_id"]),
    "ix_deals_created_at": ("deals", ["created_at"]),
    "ix_payments_received_at": ("payments", ["received_at"]),
}


def _indexes(indexes: dict[str, tuple[str, list[str]]]) -> None:
    for name, (table, columns) in indexes.items():
        op.drop_index(name, table_name=table)
        op.create_index(name, table, columns)


def _month_of_day() -> str:
    if op.get_bind().dialect.name == "postgresql":
        return "CAST(date_trunc('month', day) AS DATE)"
    # SQLite stores a Date as its ISO text, YYYY-MM-DD.
    return "substr(day, 1, 8) || '01'"


def _create(columns: list[sa.Column], key: list[str]) -> None:
    op.create_table(
        "touch_months",
        sa.Column("rep_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        *columns,
        sa.ForeignKeyConstraint(
            ["rep_id"],
            ["users.id"],
            name=op.f("fk_touch_months_rep_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_touch_months")),
    )
    op.create_index("ix_touch_months_month", "touch_months", ["month"])


def _drop() -> None:
    op.drop_index("ix_touch_months_month", table_name="touch_months")
    op.drop_table("touch_months")


def upgrade() -> None:
    _drop()
    counts = ["touches", *SPLIT, "answered"]
    _create(
        [sa.Column(name, sa.Integer(), nullable=False) for name in counts]
        + [sa.Column("talk_seconds", sa.BigInteger(), nullable=False)],
        ["rep_id", "month"],
    )
    month = _month_of_day()
    split = [
        "SUM(CASE WHEN channel IN ({}) AND direction = '{}'"
        " THEN touches ELSE 0 END)".format(
            ", ".join(f"'{channel}'" for channel in channels), direction
        )
        for channels, direction in SPLIT.values()
    ]
    op.execute(
        "INSERT INTO touch_months"
        f" (rep_id, month, {', '.join(counts)}, talk_seconds)"
        f" SELECT rep_id, {month}, SUM(touches), {', '.join(split)},"
        " SUM(answered), SUM(talk_seconds)"
        f" FROM touch_days GROUP BY rep_id, {month}"
    )
    _indexes(COVERING)


def downgrade() -> None:
    _indexes(NARROW)
    _drop()
    _create(
        [
            sa.Column("channel", sa.String(length=16), nullable=False),
            sa.Column("direction", sa.String(length=8), nullable=False),
            sa.Column("touches", sa.Integer(), nullable=False),
            sa.Column("answered", sa.Integer(), nullable=False),
            sa.Column("talk_seconds", sa.BigInteger(), nullable=False),
        ],
        ["rep_id", "month", "channel", "direction"],
    )
    month = _month_of_day()
    op.execute(
        "INSERT INTO touch_months"
        " (rep_id, month, channel, direction, touches, answered, talk_seconds)"
        f" SELECT rep_id, {month}, channel, direction,"
        " SUM(touches), SUM(answered), SUM(talk_seconds)"
        f" FROM touch_days GROUP BY rep_id, {month}, channel, direction"
    )
