"""All queries of redemptions. The write that prevents a double spend is a conditional UPDATE of the
voucher: the database, not Python, decides which of two tills gets it.

The statements of the till's hot path are built once (per dialect where they differ), with `bindparam`
placeholders, and executed with each call's values: building and compiling them per call cost more CPU
than running them. Statements that need no ORM identity (counts, conditional updates, existence checks)
run on the session's connection, in the session's transaction; the sessions do not autoflush, so this
sees exactly what `session.execute` would. Only statement objects are kept, never rows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, exists, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from huimin.campaigns.models import BatchRow
from huimin.claims.domain import VoucherStatus
from huimin.claims.models import VoucherRow
from huimin.merchants.models import MerchantRow, MerchantTerminalRow
from huimin.redemptions.models import MerchantDayCounterRow, RedemptionRow, RefundRow

__all__ = ["RedemptionRepository", "SpendContext"]

_VOUCHERS = cast(Table, VoucherRow.__table__)
_REDEMPTIONS = cast(Table, RedemptionRow.__table__)
_COUNTERS = cast(Table, MerchantDayCounterRow.__table__)

SpendContext = tuple[VoucherRow, BatchRow, MerchantRow | None, MerchantTerminalRow | None]

# The voucher by its code with its batch, the merchant named by the till and the terminal of that
# number in the voucher's campaign (either None when there is none): one round trip instead of three.
_SPEND_CONTEXT = (
    select(VoucherRow, BatchRow, MerchantRow, MerchantTerminalRow)
    .join(BatchRow, BatchRow.id == VoucherRow.batch_id)
    .outerjoin(MerchantRow, MerchantRow.id == bindparam("merchant_id"))
    .outerjoin(
        MerchantTerminalRow,
        and_(
            MerchantTerminalRow.campaign_id == VoucherRow.campaign_id,
            MerchantTerminalRow.terminal_id == bindparam("terminal_id"),
        ),
    )
    .where(VoucherRow.code == bindparam("code"))
)

_TAKE_VOUCHER = (
    update(_VOUCHERS)
    .where(
        _VOUCHERS.c.id == bindparam("voucher_id"),
        _VOUCHERS.c.status == VoucherStatus.CLAIMED.value,
        _VOUCHERS.c.valid_until > bindparam("now"),
    )
    .values(status=VoucherStatus.REDEEMED.value)
)

_SET_VOUCHER_STATUS = (
    update(_VOUCHERS)
    .where(_VOUCHERS.c.id == bindparam("voucher_id"), _VOUCHERS.c.status == bindparam("from_status"))
    .values(status=bindparam("to_status"))
)

# Whether a redemption of the campaign not rejected holds the sales invoice number, the tax invoice
# number: both answers in one round trip.
_INVOICES_IN_USE = select(
    exists().where(
        _REDEMPTIONS.c.campaign_id == bindparam("campaign_id"),
        _REDEMPTIONS.c.sales_invoice_no == bindparam("sales_no"),
        _REDEMPTIONS.c.status != "rejected",
    ),
    exists().where(
        _REDEMPTIONS.c.campaign_id == bindparam("campaign_id"),
        _REDEMPTIONS.c.tax_invoice_no == bindparam("tax_no"),
        _REDEMPTIONS.c.status != "rejected",
    ),
)

_ORDER_IN_USE = select(_REDEMPTIONS.c.id).where(
    _REDEMPTIONS.c.merchant_id == bindparam("merchant_id"),
    _REDEMPTIONS.c.order_ref == bindparam("order_ref"),
    _REDEMPTIONS.c.status.in_(bindparam("holding", expanding=True)),
)

_FOR_UPDATE = select(RedemptionRow).where(RedemptionRow.id == bindparam("redemption_id")).with_for_update()

_WITH_VOUCHER = (
    select(RedemptionRow, VoucherRow, BatchRow)
    .join(VoucherRow, VoucherRow.id == RedemptionRow.voucher_id)
    .join(BatchRow, BatchRow.id == RedemptionRow.batch_id)
    .where(RedemptionRow.id == bindparam("redemption_id"))
)

_COUNT_DAY: dict[str, Any] = {}  # dialect name → the conditional upsert of a merchant's day counter


def _count_day_statement(dialect: str) -> Any:
    statement = _COUNT_DAY.get(dialect)
    if statement is None:
        insert = postgres_insert if dialect == "postgresql" else sqlite_insert
        statement = (
            insert(_COUNTERS)
            .values(
                merchant_id=bindparam("p_merchant_id"),
                batch_id=bindparam("p_batch_id"),
                day=bindparam("p_day"),
                redeemed=1,
            )
            .on_conflict_do_update(
                index_elements=["merchant_id", "batch_id", "day"],
                set_={"redeemed": _COUNTERS.c.redeemed + 1},
                where=_COUNTERS.c.redeemed < bindparam("p_limit"),
            )
            .returning(_COUNTERS.c.redeemed)
        )
        _COUNT_DAY[dialect] = statement
    return statement


class RedemptionRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.dialect = session.get_bind().dialect.name

    async def spend_context(self, code: str, merchant_id: str, terminal_id: str) -> SpendContext | None:
        """The voucher and its batch, with the merchant `merchant_id` and the terminal `terminal_id` of
        the voucher's campaign (None where there is none); None without a voucher of this code."""
        row = (
            await self.session.execute(
                _SPEND_CONTEXT, {"code": code, "merchant_id": merchant_id, "terminal_id": terminal_id}
            )
        ).one_or_none()
        return None if row is None else (row[0], row[1], row[2], row[3])

    async def merchant(self, merchant_id: str) -> MerchantRow | None:
        return await self.session.get(MerchantRow, merchant_id)

    async def take_voucher(self, voucher_id: str, now: datetime) -> bool:
        """claimed → redeemed, only if still claimed and valid. Concurrent tills wait on the row lock and
        re-check the condition: exactly one of them changes it."""
        connection = await self.session.connection()
        result = await connection.execute(_TAKE_VOUCHER, {"voucher_id": voucher_id, "now": now})
        return bool(result.rowcount == 1)

    async def set_voucher_status(self, voucher_id: str, *, from_: VoucherStatus, to: VoucherStatus) -> bool:
        connection = await self.session.connection()
        result = await connection.execute(
            _SET_VOUCHER_STATUS, {"voucher_id": voucher_id, "from_status": from_.value, "to_status": to.value}
        )
        return bool(result.rowcount == 1)

    async def count_day(self, merchant_id: str, batch_id: str, day: date, limit: int) -> bool:
        """One more redemption of the batch at the merchant today, unless it has reached `limit`."""
        connection = await self.session.connection()
        result = await connection.execute(
            _count_day_statement(self.dialect),
            {"p_merchant_id": merchant_id, "p_batch_id": batch_id, "p_day": day, "p_limit": limit},
        )
        return result.scalar_one_or_none() is not None

    async def invoice_in_use(self, campaign_id: str, sales_no: str, tax_no: str) -> str | None:
        """The number of an invoice already held by a redemption of the campaign, if any."""
        connection = await self.session.connection()
        sales_used, tax_used = (
            await connection.execute(
                _INVOICES_IN_USE, {"campaign_id": campaign_id, "sales_no": sales_no, "tax_no": tax_no}
            )
        ).one()
        if sales_used:
            return sales_no
        if tax_used:
            return tax_no
        return None

    async def order_in_use(self, merchant_id: str, order_ref: str, holding: Sequence[str]) -> bool:
        connection = await self.session.connection()
        found = await connection.scalar(
            _ORDER_IN_USE, {"merchant_id": merchant_id, "order_ref": order_ref, "holding": list(holding)}
        )
        return found is not None

    async def for_update(self, redemption_id: str) -> RedemptionRow | None:
        """The redemption, locked until the end of the transaction (refunds and verification of one
        redemption happen one at a time)."""
        return await self.session.scalar(_FOR_UPDATE, {"redemption_id": redemption_id})

    async def with_voucher(self, redemption_id: str) -> tuple[RedemptionRow, VoucherRow, BatchRow] | None:
        row = (await self.session.execute(_WITH_VOUCHER, {"redemption_id": redemption_id})).one_or_none()
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
