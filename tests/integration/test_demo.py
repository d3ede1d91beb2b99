"""`huimin demo`: a small synthetic city through the whole Ziyang 2022 campaign on the embedded SQLite
database, through the services; every invariant holds and the same seed writes the same summary.json."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from huimin.db import create_engine
from huimin.eligibility.geofence import default_geofence
from huimin.eligibility.identity import id_number_problem, phone_problem
from huimin.kit.clock import to_local
from huimin.kit.terms import Category, Jurisdiction
from huimin.merchants.domain import credit_code_problem, parse_business_hours
from huimin.merchants.domain import phone_problem as contact_phone_problem
from huimin.merchants.models import MerchantRow
from huimin.redemptions.models import RedemptionRow, RefundRow
from huimin.simulation.city import build_city, build_merchants
from huimin.simulation.run import DATABASE_FILE, PENDING, SUMMARY_FILE, run_demo

# Enough for every kind of record (refusals, lottery wins, big-ticket invoices, refunds, late tries). The
# walk costs about one claim and one redemption per voucher, and the test runs it twice.
RESIDENTS = 70
MERCHANTS = 30  # every category, a few rejected; merchants cost only their onboarding
SEED = 7


def test_the_city_is_valid_and_reproducible() -> None:
    city = build_city(residents=2_000, seed=SEED)
    assert city == build_city(residents=2_000, seed=SEED)
    assert city != build_city(residents=2_000, seed=SEED + 1)
    residents = city.residents
    assert len(residents) == 2_000
    assert all(id_number_problem(resident.id_number) is None for resident in residents)
    assert all(phone_problem(resident.phone) is None for resident in residents)
    assert len({resident.id_number for resident in residents}) == len(residents)
    assert len({resident.phone for resident in residents}) == len(residents)
    assert len({resident.device_id for resident in residents}) < len(residents)  # families share phones
    geofence = default_geofence()
    # every home is where the platform will place it, whichever CRS the phone reports
    assert all(geofence.district_of(resident.location) is resident.home for resident in residents)
    assert {resident.location.crs.value for resident in residents} == {"wgs84", "gcj02"}
    counts = city.by_district()
    assert counts["yanjiang"] > counts["anyue"] > counts["lezhi"] > counts["outside"] > 0
    assert 100 < sum(resident.union_member for resident in residents) < 300


def test_the_merchants_are_valid_reproducible_and_spread_like_a_city() -> None:
    merchants = build_merchants(count=800, seed=SEED)
    assert merchants == build_merchants(count=800, seed=SEED)
    assert merchants != build_merchants(count=800, seed=SEED + 1)
    # residents draw from their own stream: merchants never change who they are
    assert (
        build_city(residents=50, seed=SEED).residents
        == build_city(residents=50, merchants=9, seed=SEED).residents
    )
    assert all(credit_code_problem(merchant.credit_code) is None for merchant in merchants)
    assert all(contact_phone_problem(merchant.contact_phone) is None for merchant in merchants)
    assert len({merchant.credit_code for merchant in merchants}) == 800
    terminals = [terminal for merchant in merchants for terminal in merchant.terminals]
    assert len(set(terminals)) == len(terminals)
    assert {len(merchant.terminals) for merchant in merchants} == {1, 2}
    where = Counter(merchant.jurisdiction for merchant in merchants)
    assert where[Jurisdiction.YANJIANG] > where[Jurisdiction.ANYUE] > where[Jurisdiction.LEZHI]
    assert where[Jurisdiction.LEZHI] > where[Jurisdiction.GAOXIN] > 0
    assert where[Jurisdiction.LINKONG] > 0
    what = Counter(merchant.category for merchant in merchants)
    assert what[Category.CATERING] > what[Category.RETAIL] > what[Category.SERVICES] > what[Category.CARS]
    assert 10 < what[Category.CARS] < 50
    assert 20 < what[Category.APPLIANCES] < 70
    assert 20 < sum(merchant.review_problem is not None for merchant in merchants) < 70
    # even a handful of merchants covers every category
    assert {merchant.category for merchant in build_merchants(count=len(Category), seed=SEED)} == set(
        Category
    )


async def test_a_small_demo_keeps_every_invariant_and_is_reproducible(tmp_path: Path) -> None:
    summary = await run_demo(
        residents=RESIDENTS, merchants=MERCHANTS, seed=SEED, out=tmp_path / "first", progress=False
    )

    written = json.loads((tmp_path / "first" / SUMMARY_FILE).read_text(encoding="utf-8"))
    assert written == summary
    assert summary["invariants"], "no invariant was checked"
    assert all(summary["invariants"].values()), summary["invariants"]
    assert set(summary["pending"]) == set(PENDING)
    assert all(summary[key] is None for key in PENDING)

    assert summary["residents"] == RESIDENTS
    assert (summary["rounds"], summary["lottery_rounds"]) == (56, 28)
    assert summary["lotteries_drawn"] == summary["lotteries_verified"] == 28
    assert summary["lottery_entry_outcomes"]["ok"] > 0
    assert summary["lottery_winners"] > 0
    outcomes = summary["claim_outcomes"]
    assert summary["claims_attempted"] == sum(outcomes.values())
    assert outcomes["ok"] > 0
    assert outcomes.keys() >= {"ok", "identity_unverified", "round_not_open"}  # refusals happen too
    assert summary["vouchers_claimed"] == outcomes["ok"] + summary["lottery_winners"]
    assert sum(summary["claimed_by_district"].values()) == summary["vouchers_claimed"]
    # vouchers left unspent expire, and all but the last ones recycle
    assert 0 < summary["vouchers_expired"] < summary["vouchers_claimed"]
    assert 0 < summary["vouchers_recycled"] <= summary["vouchers_expired"]
    assert summary["stock_recycled"]["unclaimed"] > 0
    assert summary["stock_recycled"]["expired"] == summary["vouchers_recycled"]

    # merchants: invited, a few rejected by their county, the rest listed, committed and active
    assert summary["merchants_invited"] == MERCHANTS
    assert 0 < summary["merchants_rejected"] < MERCHANTS // 4
    assert summary["merchants_active"] == MERCHANTS - summary["merchants_rejected"]
    assert sum(summary["merchants_active_by_category"].values()) == summary["merchants_active"]

    # redemptions: most vouchers are spent, some baskets are short and topped up, late tries refused
    redemptions = summary["redemption_outcomes"]
    assert summary["redemptions_attempted"] == sum(redemptions.values())
    assert redemptions.keys() >= {"ok", "below_threshold", "voucher_expired"}
    assert summary["redemptions_topped_up"].get("ok", 0) > 0
    assert set(summary["redemptions_after_expiry"]) == {"voucher_expired"}
    assert 0 < summary["vouchers_redeemed"] < summary["vouchers_claimed"]
    assert summary["vouchers_redeemed"] == sum(summary["vouchers_redeemed_by_batch"].values())
    assert summary["vouchers_redeemed"] == sum(
        figures["redeemed"] for figures in summary["redemptions_by_category"].values()
    )
    rate = Decimal(summary["vouchers_redeemed"]) / Decimal(summary["vouchers_claimed"])
    assert abs(Decimal(summary["redemption_rate"]) - rate) <= Decimal("0.00005")
    # money is integer fen; the subsidy never exceeds what the vouchers are worth, and drives more spending
    assert all(isinstance(summary[key], int) for key in ("consumption_driven_fen", "subsidy_fen"))
    assert summary["subsidy_fen"] == summary["subsidy_confirmed_fen"] + summary["subsidy_pending_fen"]
    assert 0 < summary["subsidy_fen"] < summary["vouchers_claimed_value_fen"]
    assert summary["consumption_driven_fen"] > summary["subsidy_fen"]
    assert Decimal(summary["leverage"]) > 1
    assert summary["merchant_discounts_fen"] > 0  # vouchers stacked with merchants' own promotions
    # big-ticket invoices verified by the county; some purchases refunded
    assert summary["invoices"]["verified"] > 0
    assert summary["invoices"]["pending"] == summary["subsidy_pending_fen"] == 0
    assert summary["refunds"]["count"] == sum(summary["refunds"]["outcomes"].values()) > 0
    assert summary["ledger_checks"], "the ledger's checks did not run"
    assert all(summary["ledger_checks"].values()), summary["ledger_checks"]

    await _every_sale_in_business_hours(tmp_path / "first" / DATABASE_FILE)

    again = await run_demo(
        residents=RESIDENTS, merchants=MERCHANTS, seed=SEED, out=tmp_path / "second", progress=False
    )
    assert again == summary
    assert (tmp_path / "second" / SUMMARY_FILE).read_bytes() == (
        tmp_path / "first" / SUMMARY_FILE
    ).read_bytes()


async def _every_sale_in_business_hours(database: Path) -> None:
    """Residents shop while the shop is open: every redemption and refund at the merchant's hours."""
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    try:
        async with engine.connect() as connection:
            sales = (
                await connection.execute(
                    select(RedemptionRow.redeemed_at, MerchantRow.business_hours).join(
                        MerchantRow, MerchantRow.id == RedemptionRow.merchant_id
                    )
                )
            ).all()
            refunds = (
                await connection.execute(
                    select(RefundRow.refunded_at, MerchantRow.business_hours)
                    .join(RedemptionRow, RedemptionRow.id == RefundRow.redemption_id)
                    .join(MerchantRow, MerchantRow.id == RedemptionRow.merchant_id)
                )
            ).all()
    finally:
        await engine.dispose()
    assert sales
    assert refunds
    for at, hours in [*sales, *refunds]:
        local = to_local(at)
        assert parse_business_hours(hours).is_open_at(local.hour * 60 + local.minute), (local, hours)
