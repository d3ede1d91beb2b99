"""The console's read-only aggregate queries (the overview's figures): counts and sums computed by
the database, never by loading rows. Redemption and subsidy figures join here when their tables exist.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime

from sqlalchemy import ColumnElement, Date, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns.models import RoundBatchRow, RoundRow, StockShardRow
from huimin.claims.models import StockMovementRow, VoucherRow
from huimin.kit.terms import Jurisdiction
from huimin.merchants.models import MerchantRow

__all__ = ["OverviewRepository"]


class OverviewRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def released(self, campaign_id: str, now: datetime) -> int:
        """Vouchers put on offer so far: the planned stock of every round that has opened, plus the
        expired vouchers recycled into those rounds (unclaimed stock carried forward is counted once,
        in the round that first offered it)."""
        planned = await self.session.scalar(
            select(func.coalesce(func.sum(RoundBatchRow.stock), 0))
            .join(RoundRow, RoundRow.id == RoundBatchRow.round_id)
            .where(RoundRow.campaign_id == campaign_id, RoundRow.opens_at <= now)
        )
        recycled = await self.session.scalar(
            select(func.coalesce(func.sum(StockMovementRow.quantity), 0))
            .join(RoundRow, RoundRow.id == StockMovementRow.to_round_id)
            .where(
                RoundRow.campaign_id == campaign_id,
                RoundRow.opens_at <= now,
                StockMovementRow.kind == "expired",
            )
        )
        return int(planned or 0) + int(recycled or 0)

    async def claimed(self, campaign_id: str) -> tuple[int, int]:
        """Vouchers claimed (whatever became of them since) and their value in fen."""
        row = (
            await self.session.execute(
                select(func.count(), func.coalesce(func.sum(VoucherRow.value_fen), 0)).where(
                    VoucherRow.campaign_id == campaign_id
                )
            )
        ).one()
        return int(row[0]), int(row[1])

    async def stock_left(self, campaign_id: str, now: datetime, *, open_now: bool) -> int:
        """What is left in the rounds open now (`open_now`), or in the rounds still to open."""
        window = (
            (RoundRow.opens_at <= now) & (RoundRow.closes_at > now) if open_now else RoundRow.opens_at > now
        )
        total = await self.session.scalar(
            select(func.coalesce(func.sum(StockShardRow.remaining), 0))
            .join(RoundRow, RoundRow.id == StockShardRow.round_id)
            .where(RoundRow.campaign_id == campaign_id, window)
        )
        return int(total or 0)

    def _local_day(self) -> ColumnElement[object]:
        # Asia/Shanghai has kept UTC+8 without daylight saving since 1991, so a fixed offset is exact.
        if self.dialect == "postgresql":
            return cast(func.timezone("Asia/Shanghai", VoucherRow.claimed_at), Date)
        return func.date(VoucherRow.claimed_at, "+8 hours")  # SQLite stores naive UTC

    async def claims_by_day(self, campaign_id: str) -> list[tuple[date, int]]:
        day = self._local_day().label("day")
        rows = await self.session.execute(
            select(day, func.count()).where(VoucherRow.campaign_id == campaign_id).group_by(day).order_by(day)
        )
        return [(date.fromisoformat(str(value)), int(count)) for value, count in rows]

    async def claims_by_district(self, campaign_id: str) -> dict[str, int]:
        rows = await self.session.execute(
            select(VoucherRow.district, func.count())
            .where(VoucherRow.campaign_id == campaign_id)
            .group_by(VoucherRow.district)
        )
        return {district: int(count) for district, count in rows}

    async def merchants_by_status(
        self, campaign_id: str, jurisdictions: Collection[Jurisdiction]
    ) -> dict[str, int]:
        query = (
            select(MerchantRow.status, func.count())
            .where(MerchantRow.campaign_id == campaign_id)
            .group_by(MerchantRow.status)
        )
        if jurisdictions:
            query = query.where(MerchantRow.jurisdiction.in_([str(item) for item in jurisdictions]))
        return {status: int(count) for status, count in await self.session.execute(query)}
