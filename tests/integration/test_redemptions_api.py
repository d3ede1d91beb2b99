"""Redemption at the till through signed HTTP, on SQLite and PostgreSQL: the stacking arithmetic as
worked examples, every refusal code, idempotency, refunds, big-ticket invoices and their verification."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from openpyxl import load_workbook
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from huimin.app import create_app
from huimin.auth.domain import PartnerKind
from huimin.claims.models import VoucherRow
from huimin.config import Settings
from huimin.db import unit_of_work
from huimin.kit.clock import ManualClock
from huimin.kit.terms import Jurisdiction
from huimin.redemptions.models import RedemptionEventRow, RedemptionRow
from tests.integration.merchant_helpers import CITY, reviewer
from tests.integration.staff import accept_test_principals, as_
from tests.integration.test_claims_api import new_partner
from tests.integration.till import Till
from tests.support import SignedClient


@pytest.fixture
async def app(settings: Settings, clock: ManualClock) -> AsyncIterator[FastAPI]:
    application = create_app(settings, clock=clock)
    accept_test_principals(application)
    async with application.router.lifespan_context(application):
        yield application


def car_invoice(number: int, amount_fen: int) -> dict[str, object]:
    return {
        "sales_invoice_no": f"0512{number:08d}",
        "sales_invoice_amount_fen": amount_fen,
        "tax_invoice_no": f"TAX{number:09d}",
    }


async def voucher_status(sessions: async_sessionmaker[AsyncSession], voucher_id: str) -> str:
    async with unit_of_work(sessions) as session:
        voucher = await session.get(VoucherRow, voucher_id)
        assert voucher is not None
        return voucher.status


# --- the arithmetic of stacking (seed 六(十)), as worked examples -------------------------------------


@pytest.mark.parametrize(
    ("batch", "merchant", "category", "order", "discount", "subsidy", "pays"),
    [
        # 满100减30 on a 120-yuan meal with the restaurant's own 15 off: 105 meets 100, the voucher takes 30
        ("general", "catering", "catering", 12_000, 1_500, 3_000, 7_500),
        # the same voucher on exactly 100 after discount: the threshold is inclusive
        ("general", "retail", "retail", 13_000, 3_000, 3_000, 7_000),
        # threshold on the amount before discount: 120 with 25 off still meets 100 (95 to pay, 30 off)
        ("gross", "catering", "catering", 12_000, 2_500, 3_000, 6_500),
        # 10 % of 300 after a 20 house discount is 28, under the 50 cap
        ("pct", "retail", "retail", 30_000, 2_000, 2_800, 25_200),
        # 10 % of 800 is 80, capped at 50
        ("pct", "retail", "retail", 80_000, 0, 5_000, 75_000),
        # a 120,000-yuan car with 5,000 off sits in the 100,000+ band: 5,000 subsidy
        ("cars", "cars", "cars", 12_000_000, 500_000, 500_000, 11_000_000),
        # an 80,000-yuan car sits in the 50,000-100,000 band: 2,000 subsidy
        ("cars", "cars", "cars", 8_000_000, 0, 200_000, 7_800_000),
    ],
)
async def test_the_voucher_stacks_with_the_merchants_own_discount(
    till: Till,
    batch: str,
    merchant: str,
    category: str,
    order: int,
    discount: int,
    subsidy: int,
    pays: int,
) -> None:
    voucher = await till.voucher(batch)
    body = till.body(
        voucher, merchant, category=category, order_amount_fen=order, merchant_discount_fen=discount
    )
    if batch == "cars":
        body["invoice"] = car_invoice(1, order - discount)
    response = await till.redeem(body)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert (answer["subsidy_fen"], answer["resident_pays_fen"]) == (subsidy, pays)
    assert answer["status"] == ("pending_verification" if batch == "cars" else "confirmed")


@pytest.mark.parametrize(
    ("batch", "merchant", "category", "order", "discount"),
    [
        # 满100减30 on a 120-yuan meal with 25 off: 95 after the house discount misses the threshold
        ("general", "catering", "catering", 12_000, 2_500),
        ("general", "catering", "catering", 9_999, 0),
        # a 40,000-yuan car is in no price band
        ("cars", "cars", "cars", 4_000_000, 0),
    ],
)
async def test_a_purchase_below_the_threshold_is_refused(
    till: Till, batch: str, merchant: str, category: str, order: int, discount: int
) -> None:
    voucher = await till.voucher(batch)
    body = till.body(
        voucher, merchant, category=category, order_amount_fen=order, merchant_discount_fen=discount
    )
    if batch == "cars":
        body["invoice"] = car_invoice(2, order - discount)
    response = await till.redeem(body)
    assert (response.status_code, response.json()["code"]) == (422, "below_threshold")


# --- refusals, each with its code ----------------------------------------------------------------------


async def test_an_unknown_or_mistyped_code_is_not_found(till: Till) -> None:
    voucher = await till.voucher()
    wrong = voucher["code"][:-1] + ("0" if voucher["code"][-1] != "0" else "1")
    response = await till.redeem(till.body({"code": wrong}))
    assert (response.status_code, response.json()["code"]) == (404, "unknown_voucher")


async def test_the_code_may_be_typed_in_groups_or_scanned_from_the_qr(till: Till) -> None:
    typed = await till.voucher()
    response = await till.redeem(till.body({"code": typed["code_display"].lower()}))
    assert response.status_code == 201, response.text
    scanned = await till.voucher()
    response = await till.redeem(till.body({"code": scanned["qr_payload"]}))
    assert response.status_code == 201, response.text


async def test_a_voucher_is_spent_once(till: Till) -> None:
    voucher = await till.voucher()
    assert (await till.redeem(till.body(voucher))).status_code == 201
    again = await till.redeem(till.body(voucher, "catering_2"))
    assert (again.status_code, again.json()["code"]) == (409, "voucher_used")


async def test_an_expired_voucher_is_refused_even_before_the_expiry_job_runs(till: Till) -> None:
    voucher = await till.voucher()
    till.clock.advance(timedelta(days=8))
    response = await till.redeem(till.body(voucher))
    assert (response.status_code, response.json()["code"]) == (409, "voucher_expired")


async def test_a_revoked_voucher_is_refused(till: Till, sessions: async_sessionmaker[AsyncSession]) -> None:
    voucher = await till.voucher()
    async with unit_of_work(sessions) as session:
        await session.execute(
            update(VoucherRow).where(VoucherRow.id == voucher["voucher_id"]).values(status="revoked")
        )
    response = await till.redeem(till.body(voucher))
    assert (response.status_code, response.json()["code"]) == (409, "voucher_revoked")


@pytest.mark.parametrize(
    ("merchant", "batch", "category", "status", "code"),
    [
        ("suspended", "general", "catering", 403, "merchant_not_active"),
        # a restaurant's till cannot take a car purchase, nor a general voucher buy a car
        ("catering", "general", "cars", 403, "out_of_scope"),
        ("cars", "general", "cars", 403, "out_of_scope"),
        # the 安岳 voucher at a 雁江 restaurant, and at an 安岳 restaurant of the wrong class
        ("catering", "anyue", "catering", 403, "out_of_scope"),
        ("anyue_below", "anyue", "catering", 403, "out_of_scope"),
    ],
)
async def test_merchant_and_scope_refusals(
    till: Till, merchant: str, batch: str, category: str, status: int, code: str
) -> None:
    voucher = await till.voucher(batch)
    response = await till.redeem(till.body(voucher, merchant, category=category))
    assert (response.status_code, response.json()["code"]) == (status, code)


async def test_the_anyue_voucher_is_spent_at_an_anyue_restaurant_of_its_class(till: Till) -> None:
    voucher = await till.voucher("anyue")
    response = await till.redeem(till.body(voucher, "anyue_above", order_amount_fen=5_000))
    assert response.status_code == 201, response.text
    assert response.json()["subsidy_fen"] == 1_000


async def test_the_terminal_must_belong_to_the_merchant(till: Till) -> None:
    voucher = await till.voucher()
    body = till.body(voucher, terminal_id=till.terminals["retail"])
    response = await till.redeem(body)
    assert (response.status_code, response.json()["code"]) == (403, "unknown_terminal")
    response = await till.redeem(till.body(voucher, merchant_id="mch_nobody"))
    assert (response.status_code, response.json()["code"]) == (404, "unknown_merchant")


async def test_one_voucher_per_purchase(till: Till) -> None:
    first, second = await till.voucher(), await till.voucher()
    assert (await till.redeem(till.body(first, order_ref="POS-0001"))).status_code == 201
    response = await till.redeem(till.body(second, order_ref="POS-0001"))
    assert (response.status_code, response.json()["code"]) == (409, "one_voucher_per_purchase")
    assert (await till.redeem(till.body(second, order_ref="POS-0002"))).status_code == 201


async def test_a_merchant_takes_at_most_its_daily_cap_of_a_batch(till: Till) -> None:
    vouchers = [await till.voucher() for _ in range(5)]
    for voucher in vouchers[:3]:
        assert (await till.redeem(till.body(voucher))).status_code == 201
    response = await till.redeem(till.body(vouchers[3]))
    assert (response.status_code, response.json()["code"]) == (409, "merchant_daily_cap")
    # another merchant is not affected, and the next day the cap starts again
    assert (await till.redeem(till.body(vouchers[3], "catering_2"))).status_code == 201
    till.clock.advance(timedelta(days=1))
    assert (await till.redeem(till.body(vouchers[4]))).status_code == 201


async def test_the_body_is_checked_before_anything_happens(till: Till) -> None:
    voucher = await till.voucher()
    for changes in (
        {"merchant_discount_fen": 12_000},
        {"order_amount_fen": 0},
        {"order_amount_fen": 1.5},
        {"category": "weapons"},
        {"subsidy_fen": 100_000},  # computed by the server, never sent
    ):
        response = await till.redeem(till.body(voucher, **changes))
        assert response.status_code == 422, changes
    assert (await till.redeem(till.body(voucher))).status_code == 201


async def test_only_a_terminal_key_redeems(till: Till) -> None:
    voucher = await till.voucher()
    response = await till.app.post(
        "/api/v1/redemptions", till.body(voucher), **{"Idempotency-Key": "redeem-by-app-1"}
    )
    assert (response.status_code, response.json()["code"]) == (403, "wrong_partner_kind")


# --- idempotency ---------------------------------------------------------------------------------------


async def test_a_retry_gets_the_same_answer_and_another_body_is_a_mismatch(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    voucher = await till.voucher()
    first = await till.redeem(till.body(voucher), key="till-0001-order-42")
    retry = await till.redeem(till.body(voucher), key="till-0001-order-42")
    assert first.status_code == retry.status_code == 201
    assert first.json() == retry.json()
    other = await till.redeem(till.body(voucher, order_amount_fen=15_000), key="till-0001-order-42")
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_mismatch")
    missing = await till.terminal.post("/api/v1/redemptions", till.body(voucher))
    assert missing.json()["code"] == "idempotency_key_required"
    async with unit_of_work(sessions) as session:
        count = await session.scalar(
            select(func.count())
            .select_from(RedemptionRow)
            .where(RedemptionRow.voucher_id == voucher["voucher_id"])
        )
    assert count == 1


# --- refunds -------------------------------------------------------------------------------------------


async def test_a_partial_refund_returns_the_proportional_subsidy(till: Till) -> None:
    voucher = await till.voucher()
    redeemed = (await till.redeem(till.body(voucher, merchant_discount_fen=1_500))).json()  # 105 paid, 30 off
    # 50 of 105 back: the voucher's share floor(30 * 50 / 105) = 14.28 → 14, the resident gets 36
    first = await till.refund(redeemed["redemption_id"], 5_000)
    assert first.status_code == 201, first.text
    assert (first.json()["subsidy_returned_fen"], first.json()["resident_refund_fen"]) == (1_428, 3_572)
    assert first.json()["redemption_status"] == "confirmed"
    # the rest: the subsidy returned adds up to exactly 30, the resident's to exactly 75
    rest = (await till.refund(redeemed["redemption_id"], 5_500)).json()
    assert rest["subsidy_returned_fen"] + 1_428 == 3_000
    assert rest["resident_refund_fen"] + 3_572 == 7_500
    assert rest["redemption_status"] == "refunded"
    over = await till.refund(redeemed["redemption_id"], 1)
    assert (over.status_code, over.json()["code"]) == (409, "not_refundable")


async def test_a_refund_cannot_exceed_what_was_paid(till: Till) -> None:
    voucher = await till.voucher()
    redeemed = (await till.redeem(till.body(voucher))).json()
    response = await till.refund(redeemed["redemption_id"], 12_001)
    assert (response.status_code, response.json()["code"]) == (422, "refund_exceeds_paid")


async def test_a_full_refund_within_validity_restores_the_voucher(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    voucher = await till.voucher()
    redeemed = (await till.redeem(till.body(voucher))).json()
    response = await till.refund(redeemed["redemption_id"], 12_000)
    assert response.json()["voucher_restored"] is True
    assert await voucher_status(sessions, voucher["voucher_id"]) == "claimed"
    assert (await till.redeem(till.body(voucher, "catering_2"))).status_code == 201


async def test_a_full_refund_under_a_no_restore_policy_reverses_the_voucher(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    voucher = await till.voucher("pct")
    redeemed = (await till.redeem(till.body(voucher, "retail", category="retail"))).json()
    response = await till.refund(redeemed["redemption_id"], 12_000)
    assert response.json()["voucher_restored"] is False
    assert await voucher_status(sessions, voucher["voucher_id"]) == "reversed"
    again = await till.redeem(till.body(voucher, "retail", category="retail"))
    assert again.json()["code"] == "voucher_used"


async def test_a_full_refund_after_the_voucher_expired_does_not_restore_it(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    voucher = await till.voucher()
    redeemed = (await till.redeem(till.body(voucher))).json()
    till.clock.advance(timedelta(days=10))
    response = await till.refund(redeemed["redemption_id"], 12_000)
    assert response.json()["voucher_restored"] is False
    assert await voucher_status(sessions, voucher["voucher_id"]) == "reversed"


async def test_a_refund_is_idempotent_and_another_partners_redemption_does_not_exist(
    till: Till, client: httpx.AsyncClient, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    voucher = await till.voucher()
    redeemed = (await till.redeem(till.body(voucher))).json()
    first = await till.refund(redeemed["redemption_id"], 2_000, key="refund-key-0001")
    retry = await till.refund(redeemed["redemption_id"], 2_000, key="refund-key-0001")
    assert first.json() == retry.json()
    status = await till.terminal.get(f"/api/v1/redemptions/{redeemed['redemption_id']}")
    assert status.json()["refunded_fen"] == 2_000
    key_id, secret = await new_partner(sessions, settings, PartnerKind.TERMINAL, till.clock)
    stranger = SignedClient(client, key_id=key_id, secret=secret, clock=till.clock)
    response = await stranger.post(
        f"/api/v1/redemptions/{redeemed['redemption_id']}/refunds",
        {"amount_fen": 100},
        **{"Idempotency-Key": "x" * 10},
    )
    assert (response.status_code, response.json()["code"]) == (404, "unknown_redemption")
    assert (await stranger.get(f"/api/v1/redemptions/{redeemed['redemption_id']}")).status_code == 404


# --- big-ticket invoices and the county's verification ---------------------------------------------


async def test_big_ticket_invoices_are_required_consistent_and_used_once(till: Till) -> None:
    first, second = await till.voucher("cars"), await till.voucher("cars")
    body = till.body(first, "cars", category="cars", order_amount_fen=8_000_000)
    response = await till.redeem(body)
    assert (response.status_code, response.json()["code"]) == (422, "invoice_required")
    response = await till.redeem({**body, "invoice": car_invoice(7, 7_900_000)})
    assert (response.status_code, response.json()["code"]) == (422, "invoice_mismatch")
    assert (await till.redeem({**body, "invoice": car_invoice(7, 8_000_000)})).status_code == 201
    again = till.body(
        second, "cars", category="cars", order_amount_fen=8_000_000, invoice=car_invoice(7, 8_000_000)
    )
    response = await till.redeem(again)
    assert (response.status_code, response.json()["code"]) == (409, "invoice_reused")


async def test_the_county_verifies_its_own_big_ticket_purchases(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    voucher = await till.voucher("cars")
    body = till.body(
        voucher, "cars", category="cars", order_amount_fen=8_000_000, invoice=car_invoice(9, 8_000_000)
    )
    redeemed = (await till.redeem(body)).json()
    path = f"/api/v1/staff/redemptions/{redeemed['redemption_id']}/verification"
    other = await till.http.post(path, json={"approve": True}, headers=as_(reviewer(Jurisdiction.ANYUE)))
    assert (other.status_code, other.json()["code"]) == (404, "unknown_redemption")
    city = await till.http.post(path, json={"approve": True}, headers=as_(CITY))
    assert (city.status_code, city.json()["code"]) == (403, "forbidden")
    own = await till.http.post(
        path, json={"approve": True, "note": "发票真实"}, headers=as_(reviewer(Jurisdiction.YANJIANG))
    )
    assert own.status_code == 200, own.text
    assert own.json()["status"] == "confirmed"
    twice = await till.http.post(path, json={"approve": True}, headers=as_(reviewer(Jurisdiction.YANJIANG)))
    assert (twice.status_code, twice.json()["code"]) == (409, "not_pending")
    async with unit_of_work(sessions) as session:
        kinds = (
            await session.scalars(
                select(RedemptionEventRow.kind)
                .where(RedemptionEventRow.redemption_id == redeemed["redemption_id"])
                .order_by(RedemptionEventRow.id)
            )
        ).all()
    assert kinds == ["redeemed", "verified"]


async def test_a_rejected_invoice_reverses_the_redemption_and_gives_the_voucher_back(
    till: Till, sessions: async_sessionmaker[AsyncSession]
) -> None:
    voucher = await till.voucher("cars")
    body = till.body(
        voucher, "cars", category="cars", order_amount_fen=8_000_000, invoice=car_invoice(11, 8_000_000)
    )
    redeemed = (await till.redeem(body)).json()
    path = f"/api/v1/staff/redemptions/{redeemed['redemption_id']}/verification"
    county = as_(reviewer(Jurisdiction.YANJIANG))
    no_reason = await till.http.post(path, json={"approve": False}, headers=county)
    assert (no_reason.status_code, no_reason.json()["code"]) == (422, "reason_required")
    rejected = await till.http.post(
        path, json={"approve": False, "note": "税票与销售发票不符"}, headers=county
    )
    assert rejected.json()["status"] == "rejected"
    assert await voucher_status(sessions, voucher["voucher_id"]) == "claimed"
    # the corrected purchase may present the same (now released) invoice numbers
    assert (await till.redeem(body)).status_code == 201
    refund = await till.refund(redeemed["redemption_id"], 100)
    assert (refund.status_code, refund.json()["code"]) == (409, "not_refundable")


async def test_the_county_sales_ledger_lists_its_own_big_ticket_sales(till: Till) -> None:
    for number, merchant in enumerate(("cars", "cars", "cars_anyue"), start=20):
        voucher = await till.voucher("cars")
        body = till.body(
            voucher,
            merchant,
            category="cars",
            order_amount_fen=12_000_000,
            invoice=car_invoice(number, 12_000_000),
        )
        assert (await till.redeem(body)).status_code == 201
    response = await till.http.get(
        "/api/v1/staff/redemptions/sales-ledger.xlsx",
        params={"campaign_id": till.campaign_id},
        headers=as_(reviewer(Jurisdiction.ANYUE)),
    )
    assert response.status_code == 200, response.text
    sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
    rows = [row for row in sheet.iter_rows(min_row=4, values_only=True) if row[0] is not None]
    assert len(rows) == 1
    assert rows[0][3] == "安岳县"
    assert rows[0][6] == "051200000022"
    assert rows[0][11] == 5000
    assert "安岳县" in str(sheet["A1"].value)
    city = await till.http.get(
        "/api/v1/staff/redemptions/sales-ledger.xlsx",
        params={"campaign_id": till.campaign_id},
        headers=as_(CITY),
    )
    city_rows = [
        row
        for row in load_workbook(io.BytesIO(city.content)).worksheets[0].iter_rows(min_row=4)
        if row[0].value
    ]
    assert len(city_rows) == 3
    foreign = await till.http.get(
        "/api/v1/staff/redemptions/sales-ledger.xlsx",
        params={"campaign_id": till.campaign_id, "jurisdiction": "雁江区"},
        headers=as_(reviewer(Jurisdiction.ANYUE)),
    )
    assert foreign.status_code == 404


async def test_staff_search_is_scoped_to_the_jurisdiction(till: Till) -> None:
    for merchant in ("catering", "anyue_above"):
        voucher = await till.voucher("general")
        assert (await till.redeem(till.body(voucher, merchant))).status_code == 201
    anyue = await till.http.get("/api/v1/staff/redemptions", headers=as_(reviewer(Jurisdiction.ANYUE)))
    assert [row["jurisdiction"] for row in anyue.json()] == ["anyue"]
    everything = await till.http.get("/api/v1/staff/redemptions", headers=as_(CITY))
    assert len(everything.json()) == 2
