"""redemptions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 12:17:39.937644
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merchant_day_counters",
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("redeemed", sa.Integer(), nullable=False),
        sa.CheckConstraint("redeemed >= 0", name=op.f("ck_merchant_day_counters_redeemed_not_negative")),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_merchant_day_counters_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_merchant_day_counters_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", "batch_id", "day", name=op.f("pk_merchant_day_counters")),
    )
    op.create_table(
        "redemptions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("voucher_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("terminal_id", sa.String(length=32), nullable=False),
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("jurisdiction", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("order_fen", sa.BigInteger(), nullable=False),
        sa.Column("merchant_discount_fen", sa.BigInteger(), nullable=False),
        sa.Column("voucher_value_fen", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_fen", sa.BigInteger(), nullable=False),
        sa.Column("refunded_fen", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_returned_fen", sa.BigInteger(), nullable=False),
        sa.Column("order_ref", sa.String(length=64), nullable=True),
        sa.Column("sales_invoice_no", sa.String(length=32), nullable=True),
        sa.Column("sales_invoice_fen", sa.BigInteger(), nullable=True),
        sa.Column("tax_invoice_no", sa.String(length=32), nullable=True),
        sa.Column("redeemed_at", UtcDateTime(), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("verified_at", UtcDateTime(), nullable=True),
        sa.Column("verified_by", sa.String(length=64), nullable=True),
        sa.Column("verification_note", sa.Text(), nullable=True),
        sa.Column("settlement_id", sa.String(length=32), nullable=True),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending_verification', 'confirmed', 'settled', 'refunded', 'rejected', 'clawed_back')",
            name=op.f("ck_redemptions_status_known"),
        ),
        sa.CheckConstraint(
            "(sales_invoice_no IS NULL) = (sales_invoice_fen IS NULL)",
            name=op.f("ck_redemptions_sales_invoice_complete"),
        ),
        sa.CheckConstraint(
            "merchant_discount_fen >= 0 AND merchant_discount_fen < order_fen",
            name=op.f("ck_redemptions_discount_within"),
        ),
        sa.CheckConstraint("order_fen > 0", name=op.f("ck_redemptions_order_positive")),
        sa.CheckConstraint(
            "refunded_fen >= 0 AND refunded_fen <= order_fen - merchant_discount_fen",
            name=op.f("ck_redemptions_refund_within_paid"),
        ),
        sa.CheckConstraint(
            "subsidy_fen > 0 AND subsidy_fen <= voucher_value_fen AND subsidy_fen <= order_fen - merchant_discount_fen",
            name=op.f("ck_redemptions_subsidy_within"),
        ),
        sa.CheckConstraint(
            "subsidy_returned_fen >= 0 AND subsidy_returned_fen <= subsidy_fen",
            name=op.f("ck_redemptions_subsidy_returned_within"),
        ),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_redemptions_batch_id_batches")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_redemptions_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_redemptions_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name=op.f("fk_redemptions_person_id_persons")),
        sa.ForeignKeyConstraint(
            ["voucher_id"], ["vouchers.id"], name=op.f("fk_redemptions_voucher_id_vouchers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redemptions")),
    )
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.create_index("ix_redemptions_campaign_status", ["campaign_id", "status"], unique=False)
        batch_op.create_index("ix_redemptions_merchant_day", ["merchant_id", "business_day"], unique=False)
        batch_op.create_index(batch_op.f("ix_redemptions_person_id"), ["person_id"], unique=False)
        batch_op.create_index(
            "uq_redemptions_order",
            ["merchant_id", "order_ref"],
            unique=True,
            sqlite_where=sa.text(
                "order_ref IS NOT NULL AND status IN ('clawed_back', 'confirmed', 'pending_verification', 'settled')"
            ),
            postgresql_where=sa.text(
                "order_ref IS NOT NULL AND status IN ('clawed_back', 'confirmed', 'pending_verification', 'settled')"
            ),
        )
        batch_op.create_index(
            "uq_redemptions_sales_invoice",
            ["campaign_id", "sales_invoice_no"],
            unique=True,
            sqlite_where=sa.text("sales_invoice_no IS NOT NULL AND status <> 'rejected'"),
            postgresql_where=sa.text("sales_invoice_no IS NOT NULL AND status <> 'rejected'"),
        )
        batch_op.create_index(
            "uq_redemptions_tax_invoice",
            ["campaign_id", "tax_invoice_no"],
            unique=True,
            sqlite_where=sa.text("tax_invoice_no IS NOT NULL AND status <> 'rejected'"),
            postgresql_where=sa.text("tax_invoice_no IS NOT NULL AND status <> 'rejected'"),
        )
        batch_op.create_index(
            "uq_redemptions_voucher_holding",
            ["voucher_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('clawed_back', 'confirmed', 'pending_verification', 'settled')"),
            postgresql_where=sa.text(
                "status IN ('clawed_back', 'confirmed', 'pending_verification', 'settled')"
            ),
        )

    op.create_table(
        "redemption_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("redemption_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_fen", sa.BigInteger(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('redeemed', 'verified', 'rejected', 'refunded')",
            name=op.f("ck_redemption_events_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_redemption_events_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["redemption_id"], ["redemptions.id"], name=op.f("fk_redemption_events_redemption_id_redemptions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redemption_events")),
    )
    with op.batch_alter_table("redemption_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_redemption_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_redemption_events_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_redemption_events_redemption_id"), ["redemption_id"], unique=False
        )

    op.create_table(
        "refunds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("redemption_id", sa.String(length=32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("subsidy_returned_fen", sa.BigInteger(), nullable=False),
        sa.Column("resident_refund_fen", sa.BigInteger(), nullable=False),
        sa.Column("voucher_restored", sa.Boolean(), nullable=False),
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("refunded_at", UtcDateTime(), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_refunds_amount_positive")),
        sa.CheckConstraint(
            "resident_refund_fen = amount_fen - subsidy_returned_fen", name=op.f("ck_refunds_parts_add_up")
        ),
        sa.CheckConstraint(
            "subsidy_returned_fen >= 0 AND subsidy_returned_fen <= amount_fen",
            name=op.f("ck_refunds_subsidy_within"),
        ),
        sa.ForeignKeyConstraint(
            ["redemption_id"], ["redemptions.id"], name=op.f("fk_refunds_redemption_id_redemptions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refunds")),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refunds_redemption_id"), ["redemption_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refunds_redemption_id"))

    op.drop_table("refunds")
    with op.batch_alter_table("redemption_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_redemption_events_redemption_id"))
        batch_op.drop_index(batch_op.f("ix_redemption_events_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_redemption_events_at"))

    op.drop_table("redemption_events")
    with op.batch_alter_table("redemptions", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_redemptions_voucher_holding",
            sqlite_where=sa.text("status IN ('clawed_back', 'confirmed', 'pending_verification', 'settled')"),
            postgresql_where=sa.text(
                "status IN ('clawed_back', 'confirmed', 'pending_verification', 'settled')"
            ),
        )
        batch_op.drop_index(
            "uq_redemptions_tax_invoice",
            sqlite_where=sa.text("tax_invoice_no IS NOT NULL AND status <> 'rejected'"),
            postgresql_where=sa.text("tax_invoice_no IS NOT NULL AND status <> 'rejected'"),
        )
        batch_op.drop_index(
            "uq_redemptions_sales_invoice",
            sqlite_where=sa.text("sales_invoice_no IS NOT NULL AND status <> 'rejected'"),
            postgresql_where=sa.text("sales_invoice_no IS NOT NULL AND status <> 'rejected'"),
        )
        batch_op.drop_index(
            "uq_redemptions_order",
            sqlite_where=sa.text(
                "order_ref IS NOT NULL AND status IN ('clawed_back', 'confirmed', 'pending_verification', 'settled')"
            ),
            postgresql_where=sa.text(
                "order_ref IS NOT NULL AND status IN ('clawed_back', 'confirmed', 'pending_verification', 'settled')"
            ),
        )
        batch_op.drop_index(batch_op.f("ix_redemptions_person_id"))
        batch_op.drop_index("ix_redemptions_merchant_day")
        batch_op.drop_index("ix_redemptions_campaign_status")

    op.drop_table("redemptions")
    op.drop_table("merchant_day_counters")
