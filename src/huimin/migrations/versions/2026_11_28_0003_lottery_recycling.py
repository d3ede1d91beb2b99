"""lottery and recycling

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 02:21:23.111401
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from huimin.db import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lottery_draws",
        sa.Column("round_id", sa.String(length=32), nullable=False),
        sa.Column("seed_sha256", sa.String(length=64), nullable=False),
        sa.Column("seed_sealed", sa.LargeBinary(), nullable=False),
        sa.Column("committed_at", UtcDateTime(), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=True),
        sa.Column("entries_sha256", sa.String(length=64), nullable=True),
        sa.Column("drawn_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_lottery_draws_round_id_rounds")),
        sa.PrimaryKeyConstraint("round_id", name=op.f("pk_lottery_draws")),
    )
    op.create_table(
        "stock_movements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("from_round_id", sa.String(length=32), nullable=False),
        sa.Column("to_round_id", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("value_fen", sa.BigInteger(), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.CheckConstraint("kind IN ('unclaimed', 'expired')", name=op.f("ck_stock_movements_kind_known")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_stock_movements_quantity_positive")),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_stock_movements_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["from_round_id"], ["rounds.id"], name=op.f("fk_stock_movements_from_round_id_rounds")
        ),
        sa.ForeignKeyConstraint(
            ["to_round_id"], ["rounds.id"], name=op.f("fk_stock_movements_to_round_id_rounds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_movements")),
    )
    with op.batch_alter_table("stock_movements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stock_movements_from_round_id"), ["from_round_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_stock_movements_to_round_id"), ["to_round_id"], unique=False)

    op.create_table(
        "lottery_entries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("round_id", sa.String(length=32), nullable=False),
        sa.Column("batch_id", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.String(length=32), nullable=False),
        sa.Column("resident_id", sa.String(length=32), nullable=False),
        sa.Column("district", sa.String(length=16), nullable=False),
        sa.Column("entered_at", UtcDateTime(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("won", sa.Boolean(), nullable=True),
        sa.Column("voucher_id", sa.String(length=32), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_lottery_entries_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_lottery_entries_person_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["resident_id"], ["residents.id"], name=op.f("fk_lottery_entries_resident_id_residents")
        ),
        sa.ForeignKeyConstraint(["round_id"], ["rounds.id"], name=op.f("fk_lottery_entries_round_id_rounds")),
        sa.ForeignKeyConstraint(
            ["voucher_id"], ["vouchers.id"], name=op.f("fk_lottery_entries_voucher_id_vouchers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lottery_entries")),
    )
    with op.batch_alter_table("lottery_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lottery_entries_round_id"), ["round_id"], unique=False)
        batch_op.create_index("uq_lottery_entries_person", ["round_id", "batch_id", "person_id"], unique=True)

    with op.batch_alter_table("round_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recycled_in", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recycled_to_round_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_vouchers_recycled_to_round_id_rounds"), "rounds", ["recycled_to_round_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("vouchers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_vouchers_recycled_to_round_id_rounds"), type_="foreignkey")
        batch_op.drop_column("recycled_to_round_id")

    with op.batch_alter_table("round_batches", schema=None) as batch_op:
        batch_op.drop_column("recycled_in")

    with op.batch_alter_table("lottery_entries", schema=None) as batch_op:
        batch_op.drop_index("uq_lottery_entries_person")
        batch_op.drop_index(batch_op.f("ix_lottery_entries_round_id"))

    op.drop_table("lottery_entries")
    with op.batch_alter_table("stock_movements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stock_movements_to_round_id"))
        batch_op.drop_index(batch_op.f("ix_stock_movements_from_round_id"))

    op.drop_table("stock_movements")
    op.drop_table("lottery_draws")
