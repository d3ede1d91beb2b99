"""Tables of the ledger: transactions and their postings (append-only), and funders' deposits.

Balances are not stored: an account's balance is the SUM of its postings, read through the
(campaign_id, account) index. A balance row per account would be one hot row that every claim of
a flash release updates, serialising them all on PostgreSQL.

The database refuses what the domain refuses (migration 0006 installs it):
- a posting of zero (CHECK) and a repeated (campaign, kind, reference) (UNIQUE: idempotent posting);
- a transaction whose postings do not sum to zero or that has fewer than two: on PostgreSQL by
  DEFERRABLE INITIALLY DEFERRED constraint triggers checked at commit; on SQLite, which has no
  deferred triggers, postings are written first (their foreign key is deferred) and the transaction
  row last, which seals it: a trigger on the transaction's insert checks its postings, and a
  posting for a sealed transaction is refused;
- any UPDATE or DELETE of either table (triggers on both databases): corrections are new transactions.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from huimin.db import Base, FenColumn, UtcDateTime

__all__ = ["DepositRow", "LedgerPostingRow", "LedgerTransactionRow"]

# 64-bit on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY (which is 64-bit there too).
_SERIAL = BigInteger().with_variant(Integer(), "sqlite")


class LedgerTransactionRow(Base):
    """One balanced transaction (记账凭证). `reference` names the business event it records (a voucher,
    a redemption, a refund, a deposit); with `kind` it is unique in a campaign."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (UniqueConstraint("campaign_id", "kind", "reference"),)

    # Made by the application (ltx_…) so that on SQLite the postings can be written before it.
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    kind: Mapped[str] = mapped_column(String(24))
    reference: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)  # business time (the campaign's clock)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, server_default=func.current_timestamp())


class LedgerPostingRow(Base):
    """One leg of a transaction: a signed amount of fen on one account (debit positive)."""

    __tablename__ = "ledger_postings"
    __table_args__ = (
        CheckConstraint("amount_fen <> 0", name="amount_not_zero"),
        # Deferred: on SQLite the postings are written before the transaction that seals them.
        ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            deferrable=True,
            initially="DEFERRED",
        ),
        Index("ix_ledger_postings_campaign_account", "campaign_id", "account"),
    )

    id: Mapped[int] = mapped_column(_SERIAL, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(32), index=True)
    campaign_id: Mapped[str] = mapped_column(String(32))  # the transaction's: balances read postings only
    account: Mapped[str] = mapped_column(String(80))
    amount_fen: Mapped[int] = mapped_column(FenColumn)


class DepositRow(Base):
    """资金拨付: a funder's deposit into a campaign's budget, recorded by the city or the operator and
    approved by the finance bureau (maker-checker: never by the person who recorded it). Approval
    posts the deposit to the ledger in the same transaction."""

    __tablename__ = "ledger_deposits"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("status IN ('requested', 'approved')", name="status_known"),
        CheckConstraint(
            "(status = 'requested' AND approved_by IS NULL AND approved_at IS NULL) OR "
            "(status = 'approved' AND approved_by IS NOT NULL AND approved_at IS NOT NULL)",
            name="approval_complete",
        ),
        CheckConstraint("approved_by IS NULL OR approved_by <> requested_by", name="maker_checker"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    funder_id: Mapped[str] = mapped_column(ForeignKey("funders.id"))
    amount_fen: Mapped[int] = mapped_column(FenColumn)
    note: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_by_name: Mapped[str] = mapped_column(String(64))
    requested_by_role: Mapped[str] = mapped_column(String(32))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_by_name: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    transaction_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_transactions.id"))
