"""foundation: campaigns, funders, batches, rounds

Revision ID: 0001
Revises:
Create Date: 2026-11-28 01:52:34.471708
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("ends_on", sa.Date(), nullable=False),
        sa.Column("budget_fen", sa.BigInteger(), nullable=False),
        sa.Column("per_person_total", sa.Integer(), nullable=True),
        sa.Column("per_person_per_category", sa.JSON(), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("loaded_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("budget_fen > 0", name=op.f("ck_campaigns_budget_positive")),
        sa.CheckConstraint("ends_on >= starts_on", name=op.f("ck_campaigns_period_ordered")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_campaigns")),
        sa.UniqueConstraint("code", name=op.f("uq_campaigns_code")),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("issuer", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("face_value_fen", sa.BigInteger(), nullable=True),
        sa.Column("threshold_fen", sa.BigInteger(), nullable=False),
        sa.Column("percent_bp", sa.Integer(), nullable=True),
        sa.Column("cap_fen", sa.BigInteger(), nullable=True),
        sa.Column("max_value_fen", sa.BigInteger(), nullable=False),
        sa.Column("tiers", sa.JSON(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("jurisdictions", sa.JSON(), nullable=False),
        sa.Column("merchant_classes", sa.JSON(), nullable=False),
        sa.Column("per_person_per_round", sa.Integer(), nullable=False),
        sa.Column("per_person_total", sa.Integer(), nullable=True),
        sa.Column("per_merchant_daily", sa.Integer(), nullable=True),
        sa.Column("validity_kind", sa.String(length=24), nullable=False),
        sa.Column("validity_days", sa.Integer(), nullable=True),
        sa.Column("validity_until", sa.Date(), nullable=True),
        sa.Column("refund_policy", sa.String(length=32), nullable=False),
        sa.Column("members_only", sa.Boolean(), nullable=False),
        sa.Column("big_ticket", sa.Boolean(), nullable=False),
        sa.Column("threshold_after_discount", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "kind <> 'threshold' OR threshold_fen >= face_value_fen",
            name=op.f("ck_batches_threshold_covers_face_value"),
        ),
        sa.CheckConstraint(
            "kind IN ('threshold', 'fixed', 'percentage', 'tiered')", name=op.f("ck_batches_kind_known")
        ),
        sa.CheckConstraint("cap_fen IS NULL OR cap_fen > 0", name=op.f("ck_batches_cap_positive")),
        sa.CheckConstraint(
            "face_value_fen IS NULL OR face_value_fen > 0", name=op.f("ck_batches_face_value_positive")
        ),
        sa.CheckConstraint("max_value_fen > 0", name=op.f("ck_batches_max_value_positive")),
        sa.CheckConstraint("per_person_per_round >= 1", name=op.f("ck_batches_per_round_limit_positive")),
        sa.CheckConstraint(
            "percent_bp IS NULL OR (percent_bp > 0 AND percent_bp < 10000)",
            name=op.f("ck_batches_percent_range"),
        ),
        sa.CheckConstraint("threshold_fen >= 0", name=op.f("ck_batches_threshold_not_negative")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_batches_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        sa.UniqueConstraint("campaign_id", "code", name=op.f("uq_batches_campaign_id_code")),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batches_campaign_id"), ["campaign_id"], unique=False)

    op.create_table(
        "funders",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("budget_fen", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("kind IN ('fiscal', 'union', 'social')", name=op.f("ck_funders_kind_known")),
        sa.CheckConstraint("budget_fen > 0", name=op.f("ck_funders_budget_positive")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_funders_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funders")),
        sa.UniqueConstraint("campaign_id", "code", name=op.f("uq_funders_campaign_id_code")),
    )
    with op.batch_alter_table("funders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_funders_campaign_id"), ["campaign_id"], unique=False)

    op.create_table(
        "rounds",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("opens_at", UtcDateTime(), nullable=False),
        sa.Column("closes_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("mode IN ('first_come', 'lottery')", name=op.f("ck_rounds_mode_known")),
        sa.CheckConstraint("closes_at > opens_at", name=op.f("ck_rounds_window_ordered")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_rounds_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rounds")),
        sa.UniqueConstraint("campaign_id", "code", name=op.f("uq_rounds_campaign_id_code")),
    )
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rounds_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_rounds_opens_at"), ["opens_at"], unique=False)

    op.create_table(
        "batch_funding",
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("funder_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("share_bp", sa.Integer(), nullable=False),
        sa.CheckConstraint("share_bp > 0 AND share_bp <= 10000", name=op.f("ck_batch_funding_share_range")),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_batch_funding_batch_id_batches")),
        sa.ForeignKeyConstraint(
            ["funder_id"], ["funders.id"], name=op.f("fk_batch_funding_funder_id_funders")
        ),
        sa.PrimaryKeyConstraint("batch_id", "funder_id", name=op.f("pk_batch_funding")),
    )
    op.create_table(
        "round_batches",
        sa.Column("round_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("stock", sa.Integer(), nullable=False),
        sa.CheckConstraint("stock >= 0", name=op.f("ck_round_batches_stock_not_negative")),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_round_batches_batch_id_batches")),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_round_batches_round_id_rounds")),
        sa.PrimaryKeyConstraint("round_id", "batch_id", name=op.f("pk_round_batches")),
    )


def downgrade() -> None:
    op.drop_table("round_batches")
    op.drop_table("batch_funding")
    with op.batch_alter_table("rounds", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rounds_opens_at"))
        batch_op.drop_index(batch_op.f("ix_rounds_campaign_id"))

    op.drop_table("rounds")
    with op.batch_alter_table("funders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_funders_campaign_id"))

    op.drop_table("funders")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batches_campaign_id"))

    op.drop_table("batches")
    op.drop_table("campaigns")
