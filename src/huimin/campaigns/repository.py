"""All queries of the campaigns package."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from huimin.campaigns.models import BatchFundingRow, BatchRow, CampaignRow, RoundBatchRow, RoundRow

__all__ = ["CampaignRepository"]


class CampaignRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def list(self) -> Sequence[CampaignRow]:
        query = select(CampaignRow).options(selectinload(CampaignRow.funders)).order_by(CampaignRow.starts_on)
        return (await self.session.scalars(query)).all()

    async def by_code(self, code: str) -> CampaignRow | None:
        return await self.session.scalar(select(CampaignRow).where(CampaignRow.code == code))

    async def detail(self, campaign_id: str) -> CampaignRow | None:
        query = (
            select(CampaignRow)
            .where(CampaignRow.id == campaign_id)
            .options(
                selectinload(CampaignRow.funders),
                selectinload(CampaignRow.batches)
                .selectinload(BatchRow.funding)
                .selectinload(BatchFundingRow.funder),
                selectinload(CampaignRow.rounds)
                .selectinload(RoundRow.stock)
                .selectinload(RoundBatchRow.batch),
            )
        )
        return await self.session.scalar(query)

    def add_all(self, rows: Sequence[object]) -> None:
        self.session.add_all(rows)
