"""risk

Revision ID: 0009
Revises: 0010
Create Date: 2026-11-28 12:48:31.970718
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0009"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "risk_cursors",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("last_id", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_risk_cursors")),
    )
    op.create_table(
        "risk_cases",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("jurisdiction", sa.String(length=16), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assignee", sa.String(length=100), nullable=True),
        sa.Column("measure", sa.String(length=16), nullable=True),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("opened_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('open', 'investigating', 'dismissed', 'confirmed', 'referred', 'sanctioned')",
            name=op.f("ck_risk_cases_status_known"),
        ),
        sa.CheckConstraint(
            "subject_kind IN ('merchant', 'person', 'device')", name=op.f("ck_risk_cases_subject_kind_known")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_risk_cases_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_cases")),
    )
    with op.batch_alter_table("risk_cases", schema=None) as batch_op:
        batch_op.create_index("ix_risk_cases_campaign_status", ["campaign_id", "status"], unique=False)

    op.create_table(
        "risk_settings",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_risk_settings_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("campaign_id", name=op.f("pk_risk_settings")),
    )
    op.create_table(
        "risk_alerts",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("jurisdiction", sa.String(length=16), nullable=True),
        sa.Column("period", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("figure", sa.Integer(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("raised_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("last_event_at", UtcDateTime(), nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=True),
        sa.CheckConstraint(
            "rule IN ('self_claim_self_redeem', 'threshold_hugging', 'split_orders', 'velocity', 'off_hours', 'refund_soon', 'refund_rate', 'device_farm', 'resale_ring')",
            name=op.f("ck_risk_alerts_rule_known"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'in_case', 'dismissed', 'confirmed')",
            name=op.f("ck_risk_alerts_status_known"),
        ),
        sa.CheckConstraint(
            "subject_kind IN ('merchant', 'person', 'device')", name=op.f("ck_risk_alerts_subject_kind_known")
        ),
        sa.CheckConstraint("hits >= 1", name=op.f("ck_risk_alerts_hits_positive")),
        sa.CheckConstraint("score >= 0", name=op.f("ck_risk_alerts_score_not_negative")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_risk_alerts_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["risk_cases.id"], name=op.f("fk_risk_alerts_case_id_risk_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_alerts")),
        sa.UniqueConstraint(
            "campaign_id",
            "rule",
            "subject_kind",
            "subject_id",
            "period",
            name=op.f("uq_risk_alerts_campaign_id_rule_subject_kind_subject_id_period"),
        ),
    )
    with op.batch_alter_table("risk_alerts", schema=None) as batch_op:
        batch_op.create_index("ix_risk_alerts_campaign_status", ["campaign_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_risk_alerts_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_risk_alerts_raised_at"), ["raised_at"], unique=False)
        batch_op.create_index(
            "ix_risk_alerts_subject", ["campaign_id", "subject_kind", "subject_id"], unique=False
        )

    op.create_table(
        "risk_case_referrals",
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("referred_at", UtcDateTime(), nullable=False),
        sa.Column("referred_by", sa.String(length=64), nullable=False),
        sa.CheckConstraint(
            "department IN ('market_regulator', 'police')",
            name=op.f("ck_risk_case_referrals_department_known"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["risk_cases.id"], name=op.f("fk_risk_case_referrals_case_id_risk_cases")
        ),
        sa.PrimaryKeyConstraint("case_id", "department", name=op.f("pk_risk_case_referrals")),
    )
    op.create_table(
        "risk_case_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("case_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("actor_name", sa.String(length=100), nullable=False),
        sa.Column("actor_role", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("department", sa.String(length=32), nullable=True),
        sa.Column("measure", sa.String(length=16), nullable=True),
        sa.Column("assignee", sa.String(length=100), nullable=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "action IN ('open', 'investigate', 'dismiss', 'confirm', 'refer', 'sanction', 'assign', 'note')",
            name=op.f("ck_risk_case_transitions_action_known"),
        ),
        sa.CheckConstraint(
            "to_status IN ('open', 'investigating', 'dismissed', 'confirmed', 'referred', 'sanctioned')",
            name=op.f("ck_risk_case_transitions_to_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["risk_cases.id"], name=op.f("fk_risk_case_transitions_case_id_risk_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_case_transitions")),
    )
    with op.batch_alter_table("risk_case_transitions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_risk_case_transitions_case_id"), ["case_id"], unique=False)

    # the intake's cursors exist from the start, so that scanners lock a row rather than race to insert it
    cursors = sa.table(
        "risk_cursors",
        sa.column("source", sa.String),
        sa.column("last_id", sa.Integer),
        sa.column("events", sa.Integer),
    )
    op.bulk_insert(
        cursors,
        [
            {"source": "voucher_events", "last_id": 0, "events": 0},
            {"source": "redemption_events", "last_id": 0, "events": 0},
        ],
    )


def downgrade() -> None:
    with op.batch_alter_table("risk_case_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_risk_case_transitions_case_id"))

    op.drop_table("risk_case_transitions")
    op.drop_table("risk_case_referrals")
    with op.batch_alter_table("risk_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_risk_alerts_subject")
        batch_op.drop_index(batch_op.f("ix_risk_alerts_raised_at"))
        batch_op.drop_index(batch_op.f("ix_risk_alerts_case_id"))
        batch_op.drop_index("ix_risk_alerts_campaign_status")

    op.drop_table("risk_alerts")
    op.drop_table("risk_settings")
    with op.batch_alter_table("risk_cases", schema=None) as batch_op:
        batch_op.drop_index("ix_risk_cases_campaign_status")

    op.drop_table("risk_cases")
    op.drop_table("risk_cursors")
