"""All queries of the merchants package."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, delete, func, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from huimin.kit.terms import Category, Jurisdiction
from huimin.merchants.domain import MerchantStatus
from huimin.merchants.models import (
    DishonestEntryRow,
    MerchantEventRow,
    MerchantRow,
    MerchantTerminalRow,
    MerchantTransitionRow,
)

__all__ = ["MerchantFilter", "MerchantRepository"]

# Bounded IN lists: SQLite caps bound parameters, and long lists plan badly on PostgreSQL.
_CHUNK = 500


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


@dataclass(frozen=True)
class MerchantFilter:
    campaign_id: str | None = None
    statuses: Collection[MerchantStatus] = ()
    jurisdictions: Collection[Jurisdiction] = ()  # empty: every jurisdiction
    category: Category | None = None
    merchant_id: str | None = None  # a merchant's own view
    text: str | None = None  # part of the name or the credit code


class MerchantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, merchant_id: str, *, for_update: bool = False) -> MerchantRow | None:
        query = select(MerchantRow).where(MerchantRow.id == merchant_id)
        if for_update:
            # PostgreSQL: two officials acting on one merchant at once queue here, so the second
            # sees the first's state. SQLite serialises every writer already (BEGIN IMMEDIATE).
            query = query.with_for_update()
        return await self.session.scalar(query)

    async def with_terminals(self, merchant_id: str) -> MerchantRow | None:
        query = (
            select(MerchantRow)
            .where(MerchantRow.id == merchant_id)
            .options(selectinload(MerchantRow.terminals))
            .execution_options(populate_existing=True)
        )
        return await self.session.scalar(query)

    async def by_credit_code(self, campaign_id: str, credit_code: str) -> MerchantRow | None:
        return await self.session.scalar(
            select(MerchantRow).where(
                MerchantRow.campaign_id == campaign_id, MerchantRow.credit_code == credit_code
            )
        )

    async def known_codes(self, campaign_id: str, codes: Sequence[str]) -> set[str]:
        known: set[str] = set()
        for chunk in _chunks(codes):
            known.update(
                await self.session.scalars(
                    select(MerchantRow.credit_code).where(
                        MerchantRow.campaign_id == campaign_id, MerchantRow.credit_code.in_(chunk)
                    )
                )
            )
        return known

    async def for_publication(
        self, campaign_id: str, *, merchant_ids: Sequence[str] | None, jurisdiction: Jurisdiction | None
    ) -> Sequence[MerchantRow]:
        query = select(MerchantRow).where(MerchantRow.campaign_id == campaign_id)
        if merchant_ids is not None:
            query = query.where(MerchantRow.id.in_(merchant_ids))
        else:
            query = query.where(MerchantRow.status == MerchantStatus.COUNTY_APPROVED)
        if jurisdiction is not None:
            query = query.where(MerchantRow.jurisdiction == jurisdiction)
        return (await self.session.scalars(query.order_by(MerchantRow.id).with_for_update())).all()

    @staticmethod
    def _conditions(where: MerchantFilter) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if where.campaign_id is not None:
            conditions.append(MerchantRow.campaign_id == where.campaign_id)
        if where.statuses:
            conditions.append(MerchantRow.status.in_([str(status) for status in where.statuses]))
        if where.jurisdictions:
            conditions.append(MerchantRow.jurisdiction.in_([str(item) for item in where.jurisdictions]))
        if where.category is not None:
            conditions.append(MerchantRow.category == where.category)
        if where.merchant_id is not None:
            conditions.append(MerchantRow.id == where.merchant_id)
        if where.text:
            pattern = "%" + where.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            conditions.append(
                or_(
                    MerchantRow.legal_name.like(pattern, escape="\\"),
                    MerchantRow.credit_code.like(pattern.upper(), escape="\\"),
                )
            )
        return conditions

    async def page(
        self, where: MerchantFilter, *, offset: int, limit: int
    ) -> tuple[Sequence[MerchantRow], int]:
        conditions = self._conditions(where)
        total = await self.session.scalar(select(func.count()).select_from(MerchantRow).where(*conditions))
        rows = await self.session.scalars(
            select(MerchantRow)
            .where(*conditions)
            .order_by(MerchantRow.legal_name, MerchantRow.id)
            .offset(offset)
            .limit(limit)
        )
        return rows.all(), total or 0

    async def final_list(
        self, campaign_id: str, jurisdictions: Collection[Jurisdiction]
    ) -> Sequence[MerchantRow]:
        """The city's final list: listed, active and suspended merchants, with their terminals."""
        where = MerchantFilter(
            campaign_id=campaign_id,
            statuses=(MerchantStatus.LISTED, MerchantStatus.ACTIVE, MerchantStatus.SUSPENDED),
            jurisdictions=jurisdictions,
        )
        query = (
            select(MerchantRow)
            .where(*self._conditions(where))
            .options(selectinload(MerchantRow.terminals))
            .order_by(MerchantRow.jurisdiction, MerchantRow.legal_name, MerchantRow.id)
        )
        return (await self.session.scalars(query)).all()

    async def transitions(self, merchant_id: str) -> Sequence[MerchantTransitionRow]:
        return (
            await self.session.scalars(
                select(MerchantTransitionRow)
                .where(MerchantTransitionRow.merchant_id == merchant_id)
                .order_by(MerchantTransitionRow.id)
            )
        ).all()

    async def terminals_of_others(
        self, campaign_id: str, merchant_id: str, terminals: Sequence[str]
    ) -> set[str]:
        return set(
            await self.session.scalars(
                select(MerchantTerminalRow.terminal_id).where(
                    MerchantTerminalRow.campaign_id == campaign_id,
                    MerchantTerminalRow.terminal_id.in_(terminals),
                    MerchantTerminalRow.merchant_id != merchant_id,
                )
            )
        )

    async def replace_terminals(self, merchant: MerchantRow, terminals: Sequence[str]) -> None:
        await self.session.execute(
            delete(MerchantTerminalRow).where(MerchantTerminalRow.merchant_id == merchant.id)
        )
        if terminals:
            await self.session.execute(
                insert(MerchantTerminalRow),
                [
                    {
                        "campaign_id": merchant.campaign_id,
                        "terminal_id": terminal,
                        "merchant_id": merchant.id,
                        "position": position,
                    }
                    for position, terminal in enumerate(terminals)
                ],
            )

    async def insert_merchants(
        self, merchants: list[dict[str, object]], transitions: list[dict[str, object]]
    ) -> None:
        """Bulk insert for imports: thousands of rows in a few statements."""
        if merchants:
            await self.session.execute(insert(MerchantRow), merchants)
            await self.session.execute(insert(MerchantTransitionRow), transitions)

    def add(self, row: object) -> None:
        self.session.add(row)

    # The dishonest list (失信名单)

    async def open_dishonest_entry(self, credit_code: str) -> DishonestEntryRow | None:
        return await self.session.scalar(
            select(DishonestEntryRow).where(
                DishonestEntryRow.credit_code == credit_code, DishonestEntryRow.delisted_at.is_(None)
            )
        )

    async def dishonest_codes(self, codes: Sequence[str]) -> set[str]:
        listed: set[str] = set()
        for chunk in _chunks(codes):
            listed.update(
                await self.session.scalars(
                    select(DishonestEntryRow.credit_code).where(
                        DishonestEntryRow.credit_code.in_(chunk), DishonestEntryRow.delisted_at.is_(None)
                    )
                )
            )
        return listed

    async def dishonest_entries(
        self, *, include_delisted: bool, credit_code: str | None
    ) -> Sequence[DishonestEntryRow]:
        query = select(DishonestEntryRow)
        if not include_delisted:
            query = query.where(DishonestEntryRow.delisted_at.is_(None))
        if credit_code is not None:
            query = query.where(DishonestEntryRow.credit_code == credit_code)
        return (
            await self.session.scalars(query.order_by(DishonestEntryRow.listed_at, DishonestEntryRow.id))
        ).all()

    # The outbox

    async def events(self, merchant_id: str | None = None) -> Sequence[MerchantEventRow]:
        query = select(MerchantEventRow).order_by(MerchantEventRow.id)
        if merchant_id is not None:
            query = query.where(MerchantEventRow.merchant_id == merchant_id)
        return (await self.session.scalars(query)).all()
