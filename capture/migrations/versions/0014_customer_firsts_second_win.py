"""customer firsts: second win, and first values in the won index

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 03:20:00

The KPI page counts a period's repeat buyers and first deals from
`ix_customer_firsts_won`. `second_won_at`, the first moment after the
first win with a deal won, tells whether a customer first won in a period
bought again in it. With it, the currency and the signed amount in the
index, those reads never visit the table. The column needs no time zone,
so the upgrade fills it from the won deals.
"""

import sqlalchemy as sa
from alembic import op

import capture.models

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

WON = ["first_won_at", "created_at", "cycle_days", "touches_to_win"]
SECOND_WIN = """
UPDATE customer_firsts SET second_won_at = (
  SELECT MIN(deals.won_at) FROM deals
  WHERE deals.customer_id = customer_firsts.customer_id
    AND deals.stage = 'won' AND deals.won_at > customer_firsts.first_won_at
)
WHERE first_won_at IS NOT NULL
"""


def upgrade() -> None:
    with op.batch_alter_table("customer_firsts") as batch_op:
        batch_op.add_column(
            sa.Column("second_won_at", capture.models.UTCDateTime(), nullable=True)
        )
    op.execute(SECOND_WIN)
    op.drop_index("ix_customer_firsts_won", table_name="customer_firsts")
    op.create_index(
        "ix_customer_firsts_won",
        "customer_firsts",
        [*WON, "currency", "signed_minor", "second_won_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_customer_firsts_won", table_name="customer_firsts")
    op.create_index("ix_customer_firsts_won", "customer_firsts", WON)
    with op.batch_alter_table("customer_firsts") as batch_op:
        batch_op.drop_column("second_won_at")
