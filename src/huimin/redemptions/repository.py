"""All queries of redemptions. The write that prevents a double spend is a conditional UPDATE of the
voucher: the database, not Python, decides which of two tills gets it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns.models import BatchRow
from huimin.claims.domain import VoucherStatus
from huimin.claims.models import VoucherRow
from huimin.merchants.models import MerchantRow, MerchantTerminalRow
from huimin.redemptions.models import MerchantDayCounterRow, RedemptionRow, RefundRow

__all__ = ["RedemptionRepository"]


class RedemptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def voucher_by_code(self, code: str) -> tuple[VoucherRow, BatchRow] | None:
        row = (
            await self.session.execute(
                select(VoucherRow, BatchRow)
                .join(BatchRow, BatchRow.id == VoucherRow.batch_id)
                .where(VoucherRow.code == code)
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1])

    async def terminal(self, campaign_id: str, terminal_id: str) -> MerchantTerminalRow | None:
        return await self.session.get(MerchantTerminalRow, (campaign_id, terminal_id))

    async def merchant(self, merchant_id: str) -> MerchantRow | None:
        return await self.session.get(MerchantRow, merchant_id)

    async def take_voucher(self, voucher_id: str, now: datetime) -> bool:
        """claimed → redeemed, only if still claimed and valid. Concurrent tills wait on the row lock and
        re-check the condition: exactly one of them changes it."""
        result = await self.session.execute(
            update(VoucherRow)
            .where(
                VoucherRow.id == voucher_id,
                VoucherRow.status == VoucherStatus.CLAIMED.value,
                VoucherRow.valid_until > now,
            )
            .values(status=VoucherStatus.REDEEMED.value)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def set_voucher_status(self, voucher_id: str, *, from_: VoucherStatus, to: VoucherStatus) -> bool:
        result = await self.session.execute(
            update(VoucherRow)
            .where(VoucherRow.id == voucher_id, VoucherRow.status == from_.value)
            .values(status=to.value)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def count_day(self, merchant_id: str, batch_id: str, day: date, limit: int) -> bool:
        """One more redemption of the batch at the merchant today, unless it has reached `limit`."""
        insert = postgres_insert if self.dialect == "postgresql" else sqlite_insert
        statement = (
            insert(MerchantDayCounterRow)
            .values(merchant_id=merchant_id, batch_id=batch_id, day=day, redeemed=1)
            .on_conflict_do_update(
                index_elements=["merchant_id", "batch_id", "day"],
                set_={"redeemed": MerchantDayCounterRow.redeemed + 1},
                where=MerchantDayCounterRow.redeemed < limit,
            )
            .returning(MerchantDayCounterRow.redeemed)
        )
        return (await self.session.execute(statement)).scalar_one_or_none() is not None

    async def invoice_in_use(self, campaign_id: str, sales_no: str, tax_no: str) -> str | None:
        """The number of an invoice already held by a redemption of the campaign, if any."""
        for column, number in (
            (RedemptionRow.sales_invoice_no, sales_no),
            (RedemptionRow.tax_invoice_no, tax_no),
        ):
            found = await self.session.scalar(
                select(RedemptionRow.id).where(
                    RedemptionRow.campaign_id == campaign_id,
                    column == number,
                    RedemptionRow.status != "rejected",
                )
            )
            if found is not None:
                return number
        return None

    async def order_in_use(self, merchant_id: str, order_ref: str, holding: Sequence[str]) -> bool:
        found = await self.session.scalar(
            select(RedemptionRow.id).where(
                RedemptionRow.merchant_id == merchant_id,
                RedemptionRow.order_ref == order_ref,
                RedemptionRow.status.in_(holding),
            )
        )
        return found is not None

    async def for_update(self, redemption_id: str) -> RedemptionRow | None:
        """The redemption, locked until the end of the transaction (refunds and verification of one
        redemption happen one at a time)."""
        return await self.session.scalar(
            select(RedemptionRow).where(RedemptionRow.id == redemption_id).with_for_update()
        )

    async def with_voucher(self, redemption_id: str) -> tuple[RedemptionRow, VoucherRow, BatchRow] | None:
        row = (
            await self.session.execute(
                select(RedemptionRow, VoucherRow, BatchRow)
                .join(VoucherRow, VoucherRow.id == RedemptionRow.voucher_id)
                .join(BatchRow, BatchRow.id == RedemptionRow.batch_id)
                .where(RedemptionRow.id == redemption_id)
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1], row[2])

    async def refunds(self, redemption_id: str) -> Sequence[RefundRow]:
        return (
            await self.session.scalars(
                select(RefundRow)
                .where(RefundRow.redemption_id == redemption_id)
                .order_by(RefundRow.refunded_at)
            )
        ).all()

    async def search(
        self,
        *,
        campaign_id: str | None,
        jurisdictions: Sequence[str] | None,
        merchant_id: str | None,
        status: str | None,
        big_ticket: bool | None,
        since: date | None,
        until: date | None,
        offset: int,
        limit: int,
    ) -> Sequence[tuple[RedemptionRow, BatchRow, MerchantRow]]:
        query = (
            select(RedemptionRow, BatchRow, MerchantRow)
            .join(BatchRow, BatchRow.id == RedemptionRow.batch_id)
            .join(MerchantRow, MerchantRow.id == RedemptionRow.merchant_id)
        )
        if campaign_id is not None:
            query = query.where(RedemptionRow.campaign_id == campaign_id)
        if jurisdictions is not None:
            query = query.where(RedemptionRow.jurisdiction.in_(jurisdictions))
        if merchant_id is not None:
            query = query.where(RedemptionRow.merchant_id == merchant_id)
        if status is not None:
            query = query.where(RedemptionRow.status == status)
        if big_ticket is not None:
            query = query.where(BatchRow.big_ticket.is_(big_ticket))
        if since is not None:
            query = query.where(RedemptionRow.business_day >= since)
        if until is not None:
            query = query.where(RedemptionRow.business_day <= until)
        query = query.order_by(RedemptionRow.redeemed_at.desc(), RedemptionRow.id).offset(offset).limit(limit)
        return [(row[0], row[1], row[2]) for row in await self.session.execute(query)]
