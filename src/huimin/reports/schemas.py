"""API shapes of the reports. Money in integer fen; ratios as decimal strings ("0.4512", "6.77")."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from huimin.reports.domain import Dimension, Figures
from huimin.reports.service import Money, Report

__all__ = ["FiguresOut", "LineOut", "MoneyOut", "ReportOut", "report_out"]


class FiguresOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    released: int | None
    claimed: int | None
    claimed_value_fen: int | None
    held: int | None
    held_fen: int | None
    expired: int | None
    recycled: int | None
    recovered_vouchers: int | None
    redeemed: int
    redemption_rate: str | None
    subsidy_fen: int
    subsidy_confirmed_fen: int
    subsidy_pending_fen: int
    consumption_fen: int
    leverage: str | None
    merchant_discounts_fen: int
    refunds: int
    refund_fen: int
    refund_subsidy_fen: int
    invoices_verified: int
    invoices_rejected: int
    clawed_back: int
    clawed_back_subsidy_fen: int
    residents_claiming: int | None
    residents_redeeming: int
    merchants_redeeming: int


class LineOut(BaseModel):
    key: str
    label: str
    figures: FiguresOut


class FunderMoneyOut(BaseModel):
    code: str
    name: str
    deposited_fen: int
    unclaimed_fen: int
    vouchers_fen: int
    expired_fen: int
    recovered_fen: int


class MoneyOut(BaseModel):
    deposited_fen: int
    unclaimed_fen: int
    vouchers_fen: int
    expired_fen: int
    pending_fen: int
    payable_fen: int
    clearing_fen: int
    settled_fen: int
    receivable_fen: int
    recovered_fen: int
    funders: list[FunderMoneyOut]


class ReportOut(BaseModel):
    campaign_id: str
    campaign_code: str
    campaign_name: str
    scope: str | None
    since: date | None
    until: date | None
    by: Dimension | None
    figures: FiguresOut
    lines: list[LineOut]
    money: MoneyOut | None
    rolled_up_at: datetime | None
    events_behind: int


def figures_out(figures: Figures) -> FiguresOut:
    values = dataclasses.asdict(figures)
    return FiguresOut(
        **{key: str(value) if isinstance(value, Decimal) else value for key, value in values.items()}
    )


def _money_out(money: Money) -> MoneyOut:
    return MoneyOut(
        deposited_fen=money.deposited,
        unclaimed_fen=money.unclaimed,
        vouchers_fen=money.vouchers,
        expired_fen=money.expired,
        pending_fen=money.pending,
        payable_fen=money.payable,
        clearing_fen=money.clearing,
        settled_fen=money.settled,
        receivable_fen=money.receivable,
        recovered_fen=money.recovered,
        funders=[
            FunderMoneyOut(
                code=funder.code,
                name=funder.name,
                deposited_fen=funder.deposited,
                unclaimed_fen=funder.unclaimed,
                vouchers_fen=funder.vouchers,
                expired_fen=funder.expired,
                recovered_fen=funder.recovered,
            )
            for funder in money.funders
        ],
    )


def report_out(report: Report) -> ReportOut:
    return ReportOut(
        campaign_id=report.campaign_id,
        campaign_code=report.campaign_code,
        campaign_name=report.campaign_name,
        scope=None if report.scope is None else report.scope.value,
        since=report.query.since,
        until=report.query.until,
        by=report.query.by,
        figures=figures_out(report.figures),
        lines=[
            LineOut(key=line.key, label=line.label, figures=figures_out(line.figures))
            for line in report.lines
        ],
        money=None if report.money is None else _money_out(report.money),
        rolled_up_at=report.rolled_up_at,
        events_behind=report.events_behind,
    )
