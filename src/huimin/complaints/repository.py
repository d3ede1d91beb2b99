"""All queries of the complaints package."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.auth.models import UserRow
from huimin.claims.models import VoucherRow
from huimin.complaints.domain import OPEN_STATUSES, Category, Channel, ComplaintStatus, Department
from huimin.complaints.models import ComplaintEventRow, ComplaintRow
from huimin.kit.terms import Jurisdiction
from huimin.merchants.models import MerchantRow
from huimin.risk.domain import CaseStatus, SubjectKind
from huimin.risk.models import RiskCaseRow

__all__ = ["ComplaintFilter", "ComplaintRepository", "Scope", "StatsRow"]

_OPEN = [status.value for status in OPEN_STATUSES]
# A risk case still being worked: a complaint of suspected cash-out joins it.
_LIVE_CASES = [
    status.value for status in CaseStatus if status not in (CaseStatus.DISMISSED, CaseStatus.SANCTIONED)
]


@dataclass(frozen=True)
class Scope:
    """What a principal may see: everything (within `jurisdiction`, when set), or the complaints routed
    to `departments` or registered through `channels`."""

    everything: bool = False
    departments: frozenset[Department] = frozenset()
    channels: frozenset[Channel] = frozenset()
    jurisdiction: Jurisdiction | None = None

    def sees(self, row: ComplaintRow) -> bool:
        if self.jurisdiction is not None and row.jurisdiction != self.jurisdiction:
            return False
        return (
            self.everything
            or Department(row.department) in self.departments
            or Channel(row.channel) in self.channels
        )

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.jurisdiction is not None:
            conditions.append(ComplaintRow.jurisdiction == self.jurisdiction.value)
        if not self.everything:
            either: list[ColumnElement[bool]] = []
            if self.departments:
                either.append(ComplaintRow.department.in_([item.value for item in self.departments]))
            if self.channels:
                either.append(ComplaintRow.channel.in_([item.value for item in self.channels]))
            conditions.append(or_(*either) if either else false())
        return conditions


@dataclass(frozen=True)
class ComplaintFilter:
    campaign_id: str | None = None
    statuses: Collection[ComplaintStatus] = ()
    categories: Collection[Category] = ()
    department: Department | None = None
    jurisdiction: Jurisdiction | None = None
    merchant_id: str | None = None
    overdue: bool | None = None  # True: only overdue; False: only not overdue
    phone_digest: str | None = None  # the same caller's complaints
    resident_id: str | None = None  # a resident's own complaints (the payment app)


@dataclass(frozen=True)
class StatsRow:
    key: str | None
    total: int
    open: int
    overdue: int
    resolved: int  # resolved or closed
    resolved_late: int


def _overdue(now: datetime) -> ColumnElement[bool]:
    return and_(ComplaintRow.status.in_(_OPEN), ComplaintRow.due_at <= now)


class ComplaintRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: object) -> None:
        self.session.add(row)

    async def get(self, complaint_id: str, *, for_update: bool = False) -> ComplaintRow | None:
        query = select(ComplaintRow).where(ComplaintRow.id == complaint_id)
        if for_update:
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def events(self, complaint_id: str) -> Sequence[ComplaintEventRow]:
        return (
            await self.session.scalars(
                select(ComplaintEventRow)
                .where(ComplaintEventRow.complaint_id == complaint_id)
                .order_by(ComplaintEventRow.id)
            )
        ).all()

    @staticmethod
    def _conditions(where: ComplaintFilter, scope: Scope, now: datetime) -> list[ColumnElement[bool]]:
        conditions = scope.conditions()
        if where.campaign_id is not None:
            conditions.append(ComplaintRow.campaign_id == where.campaign_id)
        if where.statuses:
            conditions.append(ComplaintRow.status.in_([item.value for item in where.statuses]))
        if where.categories:
            conditions.append(ComplaintRow.category.in_([item.value for item in where.categories]))
        if where.department is not None:
            conditions.append(ComplaintRow.department == where.department.value)
        if where.jurisdiction is not None:
            conditions.append(ComplaintRow.jurisdiction == where.jurisdiction.value)
        if where.merchant_id is not None:
            conditions.append(ComplaintRow.merchant_id == where.merchant_id)
        if where.resident_id is not None:
            conditions.append(ComplaintRow.resident_id == where.resident_id)
        if where.phone_digest is not None:
            conditions.append(ComplaintRow.complainant_phone_digest == where.phone_digest)
        if where.overdue is True:
            conditions.append(_overdue(now))
        elif where.overdue is False:
            conditions.append(~_overdue(now))
        return conditions

    async def page(
        self, where: ComplaintFilter, scope: Scope, *, now: datetime, offset: int, limit: int
    ) -> tuple[Sequence[ComplaintRow], int]:
        conditions = self._conditions(where, scope, now)
        total = await self.session.scalar(select(func.count()).select_from(ComplaintRow).where(*conditions))
        rows = await self.session.scalars(
            select(ComplaintRow)
            .where(*conditions)
            .order_by(ComplaintRow.due_at, ComplaintRow.id)
            .offset(offset)
            .limit(limit)
        )
        return rows.all(), total or 0

    async def stats(
        self, where: ComplaintFilter, scope: Scope, *, now: datetime, by: str
    ) -> Sequence[StatsRow]:
        column: Any = {
            "category": ComplaintRow.category,
            "department": ComplaintRow.department,
            "jurisdiction": ComplaintRow.jurisdiction,
        }[by]
        finished = ComplaintRow.status.in_([ComplaintStatus.RESOLVED.value, ComplaintStatus.CLOSED.value])

        def count_if(condition: ColumnElement[bool]) -> Any:
            return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

        query = (
            select(
                column,
                func.count(),
                count_if(ComplaintRow.status.in_(_OPEN)),
                count_if(_overdue(now)),
                count_if(finished),
                count_if(and_(finished, ComplaintRow.resolved_at >= ComplaintRow.due_at)),
            )
            .where(*self._conditions(where, scope, now))
            .group_by(column)
            .order_by(column)
        )
        return [
            StatsRow(key, int(total), int(open_), int(overdue), int(resolved), int(late))
            for key, total, open_, overdue, resolved, late in (await self.session.execute(query)).all()
        ]

    # Other packages' rows a complaint refers to

    async def merchant(self, merchant_id: str) -> MerchantRow | None:
        return await self.session.get(MerchantRow, merchant_id)

    async def voucher_by_code(self, code: str) -> VoucherRow | None:
        return await self.session.scalar(select(VoucherRow).where(VoucherRow.code == code))

    async def user(self, user_id: str) -> UserRow | None:
        return await self.session.get(UserRow, user_id)

    async def live_risk_case(self, campaign_id: str, merchant_id: str) -> str | None:
        """The merchant's most recent risk case still being worked, if the risk team opened one."""
        return await self.session.scalar(
            select(RiskCaseRow.id)
            .where(
                RiskCaseRow.campaign_id == campaign_id,
                RiskCaseRow.subject_kind == SubjectKind.MERCHANT.value,
                RiskCaseRow.subject_id == merchant_id,
                RiskCaseRow.status.in_(_LIVE_CASES),
            )
            .order_by(RiskCaseRow.opened_at.desc(), RiskCaseRow.id.desc())
            .limit(1)
        )
