"""All queries of announcements."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.announcements.domain import AnnouncementKind, AnnouncementStatus
from huimin.announcements.models import AnnouncementRow

__all__ = ["AnnouncementRepository"]


class AnnouncementRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)

    async def get(self, announcement_id: str, *, for_update: bool = False) -> AnnouncementRow | None:
        query = select(AnnouncementRow).where(AnnouncementRow.id == announcement_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def page(
        self,
        *,
        campaign_id: str | None,
        kind: AnnouncementKind | None,
        status: AnnouncementStatus | None,
        public_at: datetime | None,
        offset: int,
        limit: int,
    ) -> tuple[Sequence[AnnouncementRow], int]:
        """`public_at`: only what the public sees at that instant (published, and from its time)."""
        conditions: list[ColumnElement[bool]] = []
        if campaign_id is not None:
            conditions.append(AnnouncementRow.campaign_id == campaign_id)
        if kind is not None:
            conditions.append(AnnouncementRow.kind == kind.value)
        if status is not None:
            conditions.append(AnnouncementRow.status == status.value)
        if public_at is not None:
            conditions.append(AnnouncementRow.status == AnnouncementStatus.PUBLISHED.value)
            conditions.append(AnnouncementRow.published_at <= public_at)
        total = await self.session.scalar(
            select(func.count()).select_from(AnnouncementRow).where(*conditions)
        )
        rows = await self.session.scalars(
            select(AnnouncementRow)
            .where(*conditions)
            .order_by(
                AnnouncementRow.published_at.desc(), AnnouncementRow.created_at.desc(), AnnouncementRow.id
            )
            .offset(offset)
            .limit(limit)
        )
        return rows.all(), total or 0
