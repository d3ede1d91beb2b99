"""The queries of a scrape: what is open now and how the settlement runs stand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns.models import BatchRow, CampaignRow, RoundBatchRow, RoundRow
from huimin.settlement.models import SettlementRunRow

__all__ = ["ObservabilityRepository", "OpenBatch"]

# round id, batch id, campaign code, round code, batch code, campaign id
OpenBatch = tuple[str, str, str, str, str, str]


class ObservabilityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def open_batches(self, now: datetime) -> Sequence[OpenBatch]:
        """Every batch released by a round open at `now`."""
        query = (
            select(RoundRow.id, BatchRow.id, CampaignRow.code, RoundRow.code, BatchRow.code, CampaignRow.id)
            .join(RoundBatchRow, RoundBatchRow.round_id == RoundRow.id)
            .join(BatchRow, BatchRow.id == RoundBatchRow.batch_id)
            .join(CampaignRow, CampaignRow.id == RoundRow.campaign_id)
            .where(RoundRow.opens_at <= now, RoundRow.closes_at > now)
            .order_by(CampaignRow.code, RoundRow.code, BatchRow.position)
        )
        return [(row[0], row[1], row[2], row[3], row[4], row[5]) for row in await self.session.execute(query)]

    async def settlement_runs(self) -> dict[str, int]:
        query = select(SettlementRunRow.status, func.count()).group_by(SettlementRunRow.status)
        return {status: int(count) for status, count in await self.session.execute(query)}
