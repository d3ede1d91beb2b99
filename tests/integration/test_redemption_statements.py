"""The redemption repository's prepared statements, on SQLite and PostgreSQL: the answers the till's
checks rely on, including the cases the HTTP tests reach only in part (a tax invoice reused alone, a
rejected redemption's invoices, the holding statuses of an order, the daily counter's limit)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.claims.domain import VoucherStatus, normalise_code
from huimin.claims.models import VoucherRow
from huimin.db import unit_of_work
from huimin.redemptions.models import RedemptionRow
from huimin.redemptions.repository import RedemptionRepository
from tests.integration.till import Till

HOLDING = ["clawed_back", "confirmed", "pending_verification", "settled"]


async def test_the_spend_context_finds_the_voucher_the_merchant_and_the_terminal(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    voucher = await till.voucher()
    code = normalise_code(voucher["code"])
    async with unit_of_work(sessions) as session:
        repository = RedemptionRepository(session)
        assert await repository.spend_context("NO-SUCH-CODE", till.merchants["catering"], "T0000001") is None
        found = await repository.spend_context(code, till.merchants["catering"], till.terminals["catering"])
        assert found is not None
        voucher_row, batch_row, merchant, terminal = found
        assert (voucher_row.code, batch_row.id) == (code, till.batches["general"])
        assert merchant is not None
        assert merchant.id == till.merchants["catering"]
        assert terminal is not None
        assert terminal.merchant_id == merchant.id
        # another merchant's terminal is found as it is: the service refuses it
        found = await repository.spend_context(code, till.merchants["catering"], till.terminals["retail"])
        assert found is not None
        assert found[3] is not None
        assert found[3].merchant_id == till.merchants["retail"]
        found = await repository.spend_context(code, "mch_nobody", "T9999999")
        assert found is not None
        assert (found[2], found[3]) == (None, None)


async def test_an_invoice_in_use_is_named_sales_number_first(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    voucher = await till.voucher("cars")
    invoice = {
        "sales_invoice_no": "051200000007",
        "sales_invoice_amount_fen": 8_000_000,
        "tax_invoice_no": "TAX000000007",
    }
    body = till.body(voucher, "cars", category="cars", order_amount_fen=8_000_000, invoice=invoice)
    response = await till.redeem(body)
    assert response.status_code == 201, response.text
    async with unit_of_work(sessions) as session:
        repository = RedemptionRepository(session)
        in_use = repository.invoice_in_use
        assert await in_use(till.campaign_id, "051200000007", "TAX000000007") == "051200000007"
        assert await in_use(till.campaign_id, "051200000008", "TAX000000007") == "TAX000000007"
        assert await in_use(till.campaign_id, "051200000007", "TAX000000008") == "051200000007"
        assert await in_use(till.campaign_id, "051200000008", "TAX000000008") is None
        assert await in_use("cmp_other", "051200000007", "TAX000000007") is None
        await session.execute(update(RedemptionRow).values(status="rejected"))
        assert await in_use(till.campaign_id, "051200000007", "TAX000000007") is None


async def test_an_order_is_in_use_while_a_holding_redemption_has_it(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    response = await till.redeem(till.body(await till.voucher(), order_ref="POS-0001"))
    assert response.status_code == 201, response.text
    merchant_id = till.merchants["catering"]
    async with unit_of_work(sessions) as session:
        repository = RedemptionRepository(session)
        assert await repository.order_in_use(merchant_id, "POS-0001", HOLDING)
        assert not await repository.order_in_use(merchant_id, "POS-0002", HOLDING)
        assert not await repository.order_in_use(till.merchants["retail"], "POS-0001", HOLDING)
        assert not await repository.order_in_use(merchant_id, "POS-0001", ["settled"])
        assert await repository.order_in_use(merchant_id, "POS-0001", ["confirmed"])


async def test_the_day_counter_stops_at_its_limit_per_merchant_batch_and_day(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    merchant_id, batch_id, day = till.merchants["catering"], till.batches["general"], date(2022, 6, 24)
    async with unit_of_work(sessions) as session:
        repository = RedemptionRepository(session)
        assert [await repository.count_day(merchant_id, batch_id, day, 2) for _ in range(3)] == [
            True,
            True,
            False,
        ]
        assert await repository.count_day(merchant_id, batch_id, day, 3)  # a higher limit admits one more
        assert not await repository.count_day(merchant_id, batch_id, day, 3)
        assert await repository.count_day(merchant_id, batch_id, day + timedelta(days=1), 1)
        assert await repository.count_day(till.merchants["retail"], batch_id, day, 1)


async def test_a_voucher_is_taken_once_and_only_while_valid(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    first, second = await till.voucher(), await till.voucher()
    async with unit_of_work(sessions) as session:
        repository = RedemptionRepository(session)
        valid_until = (await session.get(VoucherRow, first["voucher_id"])).valid_until  # type: ignore[union-attr]
        assert not await repository.take_voucher(first["voucher_id"], valid_until)  # expired by then
        assert await repository.take_voucher(first["voucher_id"], valid_until - timedelta(seconds=1))
        assert not await repository.take_voucher(first["voucher_id"], valid_until - timedelta(seconds=1))
        assert not await repository.set_voucher_status(
            second["voucher_id"], from_=VoucherStatus.REDEEMED, to=VoucherStatus.CLAIMED
        )
        assert await repository.set_voucher_status(
            first["voucher_id"], from_=VoucherStatus.REDEEMED, to=VoucherStatus.CLAIMED
        )
    async with unit_of_work(sessions) as session:
        statuses = [
            (await session.get(VoucherRow, voucher["voucher_id"])).status  # type: ignore[union-attr]
            for voucher in (first, second)
        ]
    assert statuses == ["claimed", "claimed"]
