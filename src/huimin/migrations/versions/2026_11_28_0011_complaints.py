"""complaints: complaints and their history, inspection findings, announcements, privacy purges

Revision ID: 0011
Revises: 0008
Create Date: 2026-11-28 13:06:33.199593
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "announcements",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("published_at", UtcDateTime(), nullable=True),
        sa.Column("withdrawn_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.CheckConstraint("kind IN ('announcement', 'rules')", name=op.f("ck_announcements_kind_known")),
        sa.CheckConstraint(
            "status <> 'published' OR published_at IS NOT NULL",
            name=op.f("ck_announcements_published_has_time"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'published', 'withdrawn')", name=op.f("ck_announcements_status_known")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_announcements_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_announcements")),
    )
    with op.batch_alter_table("announcements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_announcements_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index("ix_announcements_public", ["status", "published_at"], unique=False)

    op.create_table(
        "privacy_purges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.Date(), nullable=False),
        sa.Column("reference_kind", sa.String(length=24), nullable=False),
        sa.Column("after_days", sa.Integer(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_privacy_purges_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_purges")),
    )
    with op.batch_alter_table("privacy_purges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_purges_campaign_id"), ["campaign_id"], unique=False)

    op.create_table(
        "complaints",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=24), nullable=False),
        sa.Column("department", sa.String(length=24), nullable=False),
        sa.Column("jurisdiction", sa.String(length=16), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=True),
        sa.Column("voucher_id", sa.String(length=32), nullable=True),
        sa.Column("resident_id", sa.String(length=32), nullable=True),
        sa.Column("complainant_phone_digest", sa.String(length=64), nullable=True),
        sa.Column("complainant_phone_masked", sa.String(length=24), nullable=False),
        sa.Column("risk_case_id", sa.String(length=32), nullable=True),
        sa.Column("registered_at", UtcDateTime(), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.Column("registered_by_role", sa.String(length=32), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("sla_days", sa.Integer(), nullable=False),
        sa.Column("assignee_id", sa.String(length=32), nullable=True),
        sa.Column("assignee_name", sa.String(length=100), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.Column("resolved_at", UtcDateTime(), nullable=True),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "category IN ('cannot_claim', 'merchant_refused_voucher', 'disguised_price_increase', 'product_quality', 'suspected_cash_out', 'bank_payment', 'other')",
            name=op.f("ck_complaints_category_known"),
        ),
        sa.CheckConstraint(
            "channel IN ('hotline', 'market_regulator', 'pboc', 'resident_app')",
            name=op.f("ck_complaints_channel_known"),
        ),
        sa.CheckConstraint(
            "department <> 'county_commerce' OR jurisdiction IS NOT NULL",
            name=op.f("ck_complaints_county_has_jurisdiction"),
        ),
        sa.CheckConstraint(
            "department IN ('city_commerce', 'county_commerce', 'market_regulator', 'operator', 'operator_risk', 'pboc')",
            name=op.f("ck_complaints_department_known"),
        ),
        sa.CheckConstraint(
            "jurisdiction IS NULL OR jurisdiction IN ('yanjiang', 'anyue', 'lezhi', 'gaoxin', 'linkong')",
            name=op.f("ck_complaints_jurisdiction_known"),
        ),
        sa.CheckConstraint(
            "status IN ('registered', 'assigned', 'in_progress', 'resolved', 'closed')",
            name=op.f("ck_complaints_status_known"),
        ),
        sa.CheckConstraint(
            "status NOT IN ('resolved', 'closed') OR (resolution IS NOT NULL AND resolved_at IS NOT NULL)",
            name=op.f("ck_complaints_resolved_has_resolution"),
        ),
        sa.CheckConstraint("due_at > registered_at", name=op.f("ck_complaints_due_after_registration")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_complaints_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_complaints_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.id"], name=op.f("fk_complaints_resident_id_residents")
        ),
        sa.ForeignKeyConstraint(
            ["risk_case_id"], ["risk_cases.id"], name=op.f("fk_complaints_risk_case_id_risk_cases")
        ),
        sa.ForeignKeyConstraint(
            ["voucher_id"], ["vouchers.id"], name=op.f("fk_complaints_voucher_id_vouchers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaints")),
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.create_index("ix_complaints_campaign", ["campaign_id", "registered_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_complaints_complainant_phone_digest"), ["complainant_phone_digest"], unique=False
        )
        batch_op.create_index("ix_complaints_department", ["department", "jurisdiction"], unique=False)
        batch_op.create_index(batch_op.f("ix_complaints_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_complaints_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_complaints_risk_case_id"), ["risk_case_id"], unique=False)
        batch_op.create_index("ix_complaints_status_due", ["status", "due_at"], unique=False)

    op.create_table(
        "complaint_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("complaint_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=True),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("actor_name", sa.String(length=100), nullable=False),
        sa.Column("actor_role", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("assignee_id", sa.String(length=32), nullable=True),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "action IN ('register', 'assign', 'start', 'resolve', 'reopen', 'close', 'note', 'link_risk_case')",
            name=op.f("ck_complaint_events_action_known"),
        ),
        sa.CheckConstraint(
            "to_status IS NULL OR to_status IN ('registered', 'assigned', 'in_progress', 'resolved', 'closed')",
            name=op.f("ck_complaint_events_to_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["complaint_id"], ["complaints.id"], name=op.f("fk_complaint_events_complaint_id_complaints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_complaint_events")),
    )
    with op.batch_alter_table("complaint_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_complaint_events_complaint_id"), ["complaint_id"], unique=False)

    op.create_table(
        "inspection_findings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("jurisdiction", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("inspected_at", UtcDateTime(), nullable=False),
        sa.Column("complaint_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_by_name", sa.String(length=100), nullable=False),
        sa.Column("read_at", UtcDateTime(), nullable=True),
        sa.Column("read_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", UtcDateTime(), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_by_name", sa.String(length=100), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(status = 'open') = (decided_at IS NULL) AND (decided_at IS NULL) = (decided_by IS NULL)",
            name=op.f("ck_inspection_findings_decision_recorded"),
        ),
        sa.CheckConstraint(
            "kind IN ('food_hygiene', 'prices', 'epidemic_rules', 'product_quality', 'other')",
            name=op.f("ck_inspection_findings_kind_known"),
        ),
        sa.CheckConstraint(
            "severity IN ('minor', 'major', 'severe')", name=op.f("ck_inspection_findings_severity_known")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'merchant_suspended', 'no_action')",
            name=op.f("ck_inspection_findings_status_known"),
        ),
        sa.CheckConstraint(
            "(read_at IS NULL) = (read_by IS NULL)", name=op.f("ck_inspection_findings_reading_recorded")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_inspection_findings_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["complaint_id"], ["complaints.id"], name=op.f("fk_inspection_findings_complaint_id_complaints")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_inspection_findings_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspection_findings")),
    )
    with op.batch_alter_table("inspection_findings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inspection_findings_campaign_id"), ["campaign_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_inspection_findings_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index("ix_inspection_findings_unread", ["read_at", "recorded_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("inspection_findings", schema=None) as batch_op:
        batch_op.drop_index("ix_inspection_findings_unread")
        batch_op.drop_index(batch_op.f("ix_inspection_findings_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_inspection_findings_campaign_id"))

    op.drop_table("inspection_findings")
    with op.batch_alter_table("complaint_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complaint_events_complaint_id"))

    op.drop_table("complaint_events")
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_index("ix_complaints_status_due")
        batch_op.drop_index(batch_op.f("ix_complaints_risk_case_id"))
        batch_op.drop_index(batch_op.f("ix_complaints_resident_id"))
        batch_op.drop_index(batch_op.f("ix_complaints_merchant_id"))
        batch_op.drop_index("ix_complaints_department")
        batch_op.drop_index(batch_op.f("ix_complaints_complainant_phone_digest"))
        batch_op.drop_index("ix_complaints_campaign")

    op.drop_table("complaints")
    with op.batch_alter_table("privacy_purges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_purges_campaign_id"))

    op.drop_table("privacy_purges")
    with op.batch_alter_table("announcements", schema=None) as batch_op:
        batch_op.drop_index("ix_announcements_public")
        batch_op.drop_index(batch_op.f("ix_announcements_campaign_id"))

    op.drop_table("announcements")
