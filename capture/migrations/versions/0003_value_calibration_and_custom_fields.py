"""value calibration, milestones and custom fields

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 19:12:44.311321
"""

import sqlalchemy as sa
from alembic import op

import capture.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "custom_fields",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("choices", sa.Text(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", capture.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_fields")),
        sa.UniqueConstraint("key", name=op.f("uq_custom_fields_key")),
    )
    op.create_table(
        "custom_field_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("field_id", sa.Integer(), nullable=False),
        sa.Column("text_value", sa.Text(), nullable=False),
        sa.Column("number_value", sa.Numeric(precision=24, scale=6), nullable=True),
        sa.Column("date_value", sa.Date(), nullable=True),
        sa.Column("updated_at", capture.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_custom_field_values_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["field_id"],
            ["custom_fields.id"],
            name=op.f("fk_custom_field_values_field_id_custom_fields"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_custom_field_values")),
        sa.UniqueConstraint(
            "customer_id",
            "field_id",
            name=op.f("uq_custom_field_values_customer_id_field_id"),
        ),
    )
    with op.batch_alter_table("custom_field_values", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_custom_field_values_customer_id"),
            ["customer_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_custom_field_values_field_text",
            ["field_id", "text_value"],
            unique=False,
        )

    op.create_table(
        "customer_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("field", sa.String(length=80), nullable=False),
        sa.Column("old_value", sa.Text(), nullable=True),
        sa.Column("new_value", sa.Text(), nullable=True),
        sa.Column("changed_at", capture.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_changes_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_customer_changes_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_changes")),
    )
    with op.batch_alter_table("customer_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_customer_changes_customer_id"), ["customer_id"], unique=False
        )

    op.create_table(
        "milestones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", capture.models.UTCDateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", capture.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_milestones_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_milestones_user_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_milestones")),
    )
    with op.batch_alter_table("milestones", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_milestones_customer_id"), ["customer_id"], unique=False
        )

    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("judgement", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("deal_size", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("expected_sign_date", sa.Date(), nullable=True))
        batch_op.add_column(
            sa.Column("expected_amount_minor", sa.BigInteger(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("expected_currency", sa.String(length=3), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_column("expected_currency")
        batch_op.drop_column("expected_amount_minor")
        batch_op.drop_column("expected_sign_date")
        batch_op.drop_column("deal_size")
        batch_op.drop_column("judgement")

    with op.batch_alter_table("milestones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_milestones_customer_id"))

    op.drop_table("milestones")
    with op.batch_alter_table("customer_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_changes_customer_id"))

    op.drop_table("customer_changes")
    with op.batch_alter_table("custom_field_values", schema=None) as batch_op:
        batch_op.drop_index("ix_custom_field_values_field_text")
        batch_op.drop_index(batch_op.f("ix_custom_field_values_customer_id"))

    op.drop_table("custom_field_values")
    op.drop_table("custom_fields")
