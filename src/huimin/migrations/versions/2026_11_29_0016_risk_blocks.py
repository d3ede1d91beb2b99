"""risk blocks: persons and devices a risk case's sanction blocks from claiming in a campaign

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "claim_blocks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("measure", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("vouchers_revoked", sa.Integer(), nullable=False),
        sa.Column("value_revoked_fen", sa.BigInteger(), nullable=False),
        sa.Column("blocked_at", UtcDateTime(), nullable=False),
        sa.Column("blocked_by", sa.String(length=64), nullable=False),
        sa.Column("lifted_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "subject_kind IN ('person', 'device')", name=op.f("ck_claim_blocks_subject_kind_known")
        ),
        sa.CheckConstraint(
            "vouchers_revoked >= 0 AND value_revoked_fen >= 0",
            name=op.f("ck_claim_blocks_revoked_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_claim_blocks_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["risk_cases.id"], name=op.f("fk_claim_blocks_case_id_risk_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_claim_blocks")),
    )
    with op.batch_alter_table("claim_blocks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_claim_blocks_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_claim_blocks_subject", ["campaign_id", "subject_kind", "subject_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("claim_blocks", schema=None) as batch_op:
        batch_op.drop_index("ix_claim_blocks_subject")
        batch_op.drop_index(batch_op.f("ix_claim_blocks_case_id"))
    op.drop_table("claim_blocks")
