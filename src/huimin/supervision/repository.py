"""All queries of the supervision package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.kit.terms import Jurisdiction
from huimin.supervision.domain import FindingStatus
from huimin.supervision.models import InspectionFindingRow

__all__ = ["FindingFilter", "FindingRepository"]


@dataclass(frozen=True)
class FindingFilter:
    campaign_id: str | None = None
    merchant_id: str | None = None
    status: FindingStatus | None = None
    unread: bool | None = None
    jurisdiction: Jurisdiction | None = None  # a county reviewer's scope


class FindingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)

    async def get(self, finding_id: str, *, for_update: bool = False) -> InspectionFindingRow | None:
        query = select(InspectionFindingRow).where(InspectionFindingRow.id == finding_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    @staticmethod
    def _conditions(where: FindingFilter) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if where.campaign_id is not None:
            conditions.append(InspectionFindingRow.campaign_id == where.campaign_id)
        if where.merchant_id is not None:
            conditions.append(InspectionFindingRow.merchant_id == where.merchant_id)
        if where.status is not None:
            conditions.append(InspectionFindingRow.status == where.status.value)
        if where.unread is True:
            conditions.append(InspectionFindingRow.read_at.is_(None))
        elif where.unread is False:
            conditions.append(InspectionFindingRow.read_at.is_not(None))
        if where.jurisdiction is not None:
            conditions.append(InspectionFindingRow.jurisdiction == where.jurisdiction.value)
        return conditions

    async def page(
        self, where: FindingFilter, *, offset: int, limit: int
    ) -> tuple[Sequence[InspectionFindingRow], int]:
        conditions = self._conditions(where)
        total = await self.session.scalar(
            select(func.count()).select_from(InspectionFindingRow).where(*conditions)
        )
        rows = await self.session.scalars(
            select(InspectionFindingRow)
            .where(*conditions)
            .order_by(InspectionFindingRow.recorded_at.desc(), InspectionFindingRow.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return rows.all(), total or 0
