"""Queries of the reports: sums of rollup rows (never the raw logs), plus the few small tables a figure
needs besides (the rounds' stock, the merchants, the clawed-back redemptions)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, null, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from huimin.campaigns.models import BatchRow, RoundBatchRow, RoundRow
from huimin.claims.models import StockMovementRow, VoucherEventRow, VoucherRow
from huimin.kit.clock import local_date
from huimin.ledger.models import LedgerPostingRow
from huimin.merchants.models import MerchantRow
from huimin.redemptions.models import RedemptionEventRow, RedemptionRow
from huimin.reports.domain import Dimension, RedemptionMeasures, VoucherMeasures
from huimin.reports.models import (
    AccountBalanceRow,
    MerchantTotalRow,
    RedemptionDayRow,
    ReportCursorRow,
    VoucherDayRow,
)

__all__ = ["ALL", "Clawbacks", "Filter", "MerchantLine", "ReportRepository"]

ALL = "*"  # a rollup row's value of a dimension it sums over (reports/rollup.py writes them)

Key = Any  # a breakdown key: a date, an id or a term's code; None for the whole set


@dataclass(frozen=True)
class Filter:
    """Which buckets a figure sums. `districts` narrows the claims (where the resident was),
    `jurisdictions` the redemptions (the merchant's); None means every one."""

    since: date | None = None
    until: date | None = None
    round_id: str | None = None
    batch_id: str | None = None
    districts: Sequence[str] | None = None
    jurisdictions: Sequence[str] | None = None
    category: str | None = None
    merchant_class: str | None = None


@dataclass(frozen=True)
class Clawbacks:
    count: int = 0
    payable_fen: int = 0  # net of refunds
    subsidy_fen: int = 0  # net of refunds


@dataclass(frozen=True)
class MerchantLine:
    merchant_id: str
    name: str
    jurisdiction: str
    category: str
    merchant_class: str
    status: str
    first_day: date
    last_day: date
    measures: RedemptionMeasures


_VOUCHER_GROUPS: dict[Dimension, InstrumentedAttribute[Any]] = {
    Dimension.DAY: VoucherDayRow.day,
    Dimension.WEEK: VoucherDayRow.day,
    Dimension.ROUND: VoucherDayRow.round_id,
    Dimension.BATCH: VoucherDayRow.batch_id,
    Dimension.DISTRICT: VoucherDayRow.district,
}
_REDEMPTION_GROUPS: dict[Dimension, InstrumentedAttribute[Any]] = {
    Dimension.DAY: RedemptionDayRow.day,
    Dimension.WEEK: RedemptionDayRow.day,
    Dimension.ROUND: RedemptionDayRow.round_id,
    Dimension.BATCH: RedemptionDayRow.batch_id,
    Dimension.DISTRICT: RedemptionDayRow.jurisdiction,  # mapped to its district by the service
    Dimension.JURISDICTION: RedemptionDayRow.jurisdiction,
    Dimension.CATEGORY: RedemptionDayRow.category,
    Dimension.MERCHANT_CLASS: RedemptionDayRow.merchant_class,
}


class ReportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def voucher_measures(
        self, campaign_id: str, where: Filter, by: Dimension | None
    ) -> dict[Key, VoucherMeasures]:
        group = None if by is None else _VOUCHER_GROUPS[by]
        conditions: list[ColumnElement[bool]] = [VoucherDayRow.campaign_id == campaign_id]
        conditions += _common(VoucherDayRow, where)
        if where.districts is not None:
            conditions.append(VoucherDayRow.district.in_(where.districts))
        elif by is Dimension.DISTRICT:
            conditions.append(VoucherDayRow.district != ALL)
        else:
            conditions.append(VoucherDayRow.district == ALL)  # the rows that sum over the districts
        sums = [func.coalesce(func.sum(getattr(VoucherDayRow, name)), 0) for name in VoucherMeasures.names()]
        return {
            key: VoucherMeasures(*(int(value) for value in values))
            for key, *values in await self.session.execute(_grouped(sums, group, conditions))
        }

    async def redemption_measures(
        self, campaign_id: str, where: Filter, by: Dimension | None
    ) -> dict[Key, RedemptionMeasures]:
        group = None if by is None else _REDEMPTION_GROUPS[by]
        conditions: list[ColumnElement[bool]] = [RedemptionDayRow.campaign_id == campaign_id]
        conditions += _common(RedemptionDayRow, where)
        conditions += _slice(where, by)
        if where.jurisdictions is not None:
            conditions.append(RedemptionDayRow.jurisdiction.in_(where.jurisdictions))
        if where.category is not None:
            conditions.append(RedemptionDayRow.category == where.category)
        if where.merchant_class is not None:
            conditions.append(RedemptionDayRow.merchant_class == where.merchant_class)
        sums = [
            func.coalesce(func.sum(getattr(RedemptionDayRow, name)), 0) for name in RedemptionMeasures.names()
        ]
        return {
            key: RedemptionMeasures(*(int(value) for value in values))
            for key, *values in await self.session.execute(_grouped(sums, group, conditions))
        }

    async def clawbacks(self, campaign_id: str, where: Filter, by: Dimension | None) -> dict[Key, Clawbacks]:
        """Clawed-back redemptions (rare: an expelled merchant's), read from the redemptions through their
        (campaign, status) index, on their business day."""
        groups: dict[Dimension, Any] = {
            Dimension.DAY: RedemptionRow.business_day,
            Dimension.WEEK: RedemptionRow.business_day,
            Dimension.ROUND: VoucherRow.round_id,
            Dimension.BATCH: RedemptionRow.batch_id,
            Dimension.DISTRICT: RedemptionRow.jurisdiction,
            Dimension.JURISDICTION: RedemptionRow.jurisdiction,
            Dimension.CATEGORY: RedemptionRow.category,
            Dimension.MERCHANT_CLASS: MerchantRow.merchant_class,
        }
        group = None if by is None else groups[by]
        conditions: list[ColumnElement[bool]] = [
            RedemptionRow.campaign_id == campaign_id,
            RedemptionRow.status == "clawed_back",
        ]
        if where.since is not None:
            conditions.append(RedemptionRow.business_day >= where.since)
        if where.until is not None:
            conditions.append(RedemptionRow.business_day <= where.until)
        if where.round_id is not None:
            conditions.append(VoucherRow.round_id == where.round_id)
        if where.batch_id is not None:
            conditions.append(RedemptionRow.batch_id == where.batch_id)
        if where.jurisdictions is not None:
            conditions.append(RedemptionRow.jurisdiction.in_(where.jurisdictions))
        if where.category is not None:
            conditions.append(RedemptionRow.category == where.category)
        if where.merchant_class is not None:
            conditions.append(MerchantRow.merchant_class == where.merchant_class)
        sums = [
            func.count(),
            func.coalesce(
                func.sum(
                    RedemptionRow.order_fen - RedemptionRow.merchant_discount_fen - RedemptionRow.refunded_fen
                ),
                0,
            ),
            func.coalesce(func.sum(RedemptionRow.subsidy_fen - RedemptionRow.subsidy_returned_fen), 0),
        ]
        query = (
            _grouped(sums, group, conditions)
            .select_from(RedemptionRow)
            .join(VoucherRow, VoucherRow.id == RedemptionRow.voucher_id)
            .join(MerchantRow, MerchantRow.id == RedemptionRow.merchant_id)
        )
        return {
            key: Clawbacks(int(count), int(payable), int(subsidy))
            for key, count, payable, subsidy in await self.session.execute(query)
            if count
        }

    async def released(self, campaign_id: str, now: datetime) -> list[tuple[str, str, date, int]]:
        """(round, batch, local opening day, vouchers released) of every round that has opened: its
        planned stock and the expired vouchers recycled into it (unclaimed stock carried forward was
        released once already)."""
        planned = await self.session.execute(
            select(RoundBatchRow.round_id, RoundBatchRow.batch_id, RoundRow.opens_at, RoundBatchRow.stock)
            .join(RoundRow, RoundRow.id == RoundBatchRow.round_id)
            .where(RoundRow.campaign_id == campaign_id, RoundRow.opens_at <= now)
        )
        recycled = dict(
            (tuple(key[:2]), int(key[2]))
            for key in await self.session.execute(
                select(
                    StockMovementRow.to_round_id,
                    StockMovementRow.batch_id,
                    func.sum(StockMovementRow.quantity),
                )
                .join(RoundRow, RoundRow.id == StockMovementRow.to_round_id)
                .where(
                    RoundRow.campaign_id == campaign_id,
                    RoundRow.opens_at <= now,
                    StockMovementRow.kind == "expired",
                )
                .group_by(StockMovementRow.to_round_id, StockMovementRow.batch_id)
            )
        )
        return [
            (round_id, batch_id, local_date(opens_at), int(stock) + recycled.get((round_id, batch_id), 0))
            for round_id, batch_id, opens_at, stock in planned
        ]

    async def names(self, campaign_id: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """(round id → code, batch id → name, batch id → code) of a campaign, for labels."""
        rounds = dict(
            (row[0], row[1])
            for row in await self.session.execute(
                select(RoundRow.id, RoundRow.code).where(RoundRow.campaign_id == campaign_id)
            )
        )
        batches = (
            await self.session.execute(
                select(BatchRow.id, BatchRow.name, BatchRow.code)
                .where(BatchRow.campaign_id == campaign_id)
                .order_by(BatchRow.position)
            )
        ).all()
        return rounds, {row[0]: row[1] for row in batches}, {row[0]: row[2] for row in batches}

    async def round_order(self, campaign_id: str) -> list[tuple[str, str, datetime]]:
        return [
            (row[0], row[1], row[2])
            for row in await self.session.execute(
                select(RoundRow.id, RoundRow.code, RoundRow.opens_at)
                .where(RoundRow.campaign_id == campaign_id)
                .order_by(RoundRow.opens_at, RoundRow.code)
            )
        ]

    async def account_balances(
        self, campaign_id: str, accounts: Sequence[str] | None = None
    ) -> dict[str, int]:
        """Ledger accounts' sums of postings (debit positive), as far as the rollup has read: the named
        `accounts` or every one. `kind:*` is the total of a kind's accounts."""
        query = select(AccountBalanceRow.account, AccountBalanceRow.total_fen).where(
            AccountBalanceRow.campaign_id == campaign_id
        )
        if accounts is not None:
            query = query.where(AccountBalanceRow.account.in_(accounts))
        return {account: int(total) for account, total in await self.session.execute(query)}

    async def merchants_by_status(
        self, campaign_id: str, jurisdictions: Sequence[str] | None
    ) -> list[tuple[str, str, str, str, int]]:
        """(status, jurisdiction, category, class, merchants): a few thousand merchants at most."""
        query = select(
            MerchantRow.status,
            MerchantRow.jurisdiction,
            MerchantRow.category,
            MerchantRow.merchant_class,
            func.count(),
        ).where(MerchantRow.campaign_id == campaign_id)
        if jurisdictions is not None:
            query = query.where(MerchantRow.jurisdiction.in_(jurisdictions))
        query = query.group_by(
            MerchantRow.status, MerchantRow.jurisdiction, MerchantRow.category, MerchantRow.merchant_class
        )
        return [(row[0], row[1], row[2], row[3], int(row[4])) for row in await self.session.execute(query)]

    async def merchant_lines(
        self, campaign_id: str, jurisdictions: Sequence[str] | None, limit: int | None = None
    ) -> list[MerchantLine]:
        """Merchants with redemptions, by the subsidy they earned (net), largest first."""
        net = (
            MerchantTotalRow.subsidy_fen
            - MerchantTotalRow.rejected_subsidy_fen
            - MerchantTotalRow.refund_subsidy_fen
        )
        query = (
            select(MerchantTotalRow, MerchantRow)
            .join(MerchantRow, MerchantRow.id == MerchantTotalRow.merchant_id)
            .where(MerchantTotalRow.campaign_id == campaign_id)
            .order_by(net.desc(), MerchantRow.legal_name)
            .limit(limit)
        )
        if jurisdictions is not None:
            query = query.where(MerchantTotalRow.jurisdiction.in_(jurisdictions))
        return [
            MerchantLine(
                merchant_id=merchant.id,
                name=merchant.legal_name,
                jurisdiction=merchant.jurisdiction,
                category=merchant.category,
                merchant_class=merchant.merchant_class,
                status=merchant.status,
                first_day=total.first_day,
                last_day=total.last_day,
                measures=RedemptionMeasures(*(getattr(total, name) for name in RedemptionMeasures.names())),
            )
            for total, merchant in (await self.session.execute(query)).all()
        ]

    async def lag(self) -> tuple[datetime | None, int]:
        """When the rollup last ran, and how many logged events (by id) it has not read yet."""
        cursors = {row.source: row for row in (await self.session.scalars(select(ReportCursorRow))).all()}
        behind = 0
        for source, column in (
            ("voucher_events", VoucherEventRow.id),
            ("redemption_events", RedemptionEventRow.id),
            ("ledger_postings", LedgerPostingRow.id),
        ):
            highest = int(await self.session.scalar(select(func.coalesce(func.max(column), 0))) or 0)
            cursor = cursors.get(source)
            behind += max(0, highest - (cursor.last_id if cursor else 0))
        updated = [row.updated_at for row in cursors.values()]
        return (min(updated) if updated else None), behind


def _slice(where: Filter, by: Dimension | None) -> list[ColumnElement[bool]]:
    """Which rows of the redemption rollup to sum: each event is counted in its full combination of the
    merchant's jurisdiction, category and class, and again in rows that keep only one of them (ALL in
    the others) or none. A question about at most one of the three reads those few rows."""
    used = {
        RedemptionDayRow.jurisdiction: where.jurisdictions is not None
        or by in (Dimension.JURISDICTION, Dimension.DISTRICT),
        RedemptionDayRow.category: where.category is not None or by is Dimension.CATEGORY,
        RedemptionDayRow.merchant_class: where.merchant_class is not None or by is Dimension.MERCHANT_CLASS,
    }
    if sum(used.values()) > 1:
        return [column != ALL for column in used]  # a combination: the full rows
    return [column != ALL if wanted else column == ALL for column, wanted in used.items()]


def _common(table: type[VoucherDayRow] | type[RedemptionDayRow], where: Filter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if where.since is not None:
        conditions.append(table.day >= where.since)
    if where.until is not None:
        conditions.append(table.day <= where.until)
    if where.round_id is not None:
        conditions.append(table.round_id == where.round_id)
    if where.batch_id is not None:
        conditions.append(table.batch_id == where.batch_id)
    return conditions


def _grouped(sums: list[Any], group: Any, conditions: list[ColumnElement[bool]]) -> Select[Any]:
    if group is None:
        return select(null(), *sums).where(*conditions)
    return select(group, *sums).where(*conditions).group_by(group)
