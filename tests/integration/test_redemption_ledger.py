"""Redemptions, refunds and verifications move the money in the same transaction, to the fen: a worked
example with the balances after each step and the ledger invariants holding throughout."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.config import Settings
from huimin.kit.clock import ManualClock
from huimin.kit.terms import Jurisdiction
from tests.integration.merchant_helpers import reviewer
from tests.integration.staff import accept_test_principals, as_
from tests.integration.till import Till, checked_balances, fund, open_till


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    accept_test_principals(application)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def till(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    clock: ManualClock,
) -> Till:
    opened = await open_till(client, sessions, settings, clock)
    await fund(sessions, opened, clock)
    return opened


async def test_a_day_at_the_till_to_the_fen(till: Till, sessions: async_sessionmaker[AsyncSession]) -> None:
    # Two general vouchers (满100减30, funded 70 % fiscal, 30 % social) and a car voucher (up to 5,000).
    first, second, car = await till.voucher(), await till.voucher(), await till.voucher("cars")
    assert await checked_balances(sessions, till) == {
        "funder:fiscal": 800_000_00,
        "funder:social": 200_000_00,
        "budget:fiscal": 800_000_00 - 2_100 * 2 - 500_000,
        "budget:social": 200_000_00 - 900 * 2,
        "vouchers:fiscal": 2_100 * 2 + 500_000,
        "vouchers:social": 900 * 2,
    }

    # 120 with 15 off at the restaurant: 30 owed to it.
    meal = (await till.redeem(till.body(first, merchant_discount_fen=1_500))).json()
    # An 80,000 car: the 2,000 band of a voucher that reserved 5,000; 3,000 goes back to the budget.
    body = till.body(
        car,
        "cars",
        category="cars",
        order_amount_fen=8_000_000,
        invoice={
            "sales_invoice_no": "051200000001",
            "sales_invoice_amount_fen": 8_000_000,
            "tax_invoice_no": "TAX000000001",
        },
    )
    sale = (await till.redeem(body)).json()
    assert await checked_balances(sessions, till) == {
        "funder:fiscal": 800_000_00,
        "funder:social": 200_000_00,
        "budget:fiscal": 800_000_00 - 2_100 * 2 - 500_000 + 300_000,
        "budget:social": 200_000_00 - 900 * 2,
        "vouchers:fiscal": 2_100,
        "vouchers:social": 900,
        "payable:catering": 3_000,
        "pending:cars": 200_000,
    }

    # The county verifies the car's invoices; the restaurant refunds 50 of the 105.
    verified = await till.http.post(
        f"/api/v1/staff/redemptions/{sale['redemption_id']}/verification",
        json={"approve": True},
        headers=as_(reviewer(Jurisdiction.YANJIANG)),
    )
    assert verified.status_code == 200
    partial = (await till.refund(meal["redemption_id"], 5_000)).json()
    assert partial["subsidy_returned_fen"] == 1_428  # 30 × 50 / 105, rounded down
    assert await checked_balances(sessions, till) == {
        "funder:fiscal": 800_000_00,
        "funder:social": 200_000_00,
        # the 14.28 returned splits 70/30 by split_by_shares: 10.00 fiscal (9.996 takes the odd fen), 4.28
        "budget:fiscal": 800_000_00 - 2_100 * 2 - 500_000 + 300_000 + 1_000,
        "budget:social": 200_000_00 - 900 * 2 + 428,
        "vouchers:fiscal": 2_100,
        "vouchers:social": 900,
        "payable:catering": 3_000 - 1_428,
        "payable:cars": 200_000,
    }

    # The rest of the meal is refunded: the voucher is back in the wallet with its full 30.
    rest = (await till.refund(meal["redemption_id"], 5_500)).json()
    assert rest["voucher_restored"] is True
    assert await checked_balances(sessions, till) == {
        "funder:fiscal": 800_000_00,
        "funder:social": 200_000_00,
        "budget:fiscal": 800_000_00 - 2_100 * 2 - 500_000 + 300_000,
        "budget:social": 200_000_00 - 900 * 2,
        "vouchers:fiscal": 2_100 * 2,
        "vouchers:social": 900 * 2,
        "payable:cars": 200_000,
    }

    # The second voucher is spent at the shop.
    shop = await till.redeem(till.body(second, "retail", category="retail", order_amount_fen=20_000))
    assert shop.status_code == 201
    final = await checked_balances(sessions, till)
    assert final["payable:retail"] == 3_000
    assert final["vouchers:fiscal"] == 2_100


async def test_a_rejected_invoice_returns_the_subsidy_to_the_voucher(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    car = await till.voucher("cars")
    body = till.body(
        car,
        "cars",
        category="cars",
        order_amount_fen=12_000_000,
        invoice={
            "sales_invoice_no": "051200000002",
            "sales_invoice_amount_fen": 12_000_000,
            "tax_invoice_no": "TAX000000002",
        },
    )
    sale = (await till.redeem(body)).json()
    before_rejection = await checked_balances(sessions, till)
    assert before_rejection["pending:cars"] == 500_000
    rejected = await till.http.post(
        f"/api/v1/staff/redemptions/{sale['redemption_id']}/verification",
        json={"approve": False, "note": "发票号与税务系统不符"},
        headers=as_(reviewer(Jurisdiction.YANJIANG)),
    )
    assert rejected.status_code == 200
    after = await checked_balances(sessions, till)
    assert "pending:cars" not in after
    assert after["vouchers:fiscal"] == 500_000
