"""The report's figures agree to the fen with the ledger and with the raw rows, on both databases: a
campaign with claims, redemptions, partial and full refunds (with and without the voucher restored), a
verified and a rejected big-ticket invoice, and expiry. The rollup is idempotent and restart-safe."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import httpx
import pytest
from fastapi import FastAPI
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.audit.models import AuditRecordRow
from huimin.auth.principals import Principal, Role
from huimin.claims.flows import expire_and_recycle
from huimin.claims.models import VoucherEventRow, VoucherRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.kit.terms import Category, Jurisdiction
from huimin.ledger import domain as ledger_domain
from huimin.ledger import service as ledger
from huimin.redemptions.domain import RedemptionStatus
from huimin.redemptions.models import RedemptionRow
from huimin.reports import rollup, service
from huimin.reports.domain import Dimension
from huimin.reports.models import ReportCursorRow
from tests.integration.merchant_helpers import CITY, reviewer
from tests.integration.staff import accept_test_principals, as_
from tests.integration.till import Till, fund, open_till


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


def _invoice(number: int, amount: int) -> dict[str, object]:
    return {
        "sales_invoice_no": f"05120000{number:04d}",
        "sales_invoice_amount_fen": amount,
        "tax_invoice_no": f"TAX00000{number:04d}",
    }


async def a_campaign_of_every_kind(till: Till) -> dict[str, str]:
    """Claims and purchases of every kind; returns the ids of the redemptions by name."""
    vouchers = [await till.voucher() for _ in range(4)]
    pct = await till.voucher("pct")
    cars = [await till.voucher("cars") for _ in range(2)]
    await till.voucher("anyue")  # claimed, never spent: it expires
    ids = {}

    async def redeem(name: str, body: dict[str, object]) -> None:
        response = await till.redeem(body)
        assert response.status_code == 201, response.text
        ids[name] = response.json()["redemption_id"]

    await redeem("meal", till.body(vouchers[0], order_amount_fen=12_000, merchant_discount_fen=1_500))
    await redeem("dinner", till.body(vouchers[1], "catering_2", order_amount_fen=15_000))
    await redeem("shop", till.body(vouchers[2], "retail", category="retail", order_amount_fen=20_000))
    await redeem("gadget", till.body(pct, "retail", category="retail", order_amount_fen=30_000))
    await redeem(
        "car",
        till.body(
            cars[0], "cars", category="cars", order_amount_fen=8_000_000, invoice=_invoice(1, 8_000_000)
        ),
    )
    await redeem(
        "car_anyue",
        till.body(
            cars[1],
            "cars_anyue",
            category="cars",
            order_amount_fen=12_000_000,
            invoice=_invoice(2, 12_000_000),
        ),
    )
    till.clock.advance(timedelta(hours=2))
    assert (await till.refund(ids["meal"], 5_000)).status_code == 201  # partial
    assert (await till.refund(ids["dinner"], 15_000)).status_code == 201  # full: the voucher is restored
    assert (await till.refund(ids["gadget"], 10_000)).status_code == 201  # partial …
    assert (await till.refund(ids["gadget"], 20_000)).status_code == 201  # … then the rest: reversed
    verified = await till.http.post(
        f"/api/v1/staff/redemptions/{ids['car']}/verification",
        json={"approve": True},
        headers=as_(reviewer(Jurisdiction.YANJIANG)),
    )
    assert verified.status_code == 200
    rejected = await till.http.post(
        f"/api/v1/staff/redemptions/{ids['car_anyue']}/verification",
        json={"approve": False, "note": "发票号与税务系统不符"},
        headers=as_(reviewer(Jurisdiction.ANYUE)),
    )
    assert rejected.status_code == 200
    # the restored dinner voucher is spent again, at the other restaurant
    await redeem("dinner_again", till.body(vouchers[1], order_amount_fen=10_000))
    return ids


async def roll(sessions: async_sessionmaker[AsyncSession], clock: ManualClock) -> list[rollup.RollupOutcome]:
    async with unit_of_work(sessions) as session:
        return await rollup.rollup(session, clock=clock)


async def report(
    sessions: async_sessionmaker[AsyncSession],
    till: Till,
    *,
    principal: Principal = CITY,
    query: service.Query | None = None,
) -> service.Report:
    async with unit_of_work(sessions) as session:
        return await service.figures(
            session,
            principal=principal,
            campaign_id=till.campaign_id,
            query=query or service.Query(),
            clock=till.clock,
        )


async def ledger_by_kind(sessions: async_sessionmaker[AsyncSession], till: Till) -> dict[str, int]:
    """The ledger's balances by kind of account, summed from the raw postings."""
    async with unit_of_work(sessions) as session:
        balances = await ledger.balances(session, campaign_id=till.campaign_id)
    totals: dict[str, int] = {}
    for key, value in balances.items():
        kind = ledger_domain.account_kind(key).value
        totals[kind] = totals.get(kind, 0) + int(value)
    return totals


