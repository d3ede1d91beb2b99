"""claims: partners, residents, stock shards, vouchers, idempotency

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 02:09:03.809093
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("revoked_at", UtcDateTime(), nullable=True),
        sa.CheckConstraint("kind IN ('app', 'terminal')", name=op.f("ck_partners_kind_known")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partners")),
        sa.UniqueConstraint("key_id", name=op.f("uq_partners_key_id")),
    )
    op.create_table(
        "persons",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_persons")),
    )
    op.create_table(
        "union_members",
        sa.Column("id_number_digest", sa.String(length=64), nullable=False),
        sa.Column("id_number_masked", sa.String(length=32), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("imported_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id_number_digest", name=op.f("pk_union_members")),
    )
    op.create_table(
        "claim_counters",
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("scope", sa.String(length=120), nullable=False),
        sa.Column("claimed", sa.Integer(), nullable=False),
        sa.CheckConstraint("claimed >= 0", name=op.f("ck_claim_counters_claimed_not_negative")),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_claim_counters_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("person_id", "scope", name=op.f("pk_claim_counters")),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("locked_at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("state IN ('in_progress', 'done')", name=op.f("ck_idempotency_keys_state_known")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_idempotency_keys_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("partner_id", "key", name=op.f("pk_idempotency_keys")),
    )
    op.create_table(
        "partner_nonces",
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("seen_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_partner_nonces_partner_id_partners")
        ),
        sa.PrimaryKeyConstraint("partner_id", "nonce", name=op.f("pk_partner_nonces")),
    )
    with op.batch_alter_table("partner_nonces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_partner_nonces_seen_at"), ["seen_at"], unique=False)

    op.create_table(
        "person_identifiers",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("masked", sa.String(length=32), nullable=False),
        sa.CheckConstraint("kind IN ('id_number', 'phone')", name=op.f("ck_person_identifiers_kind_known")),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_person_identifiers_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("kind", "digest", name=op.f("pk_person_identifiers")),
    )
    with op.batch_alter_table("person_identifiers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_person_identifiers_person_id"), ["person_id"], unique=False)

    op.create_table(
        "residents",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("partner_id", sa.String(length=32), nullable=False),
        sa.Column("app_user_id", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("real_name_verified", sa.Boolean(), nullable=False),
        sa.Column("id_number_digest", sa.String(length=64), nullable=False),
        sa.Column("id_number_masked", sa.String(length=32), nullable=False),
        sa.Column("phone_digest", sa.String(length=64), nullable=False),
        sa.Column("phone_masked", sa.String(length=32), nullable=False),
        sa.Column("device_digest", sa.String(length=64), nullable=False),
        sa.Column("registered_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_residents_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name=op.f("fk_residents_person_id_persons")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_residents")),
        sa.UniqueConstraint("partner_id", "app_user_id", name=op.f("uq_residents_partner_id_app_user_id")),
    )
    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_residents_device_digest"), ["device_digest"], unique=False)
        batch_op.create_index(batch_op.f("ix_residents_person_id"), ["person_id"], unique=False)

    op.create_table(
        "stock_shards",
        sa.Column("round_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.CheckConstraint("remaining >= 0", name=op.f("ck_stock_shards_remaining_not_negative")),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_stock_shards_batch_id_batches")),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_stock_shards_round_id_rounds")),
        sa.PrimaryKeyConstraint("round_id", "batch_id", "shard", name=op.f("pk_stock_shards")),
    )
    op.create_table(
        "vouchers",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("campaign_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("round_id", sa.String(length=32), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("value_fen", sa.BigInteger(), nullable=False),
        sa.Column("claimed_at", UtcDateTime(), nullable=False),
        sa.Column("valid_until", UtcDateTime(), nullable=False),
        sa.Column("district", sa.String(length=16), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=True),
        sa.CheckConstraint(
            "status IN ('claimed', 'redeemed', 'settled', 'expired', 'recycled', 'reversed', 'revoked')",
            name=op.f("ck_vouchers_status_known"),
        ),
        sa.CheckConstraint("valid_until > claimed_at", name=op.f("ck_vouchers_validity_ordered")),
        sa.CheckConstraint("value_fen > 0", name=op.f("ck_vouchers_value_positive")),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_vouchers_batch_id_batches")),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_vouchers_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], name=op.f("fk_vouchers_person_id_persons")),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.id"], name=op.f("fk_vouchers_resident_id_residents")
        ),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_vouchers_round_id_rounds")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vouchers")),
        sa.UniqueConstraint("code", name=op.f("uq_vouchers_code")),
    )
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vouchers_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vouchers_person_id"), ["person_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vouchers_resident_id"), ["resident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vouchers_round_id"), ["round_id"], unique=False)
        batch_op.create_index("ix_vouchers_status_valid_until", ["status", "valid_until"], unique=False)

    op.create_table(
        "voucher_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("voucher_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value_fen", sa.BigInteger(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["voucher_id"], ["vouchers.id"], name=op.f("fk_voucher_events_voucher_id_vouchers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voucher_events")),
    )
    with op.batch_alter_table("voucher_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_voucher_events_at"), ["at"], unique=False)
        batch_op.create_index(batch_op.f("ix_voucher_events_voucher_id"), ["voucher_id"], unique=False)
    # Campaigns loaded before this revision: their whole stock in one shard per round and batch.
    op.execute(
        "INSERT INTO stock_shards (round_id, batch_id, shard, remaining) "
        "SELECT round_id, batch_id, 0, stock FROM round_batches"
    )


def downgrade() -> None:
    with op.batch_alter_table("voucher_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voucher_events_voucher_id"))
        batch_op.drop_index(batch_op.f("ix_voucher_events_at"))

    op.drop_table("voucher_events")
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.drop_index("ix_vouchers_status_valid_until")
        batch_op.drop_index(batch_op.f("ix_vouchers_round_id"))
        batch_op.drop_index(batch_op.f("ix_vouchers_resident_id"))
        batch_op.drop_index(batch_op.f("ix_vouchers_person_id"))
        batch_op.drop_index(batch_op.f("ix_vouchers_batch_id"))

    op.drop_table("vouchers")
    op.drop_table("stock_shards")
    with op.batch_alter_table("residents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_residents_person_id"))
        batch_op.drop_index(batch_op.f("ix_residents_device_digest"))

    op.drop_table("residents")
    with op.batch_alter_table("person_identifiers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_person_identifiers_person_id"))

    op.drop_table("person_identifiers")
    with op.batch_alter_table("partner_nonces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_partner_nonces_seen_at"))

    op.drop_table("partner_nonces")
    op.drop_table("idempotency_keys")
    op.drop_table("claim_counters")
    op.drop_table("union_members")
    op.drop_table("persons")
    op.drop_table("partners")
