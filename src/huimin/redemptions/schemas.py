"""API shapes of redemptions, refunds and invoice verification. Amounts are integer fen; what the
server computes (subsidy, status, ids) can never be sent by a client (unknown fields are refused)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from huimin.campaigns.models import BatchRow
from huimin.campaigns.schemas import CategoryTerm
from huimin.kit.money import Fen
from huimin.merchants.models import MerchantRow
from huimin.redemptions.domain import RedemptionStatus
from huimin.redemptions.models import RedemptionRow, RefundRow
from huimin.redemptions.service import Invoice, RedemptionRequest

__all__ = [
    "InvoiceIn",
    "RedemptionIn",
    "RedemptionOut",
    "RefundIn",
    "RefundOut",
    "StaffRedemptionOut",
    "VerificationIn",
    "redemption_out",
    "refund_out",
    "staff_redemption_out",
]

_MAX_FEN = 10_000_000_000  # 100 million yuan: far above any purchase, far below any overflow


class InvoiceIn(BaseModel):
    """发票: the sales invoice (number and amount) and the tax invoice number of a big-ticket purchase."""

    model_config = ConfigDict(extra="forbid")

    sales_invoice_no: str = Field(min_length=8, max_length=32, pattern=r"^[0-9A-Za-z]+$")
    sales_invoice_amount_fen: int = Field(gt=0, le=_MAX_FEN)
    tax_invoice_no: str = Field(min_length=8, max_length=32, pattern=r"^[0-9A-Za-z]+$")


class RedemptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voucher_code: str = Field(
        min_length=17, max_length=40, description="as scanned (the QR payload) or typed, dashes allowed"
    )
    merchant_id: str = Field(min_length=1, max_length=32)
    terminal_id: str = Field(min_length=1, max_length=32)
    order_amount_fen: int = Field(gt=0, le=_MAX_FEN, description="the till's amount before any discount")
    merchant_discount_fen: int = Field(
        default=0, ge=0, le=_MAX_FEN, description="the merchant's own promotion, stacked with the voucher"
    )
    category: CategoryTerm = Field(
        description="the purchase's category: catering, retail, … or 餐饮, 零售, …"
    )
    order_ref: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="the till's order number: a second voucher on the same order is refused",
    )
    invoice: InvoiceIn | None = Field(
        default=None, description="required for big-ticket (car, appliance) vouchers"
    )

    @model_validator(mode="after")
    def _discount_below_order(self) -> Self:
        if self.merchant_discount_fen >= self.order_amount_fen:
            raise ValueError("merchant_discount_fen must be less than order_amount_fen")
        return self

    def to_request(self) -> RedemptionRequest:
        code = self.voucher_code.strip()
        if code.upper().startswith("HUIMIN:V1:"):  # the QR payload of the wallet
            code = code[len("HUIMIN:V1:") :]
        return RedemptionRequest(
            voucher_code=code,
            merchant_id=self.merchant_id,
            terminal_id=self.terminal_id,
            order_amount=Fen(self.order_amount_fen),
            merchant_discount=Fen(self.merchant_discount_fen),
            category=self.category,
            order_ref=self.order_ref,
            invoice=(
                Invoice(
                    sales_invoice_no=self.invoice.sales_invoice_no.upper(),
                    sales_invoice_fen=Fen(self.invoice.sales_invoice_amount_fen),
                    tax_invoice_no=self.invoice.tax_invoice_no.upper(),
                )
                if self.invoice
                else None
            ),
        )


class RedemptionOut(BaseModel):
    redemption_id: str
    status: RedemptionStatus
    voucher_id: str
    merchant_id: str
    terminal_id: str
    order_amount_fen: int
    merchant_discount_fen: int
    subsidy_fen: int = Field(description="what the voucher pays (the government subsidy)")
    resident_pays_fen: int = Field(description="what the resident pays at the till")
    refunded_fen: int
    redeemed_at: datetime


def redemption_out(row: RedemptionRow) -> RedemptionOut:
    payable = row.order_fen - row.merchant_discount_fen
    return RedemptionOut(
        redemption_id=row.id,
        status=RedemptionStatus(row.status),
        voucher_id=row.voucher_id,
        merchant_id=row.merchant_id,
        terminal_id=row.terminal_id,
        order_amount_fen=row.order_fen,
        merchant_discount_fen=row.merchant_discount_fen,
        subsidy_fen=row.subsidy_fen,
        resident_pays_fen=payable - row.subsidy_fen,
        refunded_fen=row.refunded_fen,
        redeemed_at=row.redeemed_at,
    )


class RefundIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_fen: int = Field(gt=0, le=_MAX_FEN, description="the part of the purchase given back")


class RefundOut(BaseModel):
    refund_id: str
    redemption_id: str
    amount_fen: int
    subsidy_returned_fen: int = Field(description="the voucher's share, returned to the campaign's pool")
    resident_refund_fen: int = Field(description="what the merchant gives back to the resident")
    voucher_restored: bool
    redemption_status: RedemptionStatus
    refunded_at: datetime


def refund_out(refund: RefundRow, redemption: RedemptionRow) -> RefundOut:
    return RefundOut(
        refund_id=refund.id,
        redemption_id=refund.redemption_id,
        amount_fen=refund.amount_fen,
        subsidy_returned_fen=refund.subsidy_returned_fen,
        resident_refund_fen=refund.resident_refund_fen,
        voucher_restored=refund.voucher_restored,
        redemption_status=RedemptionStatus(redemption.status),
        refunded_at=refund.refunded_at,
    )


class VerificationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approve: bool
    note: str = Field(default="", max_length=500, description="required when rejecting")


class StaffRedemptionOut(RedemptionOut):
    batch_code: str
    batch_name: str
    merchant_name: str
    jurisdiction: str
    category: str
    business_day: date
    sales_invoice_no: str | None
    sales_invoice_amount_fen: int | None
    tax_invoice_no: str | None
    verified_at: datetime | None
    verification_note: str | None


def staff_redemption_out(row: RedemptionRow, batch: BatchRow, merchant: MerchantRow) -> StaffRedemptionOut:
    return StaffRedemptionOut(
        **redemption_out(row).model_dump(),
        batch_code=batch.code,
        batch_name=batch.name,
        merchant_name=merchant.legal_name,
        jurisdiction=row.jurisdiction,
        category=row.category,
        business_day=row.business_day,
        sales_invoice_no=row.sales_invoice_no,
        sales_invoice_amount_fen=row.sales_invoice_fen,
        tax_invoice_no=row.tax_invoice_no,
        verified_at=row.verified_at,
        verification_note=row.verification_note,
    )
