"""reports: the rollups of the dashboard and the summary, and the rollup job's cursors

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28 13:32:08.620227
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_cursors",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("events", sa.BigInteger(), nullable=False),
        sa.Column("horizon_id", sa.BigInteger(), nullable=True),
        sa.Column("horizon_waits", sa.Text(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_report_cursors")),
    )
    op.create_table(
        "report_account_balances",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=80), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("postings", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_report_account_balances_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("campaign_id", "account", name=op.f("pk_report_account_balances")),
    )
    op.create_table(
        "report_merchant_totals",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("jurisdiction", sa.String(length=16), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.Column("redeemed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("order_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("discount_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("payable_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("subsidy_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("big_ticket_subsidy_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("verified", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("verified_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected_payable_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected_discount_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected_subsidy_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refunds", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refund_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refund_subsidy_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refunded_full", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("new_spenders", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("new_merchants", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_report_merchant_totals_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("campaign_id", "merchant_id", name=op.f("pk_report_merchant_totals")),
    )
    with op.batch_alter_table("report_merchant_totals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_report_merchant_totals_campaign_jurisdiction", ["campaign_id", "jurisdiction"], unique=False
        )

    op.create_table(
        "report_participants",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_report_participants_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("campaign_id", "role", "person_id", name=op.f("pk_report_participants")),
    )
    op.create_table(
        "report_redemption_days",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("round_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("jurisdiction", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("merchant_class", sa.String(length=32), nullable=False),
        sa.Column("redeemed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("order_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("discount_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("payable_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("subsidy_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("big_ticket_subsidy_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("verified", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("verified_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected_payable_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected_discount_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("rejected_subsidy_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refunds", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refund_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refund_subsidy_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("refunded_full", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("new_spenders", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("new_merchants", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_report_redemption_days_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id",
            "day",
            "round_id",
            "batch_id",
            "jurisdiction",
            "category",
            "merchant_class",
            name=op.f("pk_report_redemption_days"),
        ),
    )
    op.create_table(
        "report_voucher_days",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("round_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("district", sa.String(length=16), nullable=False),
        sa.Column("issued", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("issued_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("restored", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("redeemed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("expired", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("expired_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("recycled", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("recycled_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("recovered", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("recovered_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("reversed", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("revoked", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("settled", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("held", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("held_fen", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("new_claimers", sa.BigInteger(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_report_voucher_days_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint(
            "campaign_id", "day", "round_id", "batch_id", "district", name=op.f("pk_report_voucher_days")
        ),
    )
    op.create_index(
        "ix_report_redemption_days_slice",
        "report_redemption_days",
        ["campaign_id", "jurisdiction", "category", "merchant_class", "day"],
    )
    op.create_index("ix_report_voucher_days_slice", "report_voucher_days", ["campaign_id", "district", "day"])


def downgrade() -> None:
    op.drop_index("ix_report_voucher_days_slice", table_name="report_voucher_days")
    op.drop_index("ix_report_redemption_days_slice", table_name="report_redemption_days")
    op.drop_table("report_voucher_days")
    op.drop_table("report_redemption_days")
    op.drop_table("report_participants")
    with op.batch_alter_table("report_merchant_totals", schema=None) as batch_op:
        batch_op.drop_index("ix_report_merchant_totals_campaign_jurisdiction")

    op.drop_table("report_merchant_totals")
    op.drop_table("report_account_balances")
    op.drop_table("report_cursors")
