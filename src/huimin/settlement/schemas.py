"""API shapes of settlement. Amounts are integer fen; bank accounts are shown masked only (the clear
account goes into the bank's clearing file and nowhere else). Unknown fields are refused."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from huimin.settlement import domain
from huimin.settlement.models import RecoveryRow, SettlementLineRow, SettlementRunRow
from huimin.settlement.reconcile import Reconciliation
from huimin.settlement.service import BankImportReport, RunDetail, Statement

__all__ = [
    "BankImportOut",
    "LineOut",
    "PrepareIn",
    "ReconciliationOut",
    "RecoveryIn",
    "RecoveryOut",
    "ReturnIn",
    "RunDetailOut",
    "RunOut",
    "StatementOut",
]


class PrepareIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: str = Field(max_length=32)
    business_day: date


class ReturnIn(BaseModel):
    """退回: why finance returns the run (required, at most 500 characters once trimmed: checked by the
    service, `invalid_return_reason`; the bound here only caps the request)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(max_length=2_000)


class RecoveryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    campaign_id: str = Field(max_length=32)


class RunOut(BaseModel):
    run_id: str
    campaign_id: str
    business_day: date
    status: str
    prepared_by: str
    prepared_at: datetime
    approvals_needed: int
    lines: int
    redemptions: int
    subsidy_fen: int
    netted_fen: int
    total_fen: int
    held: dict[str, Any]
    approved_at: datetime | None
    file_sha256: str | None
    closed_at: datetime | None
    returned_at: datetime | None
    returned_by: str | None
    return_reason: str | None

    @classmethod
    def of(cls, row: SettlementRunRow) -> RunOut:
        return cls(
            run_id=row.id,
            campaign_id=row.campaign_id,
            business_day=row.business_day,
            status=row.status,
            prepared_by=row.prepared_by_name,
            prepared_at=row.prepared_at,
            approvals_needed=row.approvals_needed,
            lines=row.lines,
            redemptions=row.redemptions,
            subsidy_fen=row.subsidy_fen,
            netted_fen=row.netted_fen,
            total_fen=row.total_fen,
            held=row.held,
            approved_at=row.approved_at,
            file_sha256=row.file_sha256,
            closed_at=row.closed_at,
            returned_at=row.returned_at,
            returned_by=row.returned_by_name,
            return_reason=row.return_reason,
        )


class LineOut(BaseModel):
    payout_reference: str
    merchant_id: str
    credit_code: str
    merchant_name: str
    bank_name: str
    account_masked: str
    status: str
    redemptions: int
    subsidy_fen: int
    retry_fen: int
    netted_fen: int
    amount_fen: int
    bank_transaction_id: str | None
    bank_reason: str | None

    @classmethod
    def of(cls, row: SettlementLineRow) -> LineOut:
        return cls(
            payout_reference=domain.payout_reference(row.run_id, row.seq),
            merchant_id=row.merchant_id,
            credit_code=row.credit_code,
            merchant_name=row.legal_name,
            bank_name=row.bank_name,
            account_masked=row.account_masked,
            status=row.status,
            redemptions=row.redemptions,
            subsidy_fen=row.subsidy_fen,
            retry_fen=row.retry_fen,
            netted_fen=row.netted_fen,
            amount_fen=row.amount_fen,
            bank_transaction_id=row.bank_transaction_id,
            bank_reason=row.bank_reason,
        )


class RunDetailOut(RunOut):
    approvers: list[str]
    payouts: list[LineOut]

    @classmethod
    def detail(cls, found: RunDetail) -> RunDetailOut:
        return cls(
            **RunOut.of(found.run).model_dump(),
            approvers=[row.approver_name for row in found.approvals],
            payouts=[LineOut.of(line) for line in found.lines],
        )


class BankImportOut(BaseModel):
    import_id: str
    rows: int
    applied: int
    already_applied: int
    differences: list[dict[str, Any]]

    @classmethod
    def of(cls, report: BankImportReport) -> BankImportOut:
        return cls(
            import_id=report.import_id,
            rows=report.rows,
            applied=report.applied,
            already_applied=report.already_applied,
            differences=[
                {"row": row, "payout_reference": reference, "outcome": outcome}
                for row, reference, outcome in report.differences
            ],
        )


class ReconciliationOut(BaseModel):
    day: date
    runs: int
    payouts: int
    total_fen: int
    clean: bool
    differences: list[dict[str, str]]

    @classmethod
    def of(cls, report: Reconciliation) -> ReconciliationOut:
        return cls(
            day=report.day,
            runs=report.runs,
            payouts=report.payouts,
            total_fen=int(report.total),
            clean=report.clean,
            differences=[
                {"run_id": item.run_id, "what": item.what, "detail": item.detail}
                for item in report.differences
            ],
        )


class RecoveryOut(BaseModel):
    recovery_id: str
    campaign_id: str
    status: str
    amounts: dict[str, dict[str, int]]
    total_fen: int
    requested_by: str
    approved_by: str | None

    @classmethod
    def of(cls, row: RecoveryRow) -> RecoveryOut:
        return cls(
            recovery_id=row.id,
            campaign_id=row.campaign_id,
            status=row.status,
            amounts={
                code: {"unused_budget_fen": parts[0], "expired_fen": parts[1]}
                for code, parts in row.amounts.items()
            },
            total_fen=row.total_fen,
            requested_by=row.requested_by_name,
            approved_by=row.approved_by_name,
        )


class StatementOut(BaseModel):
    campaign_id: str
    funders: list[dict[str, Any]]
    subsidy_paid_fen: int
    clawed_back_fen: int
    clawed_back_collected_fen: int
    outstanding_fen: int
    frozen_fen: int
    in_transit_fen: int
    recovery: RecoveryOut | None

    @classmethod
    def of(cls, found: Statement) -> StatementOut:
        return cls(
            campaign_id=found.campaign_id,
            funders=[
                {
                    "funder": item.funder,
                    "deposited_fen": int(item.deposited),
                    "recovered_fen": int(item.recovered),
                    "unused_fen": int(item.unused),
                    "to_merchants_fen": int(item.to_merchants),
                    "subsidy_paid_fen": int(item.subsidy_paid),
                    "clawed_back_fen": int(item.clawed_back),
                    "outstanding_fen": int(item.outstanding),
                    "frozen_fen": int(item.frozen),
                    "in_transit_fen": int(item.in_transit),
                }
                for item in found.funders
            ],
            subsidy_paid_fen=int(found.subsidy_paid),
            clawed_back_fen=int(found.clawed_back),
            clawed_back_collected_fen=int(found.clawed_back_collected),
            outstanding_fen=int(found.outstanding),
            frozen_fen=int(found.frozen),
            in_transit_fen=int(found.in_transit),
            recovery=RecoveryOut.of(found.recovery) if found.recovery is not None else None,
        )
