"""Tables of claims: vouchers, per-person claim counters, the append-only voucher event log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Float, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from huimin.db import Base, FenColumn, UtcDateTime

__all__ = [
    "ClaimCounterRow",
    "LotteryDrawRow",
    "LotteryEntryRow",
    "StockMovementRow",
    "VoucherEventRow",
    "VoucherRow",
]


class VoucherRow(Base):
    """A claimed voucher (消费券). `value_fen` is what it reserves from the budget: the batch's maximum
    voucher value (the face value, the cap, or the top price tier)."""

    __tablename__ = "vouchers"
    __table_args__ = (
        CheckConstraint(
            "status IN ('claimed', 'redeemed', 'settled', 'expired', 'recycled', 'reversed', 'revoked')",
            name="status_known",
        ),
        CheckConstraint("value_fen > 0", name="value_positive"),
        CheckConstraint("valid_until > claimed_at", name="validity_ordered"),
        Index("ix_vouchers_status_valid_until", "status", "valid_until"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), index=True)
    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), index=True)
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"), index=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    value_fen: Mapped[int] = mapped_column(FenColumn)
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    valid_until: Mapped[datetime] = mapped_column(UtcDateTime)
    district: Mapped[str] = mapped_column(String(16))  # where the resident was when claiming (statistics)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    recycled_to_round_id: Mapped[str | None] = mapped_column(ForeignKey("rounds.id"))
    # Where the claim was made, for the location-spoofing rule, minimised (docs/claims.md): the reported
    # position in GCJ-02 rounded to 3 decimals (~100 m), the client's network (/24 IPv4, /48 IPv6), never
    # its address. None for lottery wins and for claims made before they were recorded.
    claim_lng: Mapped[float | None] = mapped_column(Float)
    claim_lat: Mapped[float | None] = mapped_column(Float)
    claim_ip_prefix: Mapped[str | None] = mapped_column(String(64))


class ClaimCounterRow(Base):
    """How many vouchers a natural person holds within one limit's scope (a round's batch, a batch, a
    category, the campaign). Incremented by a conditional upsert that fails at the limit."""

    __tablename__ = "claim_counters"
    __table_args__ = (CheckConstraint("claimed >= 0", name="claimed_not_negative"),)

    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), primary_key=True)
    scope: Mapped[str] = mapped_column(String(120), primary_key=True)
    claimed: Mapped[int] = mapped_column(Integer)


class VoucherEventRow(Base):
    """Append-only: every change of a voucher's state, with the value it moves (for the ledger)."""

    __tablename__ = "voucher_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    voucher_id: Mapped[str] = mapped_column(ForeignKey("vouchers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    value_fen: Mapped[int] = mapped_column(FenColumn)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)

    voucher: Mapped[VoucherRow] = relationship(lazy="raise")  # orders inserts: the voucher first


class StockMovementRow(Base):
    """Stock rolled from one round into a later round of the same batch (SPEC §4.6): the unclaimed rest
    of a closed round, or expired vouchers whose value returns to the pool. Append-only."""

    __tablename__ = "stock_movements"
    __table_args__ = (
        CheckConstraint("kind IN ('unclaimed', 'expired')", name="kind_known"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"))
    from_round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), index=True)
    to_round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    value_fen: Mapped[int] = mapped_column(FenColumn)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class LotteryDrawRow(Base):
    """摇号: the seed of a lottery round, committed (its SHA-256 published) when registration opens and
    revealed at the draw. The seed is sealed with a key outside the database until then."""

    __tablename__ = "lottery_draws"

    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), primary_key=True)
    seed_sha256: Mapped[str] = mapped_column(String(64))
    seed_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    committed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    seed: Mapped[str | None] = mapped_column(String(64))  # revealed at the draw
    entries_sha256: Mapped[str | None] = mapped_column(String(64))
    drawn_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LotteryEntryRow(Base):
    """One natural person's entry for one batch of a lottery round."""

    __tablename__ = "lottery_entries"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    round_id: Mapped[str] = mapped_column(ForeignKey("rounds.id"), index=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"))
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"))
    resident_id: Mapped[str] = mapped_column(ForeignKey("residents.id"))
    district: Mapped[str] = mapped_column(String(16))
    entered_at: Mapped[datetime] = mapped_column(UtcDateTime)
    rank: Mapped[int | None] = mapped_column(Integer)  # 1 = drawn first
    won: Mapped[bool | None]
    voucher_id: Mapped[str | None] = mapped_column(ForeignKey("vouchers.id"))

    __table_args__ = (Index("uq_lottery_entries_person", "round_id", "batch_id", "person_id", unique=True),)
