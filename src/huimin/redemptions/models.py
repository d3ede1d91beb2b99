"""Tables of redemptions: the redemption at the till, its refunds, the per-merchant daily counters and
the append-only event log that the ledger and risk monitoring read.

What can be a constraint is one: the purchase arithmetic (subsidy within the voucher's value and the
purchase, refunds within what was paid), at most one holding redemption per voucher, an invoice number
once per campaign, one voucher per order.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from huimin.db import Base, FenColumn, UtcDateTime
from huimin.redemptions.domain import HOLDS_VOUCHER, RedemptionStatus

__all__ = ["MerchantDayCounterRow", "RedemptionEventRow", "RedemptionRow", "RefundRow"]

_HOLDING = "status IN ({})".format(", ".join(f"'{status.value}'" for status in sorted(HOLDS_VOUCHER)))


class RedemptionRow(Base):
    """核销: one voucher used in one purchase at an active merchant's till."""

    __tablename__ = "redemptions"
    __table_args__ = (
        CheckConstraint(
            "status IN ({})".format(", ".join(f"'{status.value}'" for status in RedemptionStatus)),
            name="status_known",
        ),
        CheckConstraint("order_fen > 0", name="order_positive"),
        CheckConstraint(
            "merchant_discount_fen >= 0 AND merchant_discount_fen < order_fen", name="discount_within"
        ),
        CheckConstraint(
            "subsidy_fen > 0 AND subsidy_fen <= voucher_value_fen AND subsidy_fen <= order_fen - merchant_discount_fen",
            name="subsidy_within",
        ),
        CheckConstraint(
            "refunded_fen >= 0 AND refunded_fen <= order_fen - merchant_discount_fen",
            name="refund_within_paid",
        ),
        CheckConstraint(
            "subsidy_returned_fen >= 0 AND subsidy_returned_fen <= subsidy_fen",
            name="subsidy_returned_within",
        ),
        CheckConstraint(
            "(sales_invoice_no IS NULL) = (sales_invoice_fen IS NULL)", name="sales_invoice_complete"
        ),
        # The double-spend guard the database keeps: one holding redemption per voucher.
        Index(
            "uq_redemptions_voucher_holding",
            "voucher_id",
            unique=True,
            sqlite_where=text(_HOLDING),
            postgresql_where=text(_HOLDING),
        ),
        Index(
            "uq_redemptions_sales_invoice",
            "campaign_id",
            "sales_invoice_no",
            unique=True,
            sqlite_where=text("sales_invoice_no IS NOT NULL AND status <> 'rejected'"),
            postgresql_where=text("sales_invoice_no IS NOT NULL AND status <> 'rejected'"),
        ),
        Index(
            "uq_redemptions_tax_invoice",
            "campaign_id",
            "tax_invoice_no",
            unique=True,
            sqlite_where=text("tax_invoice_no IS NOT NULL AND status <> 'rejected'"),
            postgresql_where=text("tax_invoice_no IS NOT NULL AND status <> 'rejected'"),
        ),
        Index(
            "uq_redemptions_order",
            "merchant_id",
            "order_ref",
            unique=True,
            sqlite_where=text(f"order_ref IS NOT NULL AND {_HOLDING}"),
            postgresql_where=text(f"order_ref IS NOT NULL AND {_HOLDING}"),
        ),
        Index("ix_redemptions_merchant_day", "merchant_id", "business_day"),
        Index("ix_redemptions_campaign_status", "campaign_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    voucher_id: Mapped[str] = mapped_column(ForeignKey("vouchers.id"))
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"))
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    terminal_id: Mapped[str] = mapped_column(String(32))
    partner_id: Mapped[str] = mapped_column(String(32))  # the terminal partner that sent it
    jurisdiction: Mapped[str] = mapped_column(String(16))  # the merchant's, for county scope
    category: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    order_fen: Mapped[int] = mapped_column(FenColumn)
    merchant_discount_fen: Mapped[int] = mapped_column(FenColumn)
    voucher_value_fen: Mapped[int] = mapped_column(FenColumn)  # what the voucher reserved
    subsidy_fen: Mapped[int] = mapped_column(FenColumn)
    refunded_fen: Mapped[int] = mapped_column(FenColumn, default=0)
    subsidy_returned_fen: Mapped[int] = mapped_column(FenColumn, default=0)
    order_ref: Mapped[str | None] = mapped_column(String(64))
    sales_invoice_no: Mapped[str | None] = mapped_column(String(32))
    sales_invoice_fen: Mapped[int | None] = mapped_column(FenColumn)
    tax_invoice_no: Mapped[str | None] = mapped_column(String(32))
    redeemed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    business_day: Mapped[date] = mapped_column(Date)  # local (Asia/Shanghai) day of the redemption
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    verified_by: Mapped[str | None] = mapped_column(String(64))
    verification_note: Mapped[str | None] = mapped_column(Text)
    settlement_id: Mapped[str | None] = mapped_column(String(32))  # set by the settlement run
    idempotency_key: Mapped[str | None] = mapped_column(String(128))


class RefundRow(Base):
    """退款: part or all of a redeemed purchase given back, with the subsidy it returns to the pool."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint(
            "subsidy_returned_fen >= 0 AND subsidy_returned_fen <= amount_fen", name="subsidy_within"
        ),
        CheckConstraint("resident_refund_fen = amount_fen - subsidy_returned_fen", name="parts_add_up"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    redemption_id: Mapped[str] = mapped_column(ForeignKey("redemptions.id"), index=True)
    amount_fen: Mapped[int] = mapped_column(FenColumn)
    subsidy_returned_fen: Mapped[int] = mapped_column(FenColumn)
    resident_refund_fen: Mapped[int] = mapped_column(FenColumn)
    voucher_restored: Mapped[bool] = mapped_column(Boolean)
    partner_id: Mapped[str] = mapped_column(String(32))
    refunded_at: Mapped[datetime] = mapped_column(UtcDateTime)
    business_day: Mapped[date] = mapped_column(Date)
    idempotency_key: Mapped[str | None] = mapped_column(String(128))

    redemption: Mapped[RedemptionRow] = relationship(lazy="raise")  # orders inserts: the redemption first


class MerchantDayCounterRow(Base):
    """How many vouchers of a batch a merchant has redeemed on a local day (SPEC §4.4, per merchant per
    day), incremented by a conditional upsert that fails at the batch's limit. Refunds do not give the
    count back: the cap limits activity at the till, which a refund does not undo."""

    __tablename__ = "merchant_day_counters"
    __table_args__ = (CheckConstraint("redeemed >= 0", name="redeemed_not_negative"),)

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    redeemed: Mapped[int] = mapped_column(Integer)


class RedemptionEventRow(Base):
    """Append-only: every redemption, verification, rejection and refund, in order, with the amounts it
    moves. Risk monitoring reads it by `id`; the ledger postings are written beside it."""

    __tablename__ = "redemption_events"
    __table_args__ = (
        CheckConstraint("kind IN ('redeemed', 'verified', 'rejected', 'refunded')", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    redemption_id: Mapped[str] = mapped_column(ForeignKey("redemptions.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(String(32), index=True)
    person_id: Mapped[str] = mapped_column(String(32))
    amount_fen: Mapped[int] = mapped_column(FenColumn)  # the order, the refund, or the subsidy verified
    subsidy_fen: Mapped[int] = mapped_column(FenColumn)  # subsidy granted (+) or returned (-)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)

    redemption: Mapped[RedemptionRow] = relationship(lazy="raise")  # orders inserts: the redemption first
