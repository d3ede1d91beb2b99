"""settlement: runs, approvals, payout lines and their redemptions, bank confirmations, receivables and
their collections, clawbacks, recoveries

Revision ID: 0008
Revises: 0009
Create Date: 2026-11-28 13:12:16.133039
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0008"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "settlement_bank_imports",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("file_sha256", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("applied", sa.Integer(), nullable=False),
        sa.Column("reported", sa.Integer(), nullable=False),
        sa.Column("imported_by", sa.String(length=64), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_settlement_bank_imports_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_bank_imports")),
    )
    with op.batch_alter_table("settlement_bank_imports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_settlement_bank_imports_campaign_id"), ["campaign_id"], unique=False
        )

    op.create_table(
        "settlement_books",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("lag_days", sa.Integer(), nullable=False),
        sa.Column("dual_approval_above_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "dual_approval_above_fen > 0", name=op.f("ck_settlement_books_threshold_positive")
        ),
        sa.CheckConstraint("lag_days >= 0", name=op.f("ck_settlement_books_lag_not_negative")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_settlement_books_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_settlement_books")),
    )
    op.create_table(
        "settlement_runs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("prepared_by", sa.String(length=64), nullable=False),
        sa.Column("prepared_by_name", sa.String(length=64), nullable=False),
        sa.Column("prepared_at", UtcDateTime(), nullable=False),
        sa.Column("approvals_needed", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("redemptions", sa.Integer(), nullable=False),
        sa.Column("subsidy_fen", sa.BigInteger(), nullable=False),
        sa.Column("netted_fen", sa.BigInteger(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("held", sa.JSON(), nullable=False),
        sa.Column("approved_at", UtcDateTime(), nullable=True),
        sa.Column("file_sha256", sa.String(length=64), nullable=True),
        sa.Column("file_payouts", sa.Integer(), nullable=True),
        sa.Column("file_total_fen", sa.BigInteger(), nullable=True),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "status = 'prepared' OR approved_at IS NOT NULL",
            name=op.f("ck_settlement_runs_approval_recorded"),
        ),
        sa.CheckConstraint(
            "status IN ('prepared', 'approved', 'closed')", name=op.f("ck_settlement_runs_status_known")
        ),
        sa.CheckConstraint("approvals_needed IN (1, 2)", name=op.f("ck_settlement_runs_approvals_known")),
        sa.CheckConstraint(
            "total_fen >= 0 AND netted_fen >= 0 AND subsidy_fen = total_fen + netted_fen",
            name=op.f("ck_settlement_runs_totals"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_settlement_runs_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_runs")),
        sa.UniqueConstraint(
            "campaign_id", "business_day", name=op.f("uq_settlement_runs_campaign_id_business_day")
        ),
    )
    op.create_table(
        "settlement_approvals",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("approver", sa.String(length=64), nullable=False),
        sa.Column("approver_name", sa.String(length=64), nullable=False),
        sa.Column("approver_role", sa.String(length=32), nullable=False),
        sa.Column("prepared_by", sa.String(length=64), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("approver <> prepared_by", name=op.f("ck_settlement_approvals_maker_checker")),
        sa.ForeignKeyConstraint(
            ["run_id"], ["settlement_runs.id"], name=op.f("fk_settlement_approvals_run_id_settlement_runs")
        ),
        sa.PrimaryKeyConstraint("run_id", "approver", name=op.f("pk_settlement_approvals")),
    )
    op.create_table(
        "settlement_bank_confirmations",
        sa.Column("import_id", sa.String(length=32), nullable=False),
        sa.Column("row", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("bank_transaction_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("outcome", sa.String(length=24), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["settlement_bank_imports.id"],
            name=op.f("fk_settlement_bank_confirmations_import_id_settlement_bank_imports"),
        ),
        sa.PrimaryKeyConstraint("import_id", "row", name=op.f("pk_settlement_bank_confirmations")),
    )
    with op.batch_alter_table("settlement_bank_confirmations", schema=None) as batch_op:
        batch_op.create_index("ix_settlement_bank_confirmations_reference", ["reference"], unique=False)
        batch_op.create_index(batch_op.f("ix_settlement_bank_confirmations_run_id"), ["run_id"], unique=False)

    op.create_table(
        "settlement_lines",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("redemptions", sa.Integer(), nullable=False),
        sa.Column("subsidy_fen", sa.BigInteger(), nullable=False),
        sa.Column("retry_fen", sa.BigInteger(), nullable=False),
        sa.Column("netted_fen", sa.BigInteger(), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("credit_code", sa.String(length=18), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=False),
        sa.Column("bank_name", sa.String(length=100), nullable=False),
        sa.Column("account_masked", sa.String(length=40), nullable=False),
        sa.Column("account_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("bank_transaction_id", sa.String(length=64), nullable=True),
        sa.Column("bank_reason", sa.String(length=200), nullable=True),
        sa.Column("answered_at", UtcDateTime(), nullable=True),
        sa.Column("retried_in_run_id", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "status <> 'sent' OR amount_fen > 0", name=op.f("ck_settlement_lines_sent_is_positive")
        ),
        sa.CheckConstraint(
            "status IN ('prepared', 'sent', 'offset', 'paid', 'failed', 'frozen')",
            name=op.f("ck_settlement_lines_status_known"),
        ),
        sa.CheckConstraint(
            "subsidy_fen >= 0 AND netted_fen >= 0 AND netted_fen <= subsidy_fen AND amount_fen = subsidy_fen - netted_fen AND retry_fen >= 0",
            name=op.f("ck_settlement_lines_amounts_add_up"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_settlement_lines_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["settlement_runs.id"], name=op.f("fk_settlement_lines_run_id_settlement_runs")
        ),
        sa.PrimaryKeyConstraint("run_id", "merchant_id", name=op.f("pk_settlement_lines")),
        sa.UniqueConstraint("run_id", "seq", name=op.f("uq_settlement_lines_run_id_seq")),
    )
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.create_index("ix_settlement_lines_merchant_status", ["merchant_id", "status"], unique=False)

    op.create_table(
        "settlement_recoveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amounts", sa.JSON(), nullable=False),
        sa.Column("total_fen", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_by_name", sa.String(length=64), nullable=False),
        sa.Column("requested_at", UtcDateTime(), nullable=False),
        sa.Column("approved_by", sa.String(length=64), nullable=True),
        sa.Column("approved_by_name", sa.String(length=64), nullable=True),
        sa.Column("approved_at", UtcDateTime(), nullable=True),
        sa.Column("transaction_id", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "(status = 'approved') = (approved_by IS NOT NULL)",
            name=op.f("ck_settlement_recoveries_approval_recorded"),
        ),
        sa.CheckConstraint(
            "status IN ('requested', 'approved')", name=op.f("ck_settlement_recoveries_status_known")
        ),
        sa.CheckConstraint(
            "approved_by IS NULL OR approved_by <> requested_by",
            name=op.f("ck_settlement_recoveries_maker_checker"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_settlement_recoveries_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name=op.f("fk_settlement_recoveries_transaction_id_ledger_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_recoveries")),
        sa.UniqueConstraint("campaign_id", name=op.f("uq_settlement_recoveries_campaign_id")),
    )

    op.create_table(
        "settlement_clawbacks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("redemptions", sa.Integer(), nullable=False),
        sa.Column("clawed_back_fen", sa.BigInteger(), nullable=False),
        sa.Column("setoff_fen", sa.BigInteger(), nullable=False),
        sa.Column("outstanding_fen", sa.BigInteger(), nullable=False),
        sa.Column("frozen_fen", sa.BigInteger(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_settlement_clawbacks_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["merchant_events.id"],
            name=op.f("fk_settlement_clawbacks_event_id_merchant_events"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_settlement_clawbacks_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_clawbacks")),
        sa.UniqueConstraint("event_id", name=op.f("uq_settlement_clawbacks_event_id")),
    )
    with op.batch_alter_table("settlement_clawbacks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_settlement_clawbacks_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_settlement_clawbacks_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "settlement_items",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("redemption_id", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "merchant_id", "redemption_id", name=op.f("pk_settlement_items")),
    )
    op.create_table(
        "settlement_receivables",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("origin_id", sa.String(length=32), nullable=False),
        sa.Column("redemption_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("collected_fen", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "origin IN ('refund', 'clawback')", name=op.f("ck_settlement_receivables_origin_known")
        ),
        sa.CheckConstraint(
            "amount_fen > 0 AND collected_fen >= 0 AND collected_fen <= amount_fen",
            name=op.f("ck_settlement_receivables_collected_within"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_settlement_receivables_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_settlement_receivables_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_settlement_receivables_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["redemption_id"],
            ["redemptions.id"],
            name=op.f("fk_settlement_receivables_redemption_id_redemptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_receivables")),
        sa.UniqueConstraint("origin", "origin_id", name=op.f("uq_settlement_receivables_origin_origin_id")),
    )
    with op.batch_alter_table("settlement_receivables", schema=None) as batch_op:
        batch_op.create_index(
            "ix_settlement_receivables_merchant", ["merchant_id", "created_at"], unique=False
        )

    op.create_table(
        "settlement_collections",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("receivable_id", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_ref", sa.String(length=64), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("reversed", sa.Boolean(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "source IN ('line', 'clawback')", name=op.f("ck_settlement_collections_source_known")
        ),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_settlement_collections_amount_positive")),
        sa.ForeignKeyConstraint(
            ["receivable_id"],
            ["settlement_receivables.id"],
            name=op.f("fk_settlement_collections_receivable_id_settlement_receivables"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_settlement_collections")),
    )
    with op.batch_alter_table("settlement_collections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_settlement_collections_receivable_id"), ["receivable_id"], unique=False
        )
        batch_op.create_index("ix_settlement_collections_source", ["source", "source_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("settlement_collections", schema=None) as batch_op:
        batch_op.drop_index("ix_settlement_collections_source")
        batch_op.drop_index(batch_op.f("ix_settlement_collections_receivable_id"))

    op.drop_table("settlement_collections")
    with op.batch_alter_table("settlement_receivables", schema=None) as batch_op:
        batch_op.drop_index("ix_settlement_receivables_merchant")

    op.drop_table("settlement_receivables")
    op.drop_table("settlement_items")
    with op.batch_alter_table("settlement_clawbacks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_clawbacks_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_settlement_clawbacks_campaign_id"))

    op.drop_table("settlement_clawbacks")

    op.drop_table("settlement_recoveries")
    with op.batch_alter_table("settlement_lines", schema=None) as batch_op:
        batch_op.drop_index("ix_settlement_lines_merchant_status")

    op.drop_table("settlement_lines")
    with op.batch_alter_table("settlement_bank_confirmations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_bank_confirmations_run_id"))
        batch_op.drop_index("ix_settlement_bank_confirmations_reference")

    op.drop_table("settlement_bank_confirmations")
    op.drop_table("settlement_approvals")
    op.drop_table("settlement_runs")
    op.drop_table("settlement_books")
    with op.batch_alter_table("settlement_bank_imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_settlement_bank_imports_campaign_id"))

    op.drop_table("settlement_bank_imports")
