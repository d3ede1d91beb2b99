"""No double spend and one effect per idempotency key, under concurrency, through HTTP (both backends;
PostgreSQL is the case that matters: real parallel transactions)."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.claims.models import VoucherRow
from huimin.db import unit_of_work
from huimin.redemptions.models import RedemptionEventRow, RedemptionRow
from tests.integration.till import Till


async def count(sessions: async_sessionmaker[AsyncSession], model: type, *where: object) -> int:
    async with unit_of_work(sessions) as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where)) or 0  # type: ignore[arg-type]


async def test_fifty_tills_at_two_merchants_spend_one_voucher_once(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    voucher = await till.voucher()
    bodies = [till.body(voucher, ("catering", "catering_2")[index % 2]) for index in range(50)]
    responses = await asyncio.gather(
        *(till.redeem(body, key=f"parallel-till-{index:03d}") for index, body in enumerate(bodies))
    )
    outcomes = Counter(
        "redeemed" if response.status_code == 201 else response.json()["code"] for response in responses
    )
    assert outcomes == {"redeemed": 1, "voucher_used": 49}
    assert await count(sessions, RedemptionRow, RedemptionRow.voucher_id == voucher["voucher_id"]) == 1
    assert await count(sessions, RedemptionEventRow) == 1
    async with unit_of_work(sessions) as session:
        assert (await session.get(VoucherRow, voucher["voucher_id"])).status == "redeemed"  # type: ignore[union-attr]


async def test_twenty_copies_of_one_request_have_one_effect(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    voucher = await till.voucher()
    body = till.body(voucher)
    responses = await asyncio.gather(*(till.redeem(body, key="one-purchase-0001") for _ in range(20)))
    created = [response.json() for response in responses if response.status_code == 201]
    others = Counter(response.json()["code"] for response in responses if response.status_code != 201)
    assert created
    assert len({answer["redemption_id"] for answer in created}) == 1  # replays of the one answer
    assert set(others) <= {"idempotency_in_progress"}
    assert await count(sessions, RedemptionRow) == 1
    # once the first has finished, every retry gets its answer
    retry = await till.redeem(body, key="one-purchase-0001")
    assert retry.status_code == 201
    assert retry.json() == created[0]
