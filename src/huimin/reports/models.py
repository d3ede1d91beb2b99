"""Tables of the reports: the rollups the dashboard reads, and the job's cursors.

Every rollup row is a sum of logged events, kept by `huimin report rollup` (reports/rollup.py), which
advances its cursor on each log in the same transaction as the rows it adds: an event is counted once,
whatever stops the job. The rows can be rebuilt from the logs at any time (`--rebuild`).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from huimin.db import Base, FenColumn, UtcDateTime

__all__ = [
    "AccountBalanceRow",
    "MerchantTotalRow",
    "ParticipantRow",
    "RedemptionDayRow",
    "ReportCursorRow",
    "VoucherDayRow",
]

_COUNT = BigInteger()


class ReportCursorRow(Base):
    """How far the rollup has read one append-only log (`voucher_events`, `redemption_events`,
    `ledger_postings`). On PostgreSQL ids are drawn before commit, so a lower id can become visible after
    a higher one: the job only reads up to a horizon, the highest id drawn when it last looked, once
    every transaction of the database running then has ended (`horizon_waits`, see reports/rollup.py)."""

    __tablename__ = "report_cursors"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(_COUNT)
    events: Mapped[int] = mapped_column(_COUNT)
    horizon_id: Mapped[int | None] = mapped_column(_COUNT)
    horizon_waits: Mapped[str | None] = mapped_column(Text)  # transaction ids to wait for, comma-separated
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


def _measure() -> Mapped[int]:
    return mapped_column(FenColumn, default=0, server_default="0")


class VoucherDayRow(Base):
    """Claims, expiry, recycling by campaign × local day × round × batch × the district where the
    resident claimed (see reports.domain.VoucherMeasures)."""

    __tablename__ = "report_voucher_days"
    # A row per district and one summing over them (district `*`): a figure reads one kind.
    __table_args__ = (Index("ix_report_voucher_days_slice", "campaign_id", "district", "day"),)

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    round_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    district: Mapped[str] = mapped_column(String(16), primary_key=True)
    issued: Mapped[int] = _measure()
    issued_fen: Mapped[int] = _measure()
    restored: Mapped[int] = _measure()
    redeemed: Mapped[int] = _measure()
    expired: Mapped[int] = _measure()
    expired_fen: Mapped[int] = _measure()
    recycled: Mapped[int] = _measure()
    recycled_fen: Mapped[int] = _measure()
    recovered: Mapped[int] = _measure()
    recovered_fen: Mapped[int] = _measure()
    reversed: Mapped[int] = _measure()
    revoked: Mapped[int] = _measure()
    settled: Mapped[int] = _measure()
    held: Mapped[int] = _measure()
    held_fen: Mapped[int] = _measure()
    new_claimers: Mapped[int] = _measure()


class RedemptionDayRow(Base):
    """Redemptions, invoice checks and refunds by campaign × local day × round × batch × the merchant's
    jurisdiction, category and class (see reports.domain.RedemptionMeasures)."""

    __tablename__ = "report_redemption_days"
    # Rows of every combination, and rows summing over two or all three of jurisdiction, category and
    # class (`*`): a figure reads one slice, contiguous in this index.
    __table_args__ = (
        Index(
            "ix_report_redemption_days_slice",
            "campaign_id",
            "jurisdiction",
            "category",
            "merchant_class",
            "day",
        ),
    )

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    round_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    jurisdiction: Mapped[str] = mapped_column(String(16), primary_key=True)
    category: Mapped[str] = mapped_column(String(16), primary_key=True)
    merchant_class: Mapped[str] = mapped_column(String(32), primary_key=True)
    redeemed: Mapped[int] = _measure()
    order_fen: Mapped[int] = _measure()
    discount_fen: Mapped[int] = _measure()
    payable_fen: Mapped[int] = _measure()
    subsidy_fen: Mapped[int] = _measure()
    big_ticket_subsidy_fen: Mapped[int] = _measure()
    verified: Mapped[int] = _measure()
    verified_fen: Mapped[int] = _measure()
    rejected: Mapped[int] = _measure()
    rejected_payable_fen: Mapped[int] = _measure()
    rejected_discount_fen: Mapped[int] = _measure()
    rejected_subsidy_fen: Mapped[int] = _measure()
    refunds: Mapped[int] = _measure()
    refund_fen: Mapped[int] = _measure()
    refund_subsidy_fen: Mapped[int] = _measure()
    refunded_full: Mapped[int] = _measure()
    new_spenders: Mapped[int] = _measure()
    new_merchants: Mapped[int] = _measure()


class MerchantTotalRow(Base):
    """The same measures per merchant for the whole campaign: merchant participation and rankings."""

    __tablename__ = "report_merchant_totals"
    __table_args__ = (
        Index("ix_report_merchant_totals_campaign_jurisdiction", "campaign_id", "jurisdiction"),
    )

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    jurisdiction: Mapped[str] = mapped_column(String(16))
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)
    redeemed: Mapped[int] = _measure()
    order_fen: Mapped[int] = _measure()
    discount_fen: Mapped[int] = _measure()
    payable_fen: Mapped[int] = _measure()
    subsidy_fen: Mapped[int] = _measure()
    big_ticket_subsidy_fen: Mapped[int] = _measure()
    verified: Mapped[int] = _measure()
    verified_fen: Mapped[int] = _measure()
    rejected: Mapped[int] = _measure()
    rejected_payable_fen: Mapped[int] = _measure()
    rejected_discount_fen: Mapped[int] = _measure()
    rejected_subsidy_fen: Mapped[int] = _measure()
    refunds: Mapped[int] = _measure()
    refund_fen: Mapped[int] = _measure()
    refund_subsidy_fen: Mapped[int] = _measure()
    refunded_full: Mapped[int] = _measure()
    new_spenders: Mapped[int] = _measure()
    new_merchants: Mapped[int] = _measure()


class ParticipantRow(Base):
    """A resident who claimed (`claimer`) or spent (`spender`) in a campaign, once: it makes the
    participants counted in the rollups distinct."""

    __tablename__ = "report_participants"

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    first_day: Mapped[date] = mapped_column(Date)


class AccountBalanceRow(Base):
    """The sum of one ledger account's postings (debit positive), kept from `ledger_postings` by the
    same job: the ledger's figures (settled, recovered, deposited) without summing millions of rows."""

    __tablename__ = "report_account_balances"

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    account: Mapped[str] = mapped_column(String(80), primary_key=True)
    total_fen: Mapped[int] = mapped_column(FenColumn)
    postings: Mapped[int] = mapped_column(_COUNT)
