"""Tables of settlement: per-campaign settings, runs with their approvals and payout lines, the bank's
confirmations, what merchants owe back (receivables) and how it was collected, clawbacks, recoveries.

What can be a constraint is one: one live run per campaign and business day (a returned run steps
aside, so the day can be prepared again); a returned run says who returned it, when and why; a line's amount is its
subsidy less its set-off; the preparer never approves (a CHECK on a copy of the preparer beside each
approval); a recovery is approved by someone other than its requester; collected never exceeds owed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from huimin.db import Base, FenColumn, UtcDateTime
from huimin.settlement.domain import LineStatus, RunStatus

__all__ = [
    "BankConfirmationRow",
    "BankImportRow",
    "ClawbackRow",
    "CollectionRow",
    "ReceivableRow",
    "RecoveryRow",
    "SettlementApprovalRow",
    "SettlementBookRow",
    "SettlementItemRow",
    "SettlementLineRow",
    "SettlementRunRow",
]


def _one_of(column: str, values: type[Any]) -> str:
    return f"{column} IN ({', '.join(repr(str(value.value)) for value in values)})"


class SettlementBookRow(Base):
    """A campaign's settlement settings, and the row that serialises its runs, bank imports and
    clawbacks (locked FOR UPDATE by each)."""

    __tablename__ = "settlement_books"
    __table_args__ = (
        CheckConstraint("lag_days >= 0", name="lag_not_negative"),
        CheckConstraint("dual_approval_above_fen > 0", name="threshold_positive"),
    )

    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), primary_key=True)
    lag_days: Mapped[int] = mapped_column(Integer)  # T+lag; 1 by default
    dual_approval_above_fen: Mapped[int] = mapped_column(FenColumn)


class SettlementRunRow(Base):
    """结算批次: the payouts of one campaign's business day (and everything due before it)."""

    __tablename__ = "settlement_runs"
    __table_args__ = (
        # One live run per day; returned runs (any number) stay beside it as history.
        Index(
            "uq_settlement_runs_live_day",
            "campaign_id",
            "business_day",
            unique=True,
            sqlite_where=text("status <> 'returned'"),
            postgresql_where=text("status <> 'returned'"),
        ),
        CheckConstraint(_one_of("status", RunStatus), name="status_known"),
        CheckConstraint("approvals_needed IN (1, 2)", name="approvals_known"),
        CheckConstraint(
            "total_fen >= 0 AND netted_fen >= 0 AND subsidy_fen = total_fen + netted_fen", name="totals"
        ),
        CheckConstraint(
            "status IN ('prepared', 'returned') OR approved_at IS NOT NULL", name="approval_recorded"
        ),
        CheckConstraint(
            "(status = 'returned') = (returned_at IS NOT NULL AND returned_by IS NOT NULL "
            "AND return_reason IS NOT NULL AND approved_at IS NULL)",
            name="return_recorded",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    business_day: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    prepared_by: Mapped[str] = mapped_column(String(64))
    prepared_by_name: Mapped[str] = mapped_column(String(64))
    prepared_at: Mapped[datetime] = mapped_column(UtcDateTime)
    approvals_needed: Mapped[int] = mapped_column(Integer)
    lines: Mapped[int] = mapped_column(Integer, default=0)
    redemptions: Mapped[int] = mapped_column(Integer, default=0)
    subsidy_fen: Mapped[int] = mapped_column(FenColumn, default=0)  # net of refunds
    netted_fen: Mapped[int] = mapped_column(FenColumn, default=0)  # set off against receivables
    total_fen: Mapped[int] = mapped_column(FenColumn, default=0)  # to pay: subsidy − netted
    # Money not in the run, reported: frozen subsidy of suspended or expelled merchants, and
    # big-ticket redemptions still awaiting the county's verification.
    held: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    file_sha256: Mapped[str | None] = mapped_column(String(64))  # of the clearing file, fixed at approval
    file_payouts: Mapped[int | None] = mapped_column(Integer)
    file_total_fen: Mapped[int | None] = mapped_column(FenColumn)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # 退回: finance refused the run; its lines are `returned` and nothing was posted.
    returned_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    returned_by: Mapped[str | None] = mapped_column(String(64))
    returned_by_name: Mapped[str | None] = mapped_column(String(64))
    return_reason: Mapped[str | None] = mapped_column(String(500))


class SettlementApprovalRow(Base):
    """One finance approval of a run. The preparer is copied beside it so that the database itself
    refuses an approval by the preparer (maker-checker, SPEC §11.3)."""

    __tablename__ = "settlement_approvals"
    __table_args__ = (CheckConstraint("approver <> prepared_by", name="maker_checker"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("settlement_runs.id"), primary_key=True)
    approver: Mapped[str] = mapped_column(String(64), primary_key=True)
    approver_name: Mapped[str] = mapped_column(String(64))
    approver_role: Mapped[str] = mapped_column(String(32))
    prepared_by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class SettlementLineRow(Base):
    """One merchant's payout in a run (付款明细). The merchant's name and accounts are copied at
    preparation, the account still sealed: the clearing file is the same whenever it is made."""

    __tablename__ = "settlement_lines"
    __table_args__ = (
        UniqueConstraint("run_id", "seq"),
        CheckConstraint(_one_of("status", LineStatus), name="status_known"),
        CheckConstraint(
            "subsidy_fen >= 0 AND netted_fen >= 0 AND netted_fen <= subsidy_fen "
            "AND amount_fen = subsidy_fen - netted_fen AND retry_fen >= 0",
            name="amounts_add_up",
        ),
        CheckConstraint("status <> 'sent' OR amount_fen > 0", name="sent_is_positive"),
        Index("ix_settlement_lines_merchant_status", "merchant_id", "status"),
    )

    run_id: Mapped[str] = mapped_column(ForeignKey("settlement_runs.id"), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    redemptions: Mapped[int] = mapped_column(Integer, default=0)
    subsidy_fen: Mapped[int] = mapped_column(FenColumn, default=0)  # Σ subsidy − returned
    retry_fen: Mapped[int] = mapped_column(FenColumn, default=0)  # of which from failed payouts
    netted_fen: Mapped[int] = mapped_column(FenColumn, default=0)  # set off against receivable:m
    amount_fen: Mapped[int] = mapped_column(FenColumn, default=0)  # paid to the merchant
    credit_code: Mapped[str] = mapped_column(String(18))
    legal_name: Mapped[str] = mapped_column(String(200))
    bank_name: Mapped[str] = mapped_column(String(100))
    account_masked: Mapped[str] = mapped_column(String(40))
    account_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    bank_transaction_id: Mapped[str | None] = mapped_column(String(64))
    bank_reason: Mapped[str | None] = mapped_column(String(200))
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    retried_in_run_id: Mapped[str | None] = mapped_column(String(32))  # failed or frozen: the next run


class SettlementItemRow(Base):
    """A redemption in a run's line (明细), written at preparation by one INSERT … SELECT. A narrow row
    with one index costs far less than updating the wide, eight-times-indexed redemption; and no
    foreign keys, whose per-row triggers would cost more than the insert (one million redemptions in
    seconds, docs/benchmarks.md): the rows come from `redemptions` and `settlement_lines` in the very
    statement that writes them. The redemption's own `settlement_id` is written once, with
    `status = settled`, when the bank confirms the payout. A redemption is in settlement while it has
    an item in a line `prepared` or `sent`; a failed or frozen line lets it go again."""

    __tablename__ = "settlement_items"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    redemption_id: Mapped[str] = mapped_column(String(32), primary_key=True)


class BankImportRow(Base):
    """One confirmation file received from the bank, by its SHA-256 (re-importing it changes nothing)."""

    __tablename__ = "settlement_bank_imports"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    file_sha256: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(Integer)
    applied: Mapped[int] = mapped_column(Integer)
    reported: Mapped[int] = mapped_column(Integer)
    imported_by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class BankConfirmationRow(Base):
    """Each row of a bank file as read, with what became of it: `applied`, `already_applied`, or a
    difference reported and not applied (`unknown_reference`, `amount_mismatch`, `duplicate`,
    `conflict`)."""

    __tablename__ = "settlement_bank_confirmations"
    __table_args__ = (Index("ix_settlement_bank_confirmations_reference", "reference"),)

    import_id: Mapped[str] = mapped_column(ForeignKey("settlement_bank_imports.id"), primary_key=True)
    row: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(FenColumn)
    status: Mapped[str] = mapped_column(String(16))
    bank_transaction_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str] = mapped_column(String(24))
    run_id: Mapped[str | None] = mapped_column(String(32), index=True)


class ReceivableRow(Base):
    """Money a merchant owes back (应收): the subsidy of a refund after it was paid, or of a settled
    redemption clawed back. Collected oldest first by set-offs; each part goes back to the funders of
    the redemption it came from."""

    __tablename__ = "settlement_receivables"
    __table_args__ = (
        UniqueConstraint("origin", "origin_id"),
        CheckConstraint("origin IN ('refund', 'clawback')", name="origin_known"),
        CheckConstraint(
            "amount_fen > 0 AND collected_fen >= 0 AND collected_fen <= amount_fen", name="collected_within"
        ),
        Index("ix_settlement_receivables_merchant", "merchant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"))
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    origin: Mapped[str] = mapped_column(String(16))
    origin_id: Mapped[str] = mapped_column(String(32))  # the refund, or the redemption clawed back
    redemption_id: Mapped[str] = mapped_column(ForeignKey("redemptions.id"))
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"))
    amount_fen: Mapped[int] = mapped_column(FenColumn)
    collected_fen: Mapped[int] = mapped_column(FenColumn, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class CollectionRow(Base):
    """One part of a receivable collected by a set-off (a run's line, or a clawback); a failed payout
    gives its line's parts back."""

    __tablename__ = "settlement_collections"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount_positive"),
        CheckConstraint("source IN ('line', 'clawback')", name="source_known"),
        Index("ix_settlement_collections_source", "source", "source_ref"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    receivable_id: Mapped[str] = mapped_column(ForeignKey("settlement_receivables.id"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    source_ref: Mapped[str] = mapped_column(String(64))  # the payout reference, or the clawback id
    amount_fen: Mapped[int] = mapped_column(FenColumn)
    reversed: Mapped[bool] = mapped_column(default=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class ClawbackRow(Base):
    """追回 of an expelled merchant: its settled subsidy made owed back, the frozen subsidy still owed
    to it set off, and what remains outstanding."""

    __tablename__ = "settlement_clawbacks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("merchant_events.id"), unique=True)
    redemptions: Mapped[int] = mapped_column(Integer)
    clawed_back_fen: Mapped[int] = mapped_column(FenColumn)
    setoff_fen: Mapped[int] = mapped_column(FenColumn)
    outstanding_fen: Mapped[int] = mapped_column(FenColumn)  # receivable:m left after this
    frozen_fen: Mapped[int] = mapped_column(FenColumn)  # payable:m left after this
    at: Mapped[datetime] = mapped_column(UtcDateTime)


class RecoveryRow(Base):
    """回收 at the campaign's end: the amounts fixed when requested, posted when approved by someone
    else (maker-checker, also a CHECK)."""

    __tablename__ = "settlement_recoveries"
    __table_args__ = (
        CheckConstraint("status IN ('requested', 'approved')", name="status_known"),
        CheckConstraint("approved_by IS NULL OR approved_by <> requested_by", name="maker_checker"),
        CheckConstraint("(status = 'approved') = (approved_by IS NOT NULL)", name="approval_recorded"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    # {funder code: [unused budget, expired value]} in fen, as the ledger held them when requested.
    amounts: Mapped[dict[str, list[int]]] = mapped_column(JSON)
    total_fen: Mapped[int] = mapped_column(FenColumn)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_by_name: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_by_name: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    transaction_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_transactions.id"))