async def test_the_figures_agree_with_the_ledger_to_the_fen(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await a_campaign_of_every_kind(till)
    await roll(sessions, till.clock)
    found = (await report(sessions, till)).figures
    books = await ledger_by_kind(sessions, till)

    # the subsidy the vouchers paid is where the ledger holds it: pending, payable, clearing, settled
    assert found.subsidy_fen == sum(
        books.get(kind, 0) for kind in ("pending", "payable", "clearing", "settled")
    )
    assert found.subsidy_pending_fen == books.get("pending", 0) == 0
    assert found.held_fen == books["vouchers"]  # claimed, unspent vouchers: the voucher liability
    # by hand: meal 30 − 14.28 returned; shop 30; car 2,000; dinner again 30 (dinner and gadget refunded)
    assert found.subsidy_fen == 3_000 - 1_428 + 3_000 + 200_000 + 3_000
    # consumption: meal 105 − 50 refunded, shop 200, car 80,000, dinner again 100
    assert found.consumption_fen == 10_500 - 5_000 + 20_000 + 8_000_000 + 10_000
    assert (found.claimed, found.redeemed) == (8, 4)
    assert str(found.redemption_rate) == "0.5000"
    assert found.leverage == (Decimal(found.consumption_fen) / Decimal(found.subsidy_fen)).quantize(
        Decimal("0.01"), ROUND_HALF_EVEN
    )
    assert (found.refunds, found.refund_fen) == (4, 5_000 + 15_000 + 10_000 + 20_000)
    assert (found.invoices_verified, found.invoices_rejected) == (1, 1)
    assert found.residents_claiming == 8  # one voucher each
    assert found.residents_redeeming == 6  # meal, dinner, shop, gadget, car, car_anyue
    assert found.merchants_redeeming == 5  # catering, catering_2, retail, cars, cars_anyue
    # the rollup of the ledger's postings is the ledger
    money = (await report(sessions, till)).money
    assert money is not None
    assert money.deposited == books["funder"] == 1_000_000_00
    assert (money.unclaimed, money.vouchers, money.payable) == (
        books["budget"],
        books["vouchers"],
        books["payable"],
    )
    assert money.subsidy == found.subsidy_fen

    # the raw rows say the same
    async with unit_of_work(sessions) as session:
        holding = (
            await session.scalars(
                select(RedemptionRow).where(
                    RedemptionRow.campaign_id == till.campaign_id,
                    RedemptionRow.status.in_(
                        [
                            RedemptionStatus.CONFIRMED,
                            RedemptionStatus.PENDING_VERIFICATION,
                            RedemptionStatus.SETTLED,
                        ]
                    ),
                )
            )
        ).all()
        claimed = await session.scalar(select(func.count()).select_from(VoucherRow))
    assert found.redeemed == len(holding)
    assert found.subsidy_fen == sum(row.subsidy_fen - row.subsidy_returned_fen for row in holding)
    assert found.consumption_fen == sum(
        row.order_fen - row.merchant_discount_fen - row.refunded_fen for row in holding
    )
    assert found.claimed == claimed

    # every breakdown adds up to the whole
    for by in Dimension:
        lines = (await report(sessions, till, query=service.Query(by=by))).lines
        assert lines, by
        assert sum(line.figures.subsidy_fen for line in lines) == found.subsidy_fen, by
        assert sum(line.figures.consumption_fen for line in lines) == found.consumption_fen, by
        assert sum(line.figures.redeemed for line in lines) == found.redeemed, by
        if by.on_claims:
            assert sum(line.figures.claimed or 0 for line in lines) == found.claimed, by
    by_category = {
        line.key: line.figures
        for line in (await report(sessions, till, query=service.Query(by=Dimension.CATEGORY))).lines
    }
    assert by_category[Category.CARS.value].subsidy_fen == 200_000
    assert by_category[Category.CARS.value].claimed is None  # a claim has no merchant category


async def test_expiry_and_the_rollup_run_again_change_nothing_twice(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await a_campaign_of_every_kind(till)
    first = await roll(sessions, till.clock)
    assert all(outcome.events > 0 for outcome in first)
    before = (await report(sessions, till)).figures
    assert [outcome.events for outcome in await roll(sessions, till.clock)] == [0, 0, 0]  # idempotent
    assert (await report(sessions, till)).figures == before

    # a killed job: its transaction rolls back, cursor and rows together
    till.clock.advance(timedelta(days=40))  # every voucher's validity is over
    async with unit_of_work(sessions) as session:
        report_ = await expire_and_recycle(session, clock=till.clock)
    assert report_.expired > 0

    async def killed_rollup() -> None:
        async with unit_of_work(sessions) as session:
            await rollup.rollup(session, clock=till.clock)
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        await killed_rollup()
    async with unit_of_work(sessions) as session:
        assert (await session.get(ReportCursorRow, "voucher_events")).last_id == first[0].last_id  # type: ignore[union-attr]
    await roll(sessions, till.clock)
    after = (await report(sessions, till)).figures
    books = await ledger_by_kind(sessions, till)
    assert after.expired == report_.expired
    assert after.held == 0
    assert after.held_fen == books.get("vouchers", 0) == 0
    money = (await report(sessions, till)).money
    assert money is not None
    assert money.expired == books["expired"]
    assert after.subsidy_fen == before.subsidy_fen


async def test_a_county_sees_its_own_jurisdiction_only(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await a_campaign_of_every_kind(till)
    await roll(sessions, till.clock)
    anyue = await report(sessions, till, principal=reviewer(Jurisdiction.ANYUE))
    assert anyue.money is None
    assert anyue.figures.redeemed == 0  # its car sale was rejected
    assert anyue.figures.invoices_rejected == 1
    lezhi = await report(
        sessions, till, principal=reviewer(Jurisdiction.LEZHI), query=service.Query(by=Dimension.JURISDICTION)
    )
    assert [line.key for line in lezhi.lines] == ["lezhi"]
    assert lezhi.figures.refunds == 1  # the dinner at catering_2
    with pytest.raises(Exception, match="no jurisdiction"):
        await report(
            sessions,
            till,
            principal=reviewer(Jurisdiction.LEZHI),
            query=service.Query(jurisdiction=Jurisdiction.ANYUE),
        )
    gaoxin = await report(sessions, till, principal=reviewer(Jurisdiction.GAOXIN))
    assert gaoxin.figures.claimed is None  # a zone inside 雁江区: no claims of its own


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
async def test_the_cursor_never_passes_an_id_a_running_transaction_will_commit(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """PostgreSQL draws ids before commit: an event logged by a slow transaction (id n) commits after a
    quicker one's (id n + 1). The rollup waits for it instead of moving past n."""
    first = await till.voucher()
    await roll(sessions, till.clock)
    async with sessions() as slow:
        await slow.begin()
        # the slow transaction writes (which gives it its transaction id), then logs an event
        await slow.execute(
            VoucherRow.__table__.update().where(VoucherRow.id == first["voucher_id"]).values(district="anyue")  # type: ignore[attr-defined]
        )
        await slow.execute(
            VoucherEventRow.__table__.insert().values(  # type: ignore[attr-defined]
                voucher_id=first["voucher_id"], kind="settled", value_fen=3_000, at=till.clock.now()
            )
        )
        await till.voucher()  # committed, with a higher id
        outcomes = {outcome.source: outcome for outcome in await roll(sessions, till.clock)}
        assert outcomes["voucher_events"].events == 0
        assert outcomes["voucher_events"].waiting
        await slow.commit()
    outcomes = {outcome.source: outcome for outcome in await roll(sessions, till.clock)}
    assert outcomes["voucher_events"].events == 2  # the slow one's event and the quick claim
    found = (await report(sessions, till)).figures
    assert found.claimed == 2


async def test_the_staff_api_answers_figures_and_audited_exports(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await a_campaign_of_every_kind(till)
    await roll(sessions, till.clock)
    answer = await till.http.get(
        "/api/v1/staff/reports/figures",
        params={"campaign_id": till.campaign_id, "by": "category"},
        headers=as_(CITY),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["figures"]["redemption_rate"] == "0.5000"  # a decimal string, never a float
    assert isinstance(body["figures"]["subsidy_fen"], int)
    assert {line["key"] for line in body["lines"]} == {"catering", "retail", "cars"}
    assert body["money"]["deposited_fen"] == 1_000_000_00
    county = await till.http.get(
        "/api/v1/staff/reports/figures",
        params={"campaign_id": till.campaign_id, "jurisdiction": "安岳县"},
        headers=as_(reviewer(Jurisdiction.LEZHI)),
    )
    assert county.status_code == 404
    merchant = Principal(actor_id="usr_m", role=Role.MERCHANT, merchant_id=till.merchants["catering"])
    refused = await till.http.get(
        "/api/v1/staff/reports/figures", params={"campaign_id": till.campaign_id}, headers=as_(merchant)
    )
    assert refused.status_code == 403

    workbook = await till.http.get(
        "/api/v1/staff/reports/redemptions.xlsx",
        params={"campaign_id": till.campaign_id},
        headers=as_(reviewer(Jurisdiction.YANJIANG)),
    )
    assert workbook.status_code == 200
    sheet = load_workbook(io.BytesIO(workbook.content)).worksheets[0]
    merchants = {row[1].value for row in sheet.iter_rows(min_row=4)}
    assert len(merchants) == 3  # catering, retail and cars of 雁江区; not 乐至县's or 安岳县's
    statement = await till.http.get(
        "/api/v1/staff/reports/statement.xlsx",
        params={"campaign_id": till.campaign_id},
        headers=as_(reviewer(Jurisdiction.YANJIANG)),
    )
    assert statement.status_code == 403  # the funders' statement needs settlement.read
    async with unit_of_work(sessions) as session:
        audited = (
            await session.scalars(
                select(AuditRecordRow.action).where(AuditRecordRow.action.like("export.report_%"))
            )
        ).all()
    assert audited == ["export.report_redemptions"]
