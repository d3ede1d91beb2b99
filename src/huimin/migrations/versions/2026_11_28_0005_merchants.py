"""merchants: onboarding workflow, terminals, transitions, dishonest list, event outbox

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 02:57:13.079111
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merchants",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("credit_code", sa.String(length=18), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=False),
        sa.Column("jurisdiction", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("merchant_class", sa.String(length=32), nullable=False),
        sa.Column("registered_address", sa.String(length=300), nullable=False),
        sa.Column("business_hours", sa.String(length=100), nullable=False),
        sa.Column("bank_name", sa.String(length=100), nullable=False),
        sa.Column("bank_account_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("bank_account_masked", sa.String(length=40), nullable=False),
        sa.Column("contact_name", sa.String(length=50), nullable=False),
        sa.Column("contact_phone_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("contact_phone_masked", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column("invited_at", UtcDateTime(), nullable=False),
        sa.Column("status_changed_at", UtcDateTime(), nullable=False),
        sa.Column("listed_at", UtcDateTime(), nullable=True),
        sa.Column("commitment_version", sa.String(length=16), nullable=True),
        sa.Column("commitment_sha256", sa.String(length=64), nullable=True),
        sa.Column("commitment_signatory", sa.String(length=50), nullable=True),
        sa.Column("committed_by", sa.String(length=64), nullable=True),
        sa.Column("committed_by_role", sa.String(length=32), nullable=True),
        sa.Column("committed_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "category IN ('catering', 'retail', 'lodging', 'services', 'wholesale', 'cars', 'appliances')",
            name=op.f("ck_merchants_category_known"),
        ),
        sa.CheckConstraint(
            "jurisdiction IN ('yanjiang', 'anyue', 'lezhi', 'gaoxin', 'linkong')",
            name=op.f("ck_merchants_jurisdiction_known"),
        ),
        sa.CheckConstraint(
            "merchant_class IN ('above_scale_services', 'above_quota', 'below_quota_sampled', 'key_cultivation', 'complex_tenant')",
            name=op.f("ck_merchants_class_known"),
        ),
        sa.CheckConstraint(
            "status = 'invited' OR (bank_account_sealed IS NOT NULL AND registered_address <> '')",
            name=op.f("ck_merchants_applied_is_complete"),
        ),
        sa.CheckConstraint(
            "status IN ('invited', 'applied', 'submitted', 'county_approved', 'county_rejected', 'listed', 'active', 'suspended', 'expelled')",
            name=op.f("ck_merchants_status_known"),
        ),
        sa.CheckConstraint(
            "status NOT IN ('active', 'suspended', 'expelled') OR commitment_sha256 IS NOT NULL",
            name=op.f("ck_merchants_active_has_commitment"),
        ),
        sa.CheckConstraint("length(credit_code) = 18", name=op.f("ck_merchants_credit_code_length")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_merchants_campaign_id_campaigns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchants")),
        sa.UniqueConstraint("campaign_id", "credit_code", name=op.f("uq_merchants_campaign_id_credit_code")),
    )
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.create_index("ix_merchants_campaign_status", ["campaign_id", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_merchants_credit_code"), ["credit_code"], unique=False)

    op.create_table(
        "dishonest_entries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("credit_code", sa.String(length=18), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=True),
        sa.Column("merchant_id", sa.String(length=32), nullable=True),
        sa.Column("listed_at", UtcDateTime(), nullable=False),
        sa.Column("listed_by", sa.String(length=64), nullable=False),
        sa.Column("listed_by_name", sa.String(length=100), nullable=False),
        sa.Column("listed_by_role", sa.String(length=32), nullable=False),
        sa.Column("delisted_at", UtcDateTime(), nullable=True),
        sa.Column("delisted_by", sa.String(length=64), nullable=True),
        sa.Column("delisted_by_name", sa.String(length=100), nullable=True),
        sa.Column("delisted_by_role", sa.String(length=32), nullable=True),
        sa.Column("delist_reason", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(delisted_at IS NULL) = (delisted_by IS NULL)",
            name=op.f("ck_dishonest_entries_delisting_recorded"),
        ),
        sa.CheckConstraint("length(credit_code) = 18", name=op.f("ck_dishonest_entries_credit_code_length")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_dishonest_entries_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_dishonest_entries_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dishonest_entries")),
    )
    with op.batch_alter_table("dishonest_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dishonest_entries_credit_code"), ["credit_code"], unique=False)
        batch_op.create_index(
            "uq_dishonest_entries_open",
            ["credit_code"],
            unique=True,
            sqlite_where=sa.text("delisted_at IS NULL"),
            postgresql_where=sa.text("delisted_at IS NULL"),
        )

    op.create_table(
        "merchant_terminals",
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("terminal_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_merchant_terminals_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_merchant_terminals_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("campaign_id", "terminal_id", name=op.f("pk_merchant_terminals")),
    )
    with op.batch_alter_table("merchant_terminals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_merchant_terminals_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "merchant_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("from_status", sa.String(length=24), nullable=True),
        sa.Column("to_status", sa.String(length=24), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("actor_name", sa.String(length=100), nullable=False),
        sa.Column("actor_role", sa.String(length=32), nullable=False),
        sa.Column("actor_jurisdiction", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.CheckConstraint(
            "action IN ('invite', 'apply', 'submit', 'approve', 'reject', 'publish', 'commit', 'suspend', 'reinstate', 'expel')",
            name=op.f("ck_merchant_transitions_action_known"),
        ),
        sa.CheckConstraint(
            "to_status IN ('invited', 'applied', 'submitted', 'county_approved', 'county_rejected', 'listed', 'active', 'suspended', 'expelled')",
            name=op.f("ck_merchant_transitions_to_status_known"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_merchant_transitions_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchant_transitions")),
    )
    with op.batch_alter_table("merchant_transitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_merchant_transitions_merchant_id"), ["merchant_id"], unique=False
        )

    op.create_table(
        "merchant_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=32), nullable=False),
        sa.Column("transition_id", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("consumed_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('merchant.activated', 'merchant.suspended', 'merchant.reinstated', 'merchant.expelled')",
            name=op.f("ck_merchant_events_kind_known"),
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_merchant_events_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_merchant_events_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["transition_id"],
            ["merchant_transitions.id"],
            name=op.f("fk_merchant_events_transition_id_merchant_transitions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_merchant_events")),
    )
    with op.batch_alter_table("merchant_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_merchant_events_merchant_id"), ["merchant_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("merchant_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_merchant_events_merchant_id"))

    op.drop_table("merchant_events")
    with op.batch_alter_table("merchant_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_merchant_transitions_merchant_id"))

    op.drop_table("merchant_transitions")
    with op.batch_alter_table("merchant_terminals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_merchant_terminals_merchant_id"))

    op.drop_table("merchant_terminals")
    with op.batch_alter_table("dishonest_entries", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_dishonest_entries_open",
            sqlite_where=sa.text("delisted_at IS NULL"),
            postgresql_where=sa.text("delisted_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_dishonest_entries_credit_code"))

    op.drop_table("dishonest_entries")
    with op.batch_alter_table("merchants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_merchants_credit_code"))
        batch_op.drop_index("ix_merchants_campaign_status")

    op.drop_table("merchants")
