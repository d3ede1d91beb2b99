"""allocation: the next-round planner's proposals and the city admin's decisions

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28 18:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "allocation_plans",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("round_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("limits", sa.JSON(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("average_merit", sa.Float(), nullable=False),
        sa.Column("fallback", sa.Float(), nullable=False),
        sa.Column("proposed_at", UtcDateTime(), nullable=False),
        sa.Column("proposed_by", sa.String(length=64), nullable=False),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.Column("applied_stock", sa.JSON(), nullable=True),
        sa.CheckConstraint(
            "status = 'proposed' OR decided_at IS NOT NULL",
            name=op.f("ck_allocation_plans_decided_when_closed"),
        ),
        sa.CheckConstraint(
            "status IN ('proposed', 'accepted', 'rejected', 'superseded')",
            name=op.f("ck_allocation_plans_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_allocation_plans_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["round_id"], ["rounds.id"], name=op.f("fk_allocation_plans_round_id_rounds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_plans")),
    )
    with op.batch_alter_table("allocation_plans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_allocation_plans_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_allocation_plans_round_id"), ["round_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("allocation_plans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allocation_plans_round_id"))
        batch_op.drop_index(batch_op.f("ix_allocation_plans_campaign_id"))
    op.drop_table("allocation_plans")
